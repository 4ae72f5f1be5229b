"""Write the live model's files for the rendered book (run by `make assets`).

    python3 assets/live_chunks.py book/live/model.onnx ORT_WASM OUT_DIR

Pages load them with <script> tags, the one way a file:// page may read a file, so each binary
is cut into base64 chunks, each a script that hands its piece to ``tinygptChunk(name, i, n,
base64)``; the count also drives the page's progress bar. ``manifest.js`` sets
``window.tinygptLiveManifest`` from ``model.json`` (written by ``python -m tinygpt.export``)
plus the chunk counts. The model's sha256 is checked against ``model.json`` so a page never
runs a graph with another model's vocabulary.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
from pathlib import Path

CHUNK_BYTES = 1 << 20  # 1 MiB before base64: ~20 scripts in all, a smooth progress bar


def write_chunks(data: bytes, name: str, out: Path) -> int:
    count = max(1, -(-len(data) // CHUNK_BYTES))
    for i in range(count):
        piece = base64.b64encode(data[i * CHUNK_BYTES : (i + 1) * CHUNK_BYTES]).decode()
        (out / f"{name}.{i}.js").write_text(f'tinygptChunk("{name}",{i},{count},"{piece}");\n')
    return count


def main(model_path: str, wasm_path: str, out_dir: str) -> None:
    model, wasm, out = Path(model_path), Path(wasm_path), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest = json.loads(model.with_suffix(".json").read_text())
    model_bytes = model.read_bytes()
    if hashlib.sha256(model_bytes).hexdigest() != manifest["onnx_sha256"]:
        sys.exit(f"{model}: its sha256 differs from {model.with_suffix('.json')}'s: re-export both")
    wasm_bytes = wasm.read_bytes()
    manifest["model"] = {
        "chunks": write_chunks(model_bytes, "model", out),
        "bytes": len(model_bytes),
    }
    manifest["wasm"] = {"chunks": write_chunks(wasm_bytes, "wasm", out), "bytes": len(wasm_bytes)}
    text = json.dumps(manifest, separators=(",", ":"))
    (out / "manifest.js").write_text(f"window.tinygptLiveManifest = {text};\n")


if __name__ == "__main__":
    main(*sys.argv[1:])
