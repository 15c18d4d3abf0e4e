"""Load + preprocess time of real 2880×2160 BIOSCAN photos: full JPEG decode vs draft decode.

``load_image(path, min_size=S)`` lets libjpeg decode at 1/2, 1/4 or 1/8 scale while keeping the
shorter side >= S. This measures what that saves on the edge path (Pillow + numpy, one thread)
and what it costs: the difference of the final model tensor against full decoding.

    python benchmarks/image_decode.py [--data ../shared/data/bioscan_photos] [--force]

Writes benchmarks/results/image_decode.md and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import PIL
from PIL import features

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # runs from a checkout, installed or not

from hir_edge.images import PreprocessConfig, load_image, preprocess  # noqa: E402
from hir_edge.io import atomic_write_text, ensure_writable  # noqa: E402

DEFAULT_DATA = REPO.parent / "shared" / "data" / "bioscan_photos"
DEFAULT_OUTPUT = REPO / "benchmarks" / "results" / "image_decode"


def _time_pass(photos: list[Path], config: PreprocessConfig, min_size: int | None) -> float:
    """Mean milliseconds per photo for one pass of load + preprocess."""
    start = time.perf_counter()
    for path in photos:
        preprocess(load_image(path, min_size=min_size), config)
    return (time.perf_counter() - start) * 1000 / len(photos)


def run(data: Path, image_size: int, repeats: int) -> dict:
    photos = sorted(p for p in data.glob("*.jpg") if not p.name.startswith("cropped_"))
    if not photos:
        raise SystemExit(f"no full-frame photos (*.jpg) in {data}")
    config = PreprocessConfig(image_size=image_size)
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    modes = {
        "full decode": None,
        "draft, min_size=S": image_size,
        "draft, min_size=2S": 2 * image_size,
    }
    full = [preprocess(load_image(p), config) for p in photos]
    rows = []
    times: dict[str, list[float]] = {name: [] for name in modes}
    for min_size in modes.values():  # warm-up: file cache, allocator
        _time_pass(photos[:3], config, min_size)
    for _ in range(repeats):  # interleaved so drift hits every mode alike
        for name, min_size in modes.items():
            times[name].append(_time_pass(photos, config, min_size))
    base_ms = statistics.median(times["full decode"])
    for name, min_size in modes.items():
        decoded = load_image(photos[0], min_size=min_size).size
        diffs = [
            np.abs(preprocess(load_image(p, min_size=min_size), config) - ref)
            for p, ref in zip(photos, full)
        ]
        ms = statistics.median(times[name])
        rows.append(
            {
                "mode": name,
                "min_size": min_size,
                "decoded_size": list(decoded),
                "ms_per_image": round(ms, 2),
                "ms_runs": [round(t, 2) for t in times[name]],
                "speedup": round(base_ms / ms, 2),
                "mean_abs_diff": float(np.mean([d.mean() for d in diffs])),
                "worst_image_mean_abs_diff": float(max(d.mean() for d in diffs)),
                "max_abs_diff": float(max(d.max() for d in diffs)),
            }
        )
    original = load_image(photos[0]).size
    return {
        "benchmark": "image_decode",
        "photos": len(photos),
        "photo_size": list(original),
        "image_size": image_size,
        "repeats": repeats,
        "rows": rows,
        "environment": {
            "python": platform.python_version(),
            "pillow": PIL.__version__,
            "numpy": np.__version__,
            "libjpeg_turbo": bool(features.check_feature("libjpeg_turbo")),
            "cpu": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "load_average_1min": round(load_before, 2),
        },
        "date": time.strftime("%Y-%m-%d"),
    }


def to_markdown(result: dict) -> str:
    env = result["environment"]
    w, h = result["photo_size"]
    lines = [
        "# Image decode: full vs draft (load + preprocess to the model tensor)",
        "",
        f"{result['photos']} real BIOSCAN photos at {w}×{h}, preprocessed to "
        f"{result['image_size']} px (`load_image` + `preprocess`, open_clip eval transform). "
        f"Median over {result['repeats']} interleaved passes of the mean time per image, one "
        f"thread. Differences are of the normalised float32 tensor against full decoding "
        f"(normalised units: 0.1 ≈ 7/255 of pixel value).",
        "",
        "| mode | decoded size | ms / image | speed-up | mean abs diff | worst image mean | "
        "max abs diff |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for row in result["rows"]:
        dw, dh = row["decoded_size"]
        lines.append(
            f"| {row['mode']} | {dw}×{dh} | {row['ms_per_image']:.1f} | {row['speedup']:.2f}× | "
            f"{row['mean_abs_diff']:.4f} | {row['worst_image_mean_abs_diff']:.4f} | "
            f"{row['max_abs_diff']:.3f} |"
        )
    lines += [
        "",
        f"Environment: Python {env['python']}, Pillow {env['pillow']} (libjpeg-turbo "
        f"{'yes' if env['libjpeg_turbo'] else 'no'}), numpy {env['numpy']}, {env['cpu']} × "
        f"{env['cpu_count']} cores, {env['platform']}; 1-min load average at start "
        f"{env['load_average_1min']} (timings are noisy when other work shares the CPUs); "
        f"{result['date']}.",
        "",
        "Reproduce: `python benchmarks/image_decode.py --force`",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of photos")
    parser.add_argument("--image-size", type=int, default=224, help="model input side S")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes per mode")
    parser.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        help="results path without suffix (.md and .json are written)",
    )
    parser.add_argument("--force", action="store_true", help="overwrite earlier results")
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        print(
            f"skipped: {args.data} is absent (the real photos live beside the checkout)",
            file=sys.stderr,
        )
        return 0
    md_path, json_path = args.output.with_suffix(".md"), args.output.with_suffix(".json")
    for path in (md_path, json_path):
        ensure_writable(path, args.force)
    result = run(args.data, args.image_size, args.repeats)
    markdown = to_markdown(result)
    atomic_write_text(json_path, json.dumps(result, indent=2) + "\n")
    atomic_write_text(md_path, markdown)
    print(markdown)
    print(f"wrote {md_path} and {json_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
