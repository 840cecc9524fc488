"""Rendering alone: ms/label of our LabelWriter vs the seed method vs a minimal PDF writer.

    .venv/bin/python bench/render.py [--labels 1000,10000] [--layouts roll_62x29,a4_3x8]
                                     [--repeat 3] [--seed-sample 1000]

All three render the same labels (demo data) in this process, one after the other; each figure
is the best of --repeat runs (the least disturbed by other work on the box). The seed method
is ~50x slower, so it renders the first --seed-sample labels only and its ms/label is scaled
(it is linear: one PNG per label). Targets (DESIGN §6): ours within 1.5x of the minimal
writer; the seed method >= 20x slower than the whole pipeline (bench/batch.py checks that).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from common import best_of, machine, render_minimal, render_ours, render_seed, sample_labels

from webapp.pdf import labels as label_module
from webapp.pdf.fonts import add_fonts, warm
from webapp.pdf.layout import PRESETS
from webapp.pdf.qr import encode


def fixed_costs(out: Path, repeat: int) -> dict[str, float]:
    """Per-writer (per-chunk) costs in ms: loading the two fonts, a one-label document."""
    from fpdf import FPDF

    def load() -> None:
        add_fonts(FPDF())

    one = sample_labels(1)
    return {
        "font loading (add_font x2)": best_of(repeat, load) * 1000,
        "one-label document (fonts, subsets, output)": best_of(
            repeat, lambda: render_ours(one, PRESETS["roll_62x29"], out)
        )
        * 1000,
    }


def qr_cost(count: int) -> float:
    """ms per code of zxing-cpp encoding + our run operators (no lru cache)."""
    payloads = [f"Q{n:09d}" for n in range(count)]
    started = time.perf_counter()
    for payload in payloads:
        encode(payload)
    return (time.perf_counter() - started) / count * 1000


def compare(key: str, count: int, repeat: int, sample: int, out: Path) -> None:
    """Print ms/label and bytes/label of the three methods for `count` labels on `key`."""
    layout = PRESETS[key]
    items = sample_labels(count)
    results = {}
    for method, render in (("ours", render_ours), ("minimal", render_minimal)):
        path = out / f"{method}.pdf"
        seconds = best_of(repeat, lambda r=render, p=path: r(items, layout, p))
        results[method] = (seconds / count * 1000, path.stat().st_size / count)
    seconds = best_of(1, lambda: render_seed(items[:sample], layout, out / "seed.pdf"))
    results["seed"] = (seconds / sample * 1000, (out / "seed.pdf").stat().st_size / sample)
    ours = results["ours"][0]
    for method, (ms, size) in results.items():
        ratio = {
            "ours": "",
            "minimal": f"ours/minimal = {ours / ms:.2f} (target <= 1.5)",
            "seed": f"seed/ours = {ms / ours:.0f}x"
            + (f" (seed on {sample} labels)" if sample < count else ""),
        }
        print(
            f"{key:12s} {count:7d} {method:8s} {ms:9.3f} {size:8.0f}  {ratio[method]}", flush=True
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", default="1000,10000")
    parser.add_argument("--layouts", default="roll_62x29,a4_3x8")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed-sample", type=int, default=1000)
    args = parser.parse_args()

    warm()
    label_module.warm()
    print(f"# bench/render.py — {machine()}")
    print(f"# labels: {args.labels}; layouts: {args.layouts}; best of {args.repeat}")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        render_ours(sample_labels(200), PRESETS["roll_62x29"], out / "warmup.pdf")
        for name, ms in fixed_costs(out / "fixed.pdf", max(args.repeat, 5)).items():
            print(f"per writer  {name:46s} {ms:7.1f} ms")
        print(
            f"per label   {'QR code: zxing-cpp encode + run operators':46s} {qr_cost(2000):7.3f} ms"
        )
        print()
        print(
            f"{'layout':12s} {'labels':>7s} {'method':8s} {'ms/label':>9s} {'B/label':>8s}  ratio"
        )
        for key in args.layouts.split(","):
            for count in (int(n) for n in args.labels.split(",")):
                compare(key, count, args.repeat, min(count, args.seed_sample), out)
    print(f"# load average at the end: {machine().rsplit('load average ', 1)[1]}")


if __name__ == "__main__":
    main()
