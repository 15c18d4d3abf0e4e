"""What export costs and keeps: sizes, CPU latency and accuracy retention of the INT8 student.

    python benchmarks/export_bench.py --teacher RUN/best --bundle OUT/bold100.bundle

* sizes (MB) of the fp32 and INT8 graphs;
* CPU latency per specimen at batch 1 and 32: torch fp32 (teacher and student), ONNX Runtime
  fp32 and INT8 (student);
* retention: the student's I+DT Fusion Global Top-1 (INT8 and fp32, through the bundle's graphs)
  ÷ the teacher's (fp32, torch), on the test split, clean and Noisy I+D (preset ``paper``, seed 0),
  with the paper's protocol and the teacher's prompt bank.

Writes benchmarks/results/export.md and .json.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def median_ms(fn, repeat: int = 15) -> float:
    fn()
    runs = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t)
    return 1000 * float(np.median(runs))


ROUNDS = 5
_BACKENDS: dict = {}


def onnx_latency_ms(bundle_path: Path, precision: str, pixels, ids, mask) -> float:
    """Per-specimen latency through ONNX Runtime, in a worker process that never loads torch
    (as in the field: torch's OpenMP threads would compete for the cores)."""
    from hir_edge.runtime.backends import OnnxRuntimeBackend
    from hir_edge.runtime.bundle import open_bundle

    if precision not in _BACKENDS:
        _BACKENDS[precision] = OnnxRuntimeBackend(
            open_bundle(bundle_path), precision, device="cpu", threads=2
        )
    backend = _BACKENDS[precision]
    return median_ms(
        lambda: backend.fuse(backend.embed_images(pixels), backend.embed_dna(ids, mask)), 7
    ) / len(pixels)


def bundle_embeddings(backend, x, noisy: bool, preset, seed: int, indices, tokenizer):
    """Fused embeddings of specimens through a bundle backend, optionally degraded."""
    from hir_edge.degrade import blur_chw, degrade_dna_seeded

    pixels, seqs = x.pixels, x.sequences
    if noisy:
        pixels = blur_chw(pixels, preset.blur_kernel)
        seqs = [
            degrade_dna_seeded(s, preset.dna, seed, int(i)) if s else s
            for s, i in zip(seqs, indices)
        ]
    ids, mask = tokenizer.encode_batch([s or "N" for s in seqs])
    out = []
    for start in range(0, len(pixels), 64):
        zi = backend.embed_images(pixels[start : start + 64])
        zd = backend.embed_dna(ids[start : start + 64], mask[start : start + 64])
        out.append(backend.fuse(zi, zd)[0])
    return np.concatenate(out)


from results_file import write_results  # noqa: E402  (benchmarks/ is on sys.path)


def main() -> None:
    import torch

    from hir_edge.data.hdf5 import SpecimenStore
    from hir_edge.degrade import get_preset
    from hir_edge.dna.tokens import tokenizer_from_dict
    from hir_edge.evaluation.protocol import paper_protocol
    from hir_edge.evaluation.runner import EvalOptions, Evaluator
    from hir_edge.export.library import field_inputs
    from hir_edge.images import PreprocessConfig
    from hir_edge.models import load_model
    from hir_edge.runtime.backends import OnnxRuntimeBackend
    from hir_edge.runtime.bundle import open_bundle

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--teacher", type=Path, required=True)
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument(
        "--data", type=Path, default=ROOT / ".cache/hir-edge/synth-bold100/specimens.h5"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/export")
    args = parser.parse_args()
    torch.set_num_threads(2)
    bundle = open_bundle(args.bundle)
    teacher = load_model(args.teacher).eval()
    report: dict = {"teacher": str(args.teacher), "bundle": str(args.bundle)}

    # sizes -------------------------------------------------------------------
    sizes = {}
    for part, graph in bundle.manifest.graphs.items():
        sizes[part] = {p: (bundle.root / f).stat().st_size / 2**20 for p, f in graph.files.items()}
    teacher_mb = (args.teacher / "model.safetensors").stat().st_size / 2**20
    teacher_field_mb = (
        sum(p.numel() * 4 for n, p in teacher.named_parameters() if not n.startswith("text_model"))
        / 2**20
    )
    report["sizes_mb"] = {
        "graphs": sizes,
        "teacher_checkpoint": teacher_mb,
        "teacher_without_text_tower_fp32": teacher_field_mb,
    }

    # accuracy retention --------------------------------------------------------
    preset = get_preset("paper")
    teacher_res = Evaluator(
        args.teacher,
        args.data,
        EvalOptions(val_split=None, keys_split=None, preset="paper", seed=0),
    ).run()
    store = SpecimenStore(args.data, "test")
    idx = np.arange(len(store))
    pre = PreprocessConfig.from_dict(bundle.manifest.preprocess)
    tok = tokenizer_from_dict(bundle.manifest.dna_tokenizer)
    x = field_inputs(store, idx, pre, tok)
    labels = bundle.taxonomy.encode_many(store.lineages())
    masks = [bundle.taxonomy.label_mask(lv) for lv in range(4)]
    both = x.has_image & x.has_dna
    retention = {}
    for cond, noisy in (("clean", False), ("noisy_id", True)):
        t_top1 = teacher_res["paper"]["I+DT Fusion"][cond]["accuracy"]["global"]["top1"]
        row = {"teacher_fp32": t_top1}
        for precision in ("fp32", "int8"):
            backend = OnnxRuntimeBackend(bundle, precision, device="cpu")
            fused = bundle_embeddings(backend, x, noisy, preset, 0, idx, tok)
            res = paper_protocol(
                fused,
                bundle.prompt_banks,
                labels,
                bundle.taxonomy.ranks,
                candidate_masks=masks,
                valid=both,
            )
            row[f"student_{precision}"] = res.cell("global", 1)
            row[f"retention_{precision}"] = res.cell("global", 1) / t_top1
        retention[cond] = row
    report["retention"] = retention

    # latency ---------------------------------------------------------------------
    from hir_edge.models import create_model

    student_torch = create_model(
        bundle.manifest.model.student_preset or teacher.config.preset,
        embed_dim=teacher.embed_dim,
    ).eval()
    # Interleaved rounds: this machine's speed drifts (2x between minutes), so every backend is
    # timed in each round and the speed-ups are medians of per-round ratios.
    rounds: dict = {b: {} for b in (1, 32)}
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        for _ in range(ROUNDS):
            for batch in (1, 32):
                pixels = x.pixels[:batch]
                ids, mask = x.ids[:batch], x.mask[:batch]
                rows = rounds[batch]
                for name, model in (
                    ("torch fp32 teacher", teacher),
                    ("torch fp32 student", student_torch),
                ):
                    size = model.preprocess.image_size
                    px = torch.from_numpy(pixels)
                    if size != pixels.shape[-1]:
                        px = torch.nn.functional.interpolate(px, size=(size, size))
                    tid, tmask = torch.from_numpy(ids), torch.from_numpy(mask)

                    def run(m=model, px=px, tid=tid, tmask=tmask):
                        with torch.no_grad():
                            m.fuse(m.encode_image(px), m.encode_dna(tid, tmask))

                    rows.setdefault(name, []).append(median_ms(run, 7) / batch)
                time.sleep(0.2)  # let torch's OpenMP threads stop spinning
                for precision in ("fp32", "int8"):
                    rows.setdefault(f"onnxruntime {precision} student", []).append(
                        pool.submit(
                            onnx_latency_ms, args.bundle, precision, pixels, ids, mask
                        ).result()
                    )
    latency = {b: {k: float(np.median(v)) for k, v in r.items()} for b, r in rounds.items()}
    base = "torch fp32 teacher"
    report["speedup_vs_torch_teacher"] = {
        b: {k: float(np.median(np.array(r[base]) / np.array(v))) for k, v in r.items() if k != base}
        for b, r in rounds.items()
    }
    report["latency_ms_per_specimen"] = latency
    write(args.out, report)


def write(out: Path, report: dict) -> None:
    s = report["sizes_mb"]
    enc = {
        p: sum(s["graphs"][part].get(p, 0) for part in ("image", "dna")) for p in ("fp32", "int8")
    }
    lines = [
        "# Export: size, speed and retention of the INT8 student",
        "",
        f"Teacher {report['teacher']}; bundle {report['bundle']}. CPU: 2 cores, ONNX Runtime and torch "
        "with 2 threads; latency per specimen (photo + read + fusion): in each of 5 interleaved "
        "rounds the median of 7 runs of every backend, then the median over rounds; ONNX Runtime "
        "runs in a process of its own without torch, as in the field. Speed-up: median of the "
        "per-round ratios to the torch fp32 teacher.",
        "",
        "## Sizes (MB)",
        "",
        "| Graph | fp32 | INT8 (CPU) | INT8 (TensorRT Q/DQ) |",
        "|---|---|---|---|",
    ]
    for part, files in s["graphs"].items():
        lines.append(
            f"| {part} | {files.get('fp32', 0):.2f} | {files.get('int8', 0):.2f} | {files.get('int8-trt', 0):.2f} |"
        )
    lines += [
        "",
        f"Teacher checkpoint {s['teacher_checkpoint']:.1f} MB; teacher's field part (no text tower) in fp32 "
        f"{s['teacher_without_text_tower_fp32']:.1f} MB; student encoders fp32 {enc['fp32']:.2f} MB, INT8 "
        f"{enc['int8']:.2f} MB: {s['teacher_without_text_tower_fp32'] / max(enc['int8'], 1e-9):.1f}× smaller than the "
        "teacher's field part.",
        "",
        "## Latency (ms per specimen)",
        "",
        "| Backend | batch 1 (speed-up) | batch 32 (speed-up) |",
        "|---|---|---|",
    ]
    lat = report["latency_ms_per_specimen"]
    up = report["speedup_vs_torch_teacher"]
    for name in lat[1]:
        if name in up[1]:
            lines.append(
                f"| {name} | {lat[1][name]:.2f} ({up[1][name]:.1f}×) | "
                f"{lat[32][name]:.2f} ({up[32][name]:.1f}×) |"
            )
        else:
            lines.append(f"| {name} | {lat[1][name]:.2f} | {lat[32][name]:.2f} |")
    lines += [
        "",
        "## Retention (I+DT Fusion, Global Top-1 %, test split)",
        "",
        "| Cond. | teacher fp32 (torch) | student fp32 (ONNX) | student INT8 (ONNX) | retention fp32 | retention INT8 |",
        "|---|---|---|---|---|---|",
    ]
    for cond, r in report["retention"].items():
        lines.append(
            f"| {cond} | {r['teacher_fp32']:.1f} | {r['student_fp32']:.1f} | {r['student_int8']:.1f} | "
            f"{r['retention_fp32']:.3f} | {r['retention_int8']:.3f} |"
        )
    text = "\n".join(lines) + "\n"
    write_results(out, text, report)


if __name__ == "__main__":
    main()
