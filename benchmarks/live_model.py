"""How fast the rendered book's live model runs in the reader's browser (headless Chromium).

Opens Chapter 7 of a built book (``make book``) in a fresh headless Chromium, from ``file://`` as
a reader would, and measures, each in its own fresh tab so nothing is cached between repeats:

* load: from the first interaction to a ready model (the runtime, the WebAssembly binary and
  the model read from the book's script chunks, then the ONNX session created);
* tokens/s after load (and one untimed warm-up run), for greedy and for sampled text
  (temperature 0.8, top-k 50), on a short prompt, and for a text that runs past the 128-token
  window (where every step refills the cache, as in Python).

Times are printed, never asserted (tests/test_browser.py checks what the page computes), and
written with ``--out`` (Appendix C prints book/results/live/browser.json).

    make book && python benchmarks/live_model.py            # _build/html
    python benchmarks/live_model.py --repeats 3 --out book/results/live/browser.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from cdp import Page  # noqa: E402

RUNS = {  # name: (prompt, new tokens, settings)
    "greedy, 100 tokens": ("ROMEO:\n", 100, {"temperature": 0, "topK": None, "topP": None}),
    "sampled, 100 tokens": ("ROMEO:\n", 100, {"temperature": 0.8, "topK": 50, "topP": None}),
    "sampled, 300 tokens (past the window)": (
        "ROMEO:\n", 300, {"temperature": 0.8, "topK": 50, "topP": None},
    ),
}  # fmt: skip


def cpu_name() -> str:
    info = Path("/proc/cpuinfo")
    if info.exists():
        for line in info.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def measure(browser: str, page_url: str) -> dict[str, float]:
    with Page(browser) as page:
        page.goto(page_url)
        result = {"load_s": page.eval(
            "(async () => { const t = performance.now(); await tinygptLive.load();"
            " return (performance.now() - t) / 1000; })()"
        )}  # fmt: skip
        # one untimed run first: the engine compiles the page's code on its first calls, and
        # without a warm-up the first timed run would pay for it
        page.eval("tinygptLive.generate('ROMEO:\\n', 20, {temperature: 0}, 0).then(r => r.tokens)")
        for name, (prompt, n, settings) in RUNS.items():
            config = {**settings, "repetitionPenalty": 1.0}
            run = page.eval(
                f"tinygptLive.generate({json.dumps(prompt)}, {n}, {json.dumps(config)}, 0)"
                ".then(r => [r.tokens, r.seconds])"
            )
            result[name] = run[0] / run[1]
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--html", type=Path, default=REPO / "_build" / "html")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, help="write the medians here (JSON)")
    args = parser.parse_args()
    page = args.html / "book" / "07_sampling.html"
    browser = next(
        (shutil.which(b) for b in ("chromium", "google-chrome") if shutil.which(b)), None
    )
    if not page.exists() or browser is None:
        sys.exit(f"needs a built book ({page}: make book) and Chromium on PATH")
    live = args.html / "_static" / "live"
    sizes = {p.stem.split(".")[0]: 0 for p in live.glob("*.js")}
    for p in live.glob("*.js"):
        sizes[p.stem.split(".")[0]] += p.stat().st_size
    print(
        "page files (bytes as served): "
        + ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in sorted(sizes.items()))
    )
    onnx = REPO / "book" / "live" / "model.onnx"
    print(f"ONNX file: {onnx.stat().st_size / 1e6:.2f} MB ({onnx.stat().st_size:,} bytes)")
    results = [measure(browser, page.as_uri()) for _ in range(args.repeats)]
    medians = {}
    for key in results[0]:
        values = [r[key] for r in results]
        medians[key] = statistics.median(values)
        unit = "s" if key == "load_s" else "tokens/s"
        shown = ", ".join(f"{v:.2f}" if unit == "s" else f"{v:.0f}" for v in values)
        print(f"{key:40s} median {medians[key]:8.2f} {unit}  ({shown})")
    if args.out:
        from tinygpt import files

        version = subprocess.run([browser, "--version"], capture_output=True, text=True).stdout
        machine = f"{cpu_name()}, {os.cpu_count()} cores"
        record = {
            "medians": medians,
            "repeats": args.repeats,
            "chromium": version.strip(),
            "machine": machine,
            "page_megabytes": {k: v / 1e6 for k, v in sizes.items()},
        }
        with files.atomic_path(args.out) as tmp:
            tmp.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
