"""Decoding speed: our GPT with and without the KV cache, and Hugging Face's generate.

For each length N of new tokens, one model with a context window of (prompt + N) tokens is built
with random weights (no download) and converted to Hugging Face's GPT2LMHeadModel, so all three
decoders run the same weights. Greedy decoding, batch 1, on the CPU; each measurement is the
best of --repeats runs, interleaved. Prints tokens/s and the ratios.

    python benchmarks/generate.py
    python benchmarks/generate.py --lengths 64 256 --n-layer 4 --n-embd 192 --n-head 4
"""

from __future__ import annotations

import argparse
import functools
import time

import torch

from tinygpt.generate import SamplingConfig, generate
from tinygpt.hf import to_hf
from tinygpt.model import GPT, GPTConfig


def best_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def decode_ours(model, prompt, n, greedy, use_cache: bool) -> torch.Tensor:
    return generate(model, prompt, n, greedy, use_cache=use_cache)


@torch.no_grad()
def decode_hf(hf, prompt, n) -> torch.Tensor:
    return hf.generate(
        prompt,
        max_new_tokens=n,
        min_new_tokens=n,
        do_sample=False,
        use_cache=True,
        eos_token_id=None,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--prompt-len", type=int, default=8)
    parser.add_argument("--n-layer", type=int, default=4)
    parser.add_argument("--n-head", type=int, default=4)
    parser.add_argument("--n-embd", type=int, default=192)
    parser.add_argument("--vocab-size", type=int, default=50257)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    torch.manual_seed(0)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; model: "
        f"n_layer={args.n_layer}, n_head={args.n_head}, n_embd={args.n_embd}, "
        f"V={args.vocab_size}; greedy, batch 1, prompt {args.prompt_len} tokens\n"
    )
    print(
        f"{'new tokens':>10} {'no cache':>10} {'KV cache':>10} {'HF generate':>12} "
        f"{'cache/no cache':>15} {'cache/HF':>9}   (tokens/s)"
    )
    greedy = SamplingConfig(temperature=0.0)
    for n in args.lengths:
        config = GPTConfig(
            vocab_size=args.vocab_size,
            block_size=args.prompt_len + n,
            n_layer=args.n_layer,
            n_head=args.n_head,
            n_embd=args.n_embd,
        )
        model = GPT(config).eval()
        hf = to_hf(model)
        hf.generation_config.pad_token_id = 0
        prompt = torch.randint(0, args.vocab_size, (1, args.prompt_len))

        ours = functools.partial(decode_ours, model, prompt, n, greedy)
        theirs = functools.partial(decode_hf, hf, prompt, n)

        # Same weights, same greedy tokens: the comparison is like for like.
        cached = ours(use_cache=True)
        assert torch.equal(cached, ours(use_cache=False)), "cache changed the tokens"
        agree = (theirs()[0] == cached[0]).float().mean().item()
        times = {"no cache": [], "cache": [], "hf": []}
        for _ in range(args.repeats):  # interleaved, so drifts in machine load hit all three
            times["no cache"].append(best_time(functools.partial(ours, use_cache=False), 1))
            times["cache"].append(best_time(functools.partial(ours, use_cache=True), 1))
            times["hf"].append(best_time(theirs, 1))
        rate = {k: n / min(v) for k, v in times.items()}
        print(
            f"{n:>10} {rate['no cache']:>10.0f} {rate['cache']:>10.0f} {rate['hf']:>12.0f} "
            f"{rate['cache'] / rate['no cache']:>14.1f}x {rate['cache'] / rate['hf']:>8.2f}x"
            f"   (HF's tokens equal ours: {agree:.0%})"
        )


if __name__ == "__main__":
    main()
