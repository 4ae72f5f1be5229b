"""LoRA (tinygpt.lora): merge equality, a start at the pretrained model, frozen base weights, and
parity with Hugging Face PEFT's LoRA on the converted GPT2LMHeadModel (issue 18 groundwork)."""

import peft  # pinned in requirements.txt: the reference is always there
import pytest
import torch

from tinygpt.hf import to_hf
from tinygpt.lora import LoRALinear, add_lora, lora_state, merge_all
from tinygpt.model import GPT, GPTConfig

CONFIG = GPTConfig(vocab_size=61, block_size=16, n_layer=2, n_head=2, n_embd=16)


def model_with_lora(r=4, alpha=8.0, targets=("c_attn",)) -> GPT:
    torch.manual_seed(0)
    model = GPT(CONFIG).eval()
    add_lora(model, r, alpha, targets)
    with torch.no_grad():  # a trained-looking adapter: B is zero only at the start
        for module in model.modules():
            if isinstance(module, LoRALinear):
                module.lora_B.normal_(0, 0.1)
    return model


def test_a_fresh_adapter_leaves_the_model_as_it_was():
    torch.manual_seed(0)
    base = GPT(CONFIG).eval()
    idx = torch.randint(0, 61, (2, 16))
    before = base(idx)[0]
    add_lora(base, r=4, alpha=8.0)
    assert torch.equal(base(idx)[0], before)  # B = 0: training starts at the pretrained model


def test_merged_weights_give_the_unmerged_outputs():
    model = model_with_lora()
    idx = torch.randint(0, 61, (2, 16))
    unmerged = model(idx)[0]
    merge_all(model)
    assert torch.allclose(model(idx)[0], unmerged, atol=1e-5)
    merge_all(model, merged=False)
    assert torch.allclose(model(idx)[0], unmerged, atol=1e-6)


def test_only_the_adapters_train():
    model = model_with_lora(targets=("c_attn", "c_proj"))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_" in n for n in trainable)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    idx = torch.randint(0, 61, (2, 16))
    for _ in range(3):
        optimizer.zero_grad()
        model(idx, idx)[1].backward()
        optimizer.step()
    assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if n in frozen)
    assert set(lora_state(model)) == trainable


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_a_rank_that_is_not_a_positive_integer_is_refused(bad):
    with pytest.raises(ValueError, match="rank"):
        LoRALinear(torch.nn.Linear(4, 4), r=bad, alpha=1.0)


def test_our_lora_equals_peft_on_hugging_face_gpt2():
    """The same adapter weights in PEFT's LoRA on the converted GPT2LMHeadModel (Conv1D, whose
    weight is stored transposed: fan_in_fan_out) give the same logits and adapter gradients."""
    model = model_with_lora(r=4, alpha=8.0, targets=("c_attn",))
    base_state = {k.replace(".base.", "."): v for k, v in model.state_dict().items()
                  if ".lora_" not in k}  # fmt: skip
    plain = GPT(CONFIG)
    plain.load_weights(base_state)
    hf = to_hf(plain).eval()
    config = peft.LoraConfig(r=4, lora_alpha=8.0, target_modules=["c_attn"], lora_dropout=0.0,
                             fan_in_fan_out=True)  # fmt: skip
    peft_model = peft.get_peft_model(hf, config).eval()
    with torch.no_grad():
        for i, block in enumerate(model.transformer.h):
            ours = block.attn.c_attn
            theirs = peft_model.base_model.model.transformer.h[i].attn.c_attn
            theirs.lora_A["default"].weight.copy_(ours.lora_A)
            theirs.lora_B["default"].weight.copy_(ours.lora_B)
    idx = torch.randint(0, 61, (2, 16))
    ours_logits = model(idx)[0]
    theirs_logits = peft_model(idx).logits
    assert (ours_logits - theirs_logits).abs().max() <= 1e-5
    ours_logits.pow(2).sum().backward()
    theirs_logits.pow(2).sum().backward()
    for i, block in enumerate(model.transformer.h):
        theirs = peft_model.base_model.model.transformer.h[i].attn.c_attn
        pairs = [
            (block.attn.c_attn.lora_A, theirs.lora_A["default"].weight),
            (block.attn.c_attn.lora_B, theirs.lora_B["default"].weight),
        ]
        for ours_p, theirs_p in pairs:
            scale = ours_p.grad.abs().max()
            assert (ours_p.grad - theirs_p.grad).abs().max() <= 1e-5 * max(1.0, scale)
