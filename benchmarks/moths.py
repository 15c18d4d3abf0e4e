"""The real-photo bundle on EU-Moths' test split: against its teacher, degraded, and off-target.

    python benchmarks/moths.py --bundle OUT/eu_moths.bundle --data OUT/eu_moths.h5 \\
        --checkpoint OUT/run/best          # benchmarks/build_moth_bundle.sh runs this

Measured, on the 552 test photos (never seen by training, checkpoint choice or calibration):

* the teacher (torch, prompt ranking: the paper's protocol) and the INT8 bundle (ONNX Runtime)
  at genus and species Top-1, and the bundle's share of the teacher's species Top-1;
* the bundle's answers as `identify` gives them: the rank answered, how often that answer is
  right, the coverage per rank and the ECE of the stated confidence;
* the same photos blurred (the `paper` preset's 5×5 box blur) and recompressed as JPEG (q 30);
* photos of no moth: the BIOSCAN photos of other orders, 5 unlabelled BIOSCAN crops and blank
  frames — how many get a species, at what confidence;
* bad photos through the command (a truncated JPEG, a 30,000 × 30,000 PNG that is small on
  disk) beside good ones: one line each, the good ones still identified;
* latency of a photo at batch 1 and 32 on this machine, and the bundle's size.

Writes benchmarks/results/moths.md and .json.
"""

from __future__ import annotations

import argparse
import io
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"
WORK = ROOT / "benchmarks" / "work" / "moths"


def png_bomb(path: Path, side: int = 30_000) -> None:
    """A 1-bit PNG of side × side black pixels, written row by row (about 100 kB on disk)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    packer = zlib.compressobj(9)
    row = b"\x00" * (1 + (side + 7) // 8)
    body = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
    )


def encoded(image, fmt: str = "PNG", **kw) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kw)
    return buffer.getvalue()


def teacher_scores(checkpoint: Path, data: Path) -> dict:
    from hir_edge.evaluation.runner import EvalOptions, Evaluator

    options = EvalOptions(
        split="test", val_split=None, keys_split=None, preset="paper", seed=0, quiet=True
    )
    paper = Evaluator(checkpoint, data, options).run()["paper"]["IT"]
    return {
        cond: {r: paper[cond]["accuracy"][r]["top1"] for r in ("genus", "species")}
        for cond in ("clean", "noisy_i")
    }


def answer_scores(results, truths, ranks) -> dict:
    """Ranked-first Top-1 per rank, and the answers: rank, precision, coverage, ECE."""
    from hir_edge.runtime.scoring import expected_calibration_error

    n = len(results)
    top1 = {}
    for level, rank in enumerate(ranks):
        hits = [
            bool(r.ranks[rank]) and r.ranks[rank][0]["taxon"] == t[level]
            for r, t in zip(results, truths)
        ]
        top1[rank] = 100.0 * float(np.mean(hits))
    answered = {rank: 0 for rank in ranks}
    right, confidence = [], []
    for r, t in zip(results, truths):
        rank = r.assigned["rank"]
        if rank is None:
            continue
        answered[rank] += 1
        level = ranks.index(rank)
        right.append(r.assigned["taxon"] == t[level])
        confidence.append(r.assigned["confidence"])
    right_a, conf_a = np.array(right, bool), np.array(confidence, float)
    return {
        "n": n,
        "top1_%": top1,
        "answered_at": answered,
        "coverage_%": {
            rank: 100.0 * sum(answered[r] for r in ranks[ranks.index(rank) :]) / n for rank in ranks
        },
        "answer_right_%": 100.0 * float(right_a.mean()) if len(right_a) else None,
        "ece_%": 100.0 * expected_calibration_error(conf_a, right_a) if len(right_a) else None,
        "median_confidence_wrong": float(np.median(conf_a[~right_a])) if (~right_a).any() else None,
    }


def identify_all(identifier, photos: list[bytes], batch: int = 32):
    from hir_edge.runtime.identifier import Specimen

    out = []
    for start in range(0, len(photos), batch):
        out += identifier.identify(
            [Specimen(str(start + i), image=p) for i, p in enumerate(photos[start : start + batch])]
        )
    return out


def off_target(identifier) -> dict:
    from PIL import Image

    from hir_edge.errors import InputError

    photos, names = [], []
    for path in sorted((SHARED / "bioscan_photos").glob("*.jpg")):
        if path.stem != "Lepidoptera":
            photos.append(path.read_bytes())
            names.append(path.stem)
    for colour, name in (((255, 255, 255), "blank white"), ((128, 128, 128), "blank grey")):
        photos.append(encoded(Image.new("RGB", (640, 480), colour)))
        names.append(name)
    kept, rows = [], []
    for photo, name in zip(photos, names):
        try:  # as `identify` reads a photo: a blank frame is refused with its reason
            identifier.decode_photo(photo)
            kept.append((photo, name))
        except InputError as err:
            rows.append({"photo": name, "refused": err.message})
    results = identify_all(identifier, [photo for photo, _ in kept])
    rows = [
        {
            "photo": name,
            "answered_at": r.assigned["rank"],
            "taxon": r.assigned["taxon"],
            "confidence": r.assigned["confidence"],
            "novel": r.novel,
        }
        for (_, name), r in zip(kept, results)
    ] + rows
    species = [row for row in rows if row.get("answered_at") == "species"]
    return {
        "photos": rows,
        "n": len(rows),
        "species_answers": len(species),
        "refused": sum("refused" in row for row in rows),
        "unanswered": sum("refused" not in row and row["answered_at"] is None for row in rows),
        "median_species_confidence": float(np.median([r["confidence"] for r in species]))
        if species
        else None,
    }


def latency(identifier, photos: list[bytes]) -> dict:
    from hir_edge.runtime.identifier import Specimen

    identify_all(identifier, photos[:8])
    t = time.perf_counter()
    for i, photo in enumerate(photos[:100]):
        identifier.identify([Specimen(str(i), image=photo)])
    single = (time.perf_counter() - t) / min(100, len(photos))
    t = time.perf_counter()
    identify_all(identifier, photos[:256])
    batch = (time.perf_counter() - t) / min(256, len(photos))
    return {"ms_per_photo_batch1": 1000 * single, "ms_per_photo_batch32": 1000 * batch}


def bad_photos(bundle: Path, good: list[bytes]) -> dict:
    folder = WORK / "mixed"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.iterdir():
        old.unlink()
    for i, photo in enumerate(good[:3]):
        (folder / f"good{i}.jpg").write_bytes(photo)
    (folder / "truncated.jpg").write_bytes(good[3][: len(good[3]) // 2])
    png_bomb(folder / "huge.png")
    cmd = [
        sys.executable,
        "-m",
        "hir_edge",
        "identify",
        "--bundle",
        str(bundle),
        "--image",
        str(folder),
        "--format",
        "tsv",
        "--quiet",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    rows = [line for line in proc.stdout.splitlines()[1:] if line.strip()]
    return {
        "exit_code": proc.returncode,
        "rows": len(rows),
        "stderr": proc.stderr.strip().splitlines(),
        "huge_png_bytes": (folder / "huge.png").stat().st_size,
    }


from results_file import write_results  # noqa: E402  (benchmarks/ is on sys.path)


def main() -> None:
    from PIL import Image

    from hir_edge.data.hdf5 import SpecimenStore
    from hir_edge.degrade import blur_image, get_preset
    from hir_edge.images import load_image
    from hir_edge.runtime.backends import select_backend
    from hir_edge.runtime.bundle import open_bundle
    from hir_edge.runtime.identifier import Identifier

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/moths")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    bundle = open_bundle(args.bundle)
    # The bundle ships every photo it was given as a reference, test photos included: asked
    # about a test photo it would find the photo itself. Measured with the library it was
    # calibrated with, the training photos.
    train_ids = set(SpecimenStore(args.data, "train").processids())
    keep = np.array([str(i) in train_ids for i in bundle.references.ids])
    bundle.references = bundle.references.subset(keep)
    backend = select_backend(bundle, "onnxruntime", "int8", "cpu")
    identifier = Identifier(bundle, backend)
    ranks = list(bundle.taxonomy.ranks)
    test = SpecimenStore(args.data, "test")
    photos = [test.image_bytes(i) for i in range(len(test))]
    truths = test.lineages()
    kernel = get_preset("paper").blur_kernel
    conditions = {
        "clean": photos,
        "blurred": [encoded(blur_image(load_image(p), kernel)) for p in photos],
        "jpeg_q30": [encoded(load_image(p), "JPEG", quality=30) for p in photos],
    }
    report: dict = {
        "bundle": str(args.bundle),
        "backend": backend.describe(),
        "bundle_mb": bundle.size_bytes() / 2**20,
        "int8_cosine": bundle.manifest.measurements.get("int8_cosine", {}).get("image"),
        "teacher": teacher_scores(args.checkpoint, args.data),
        "bundle_answers": {},
    }
    for name, images in conditions.items():
        t = time.perf_counter()
        report["bundle_answers"][name] = answer_scores(
            identify_all(identifier, images), truths, ranks
        )
        print(f"{name}: {report['bundle_answers'][name]} ({time.perf_counter() - t:.0f}s)")
    teacher_species = report["teacher"]["clean"]["species"]
    report["retention_species"] = (
        report["bundle_answers"]["clean"]["top1_%"]["species"] / teacher_species
    )
    report["off_target"] = off_target(identifier)
    report["latency"] = latency(identifier, photos)
    report["bad_photos"] = bad_photos(args.bundle, photos)
    del Image
    write(args.out, report)


def write(out: Path, r: dict) -> None:
    t = r["teacher"]
    a = r["bundle_answers"]
    lines = [
        "# EU-Moths: the real-photo bundle on the test split",
        "",
        f"Bundle {r['bundle']} ({r['bundle_mb']:.1f} MB); backend {r['backend']}. 552 test "
        "photos of 200 species (143 genera), never used for training, checkpoint choice or "
        "calibration (those used the train split and a validation share held out of it).",
        "",
        "## Top-1 (the taxon ranked first)",
        "",
        "| Model | Photos | genus | species |",
        "|---|---|---|---|",
        f"| teacher (torch, fp32) | clean | {t['clean']['genus']:.1f} | {t['clean']['species']:.1f} |",
        f"| teacher (torch, fp32) | blurred | {t['noisy_i']['genus']:.1f} | {t['noisy_i']['species']:.1f} |",
    ]
    for name, s in a.items():
        lines.append(
            f"| bundle (INT8) | {name} | {s['top1_%']['genus']:.1f} | {s['top1_%']['species']:.1f} |"
        )
    lines += [
        "",
        f"The INT8 bundle keeps {r['retention_species']:.3f} of the teacher's species Top-1."
        + (
            f" Its image embedding against the fp32 graph's, on the validation photos (the "
            f"export's measurement, on this machine): cosine mean {c['mean_cosine']:.4f}, "
            f"min {c['min_cosine']:.4f}."
            if (c := r.get("int8_cosine"))
            else ""
        ),
        "",
        "## The answers `identify` gives",
        "",
        "| Photos | answered at species | genus | coarser | none | answer right % | ECE % | median confidence of wrong answers |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, s in a.items():
        at = s["answered_at"]
        coarser = at.get("order", 0) + at.get("family", 0)
        none = s["n"] - sum(at.values())
        wrong = s["median_confidence_wrong"]
        lines.append(
            f"| {name} | {at['species']} | {at['genus']} | {coarser} | {none} | "
            f"{s['answer_right_%']:.1f} | {s['ece_%']:.1f} | "
            + (f"{wrong:.3f}" if wrong is not None else "–")
            + " |"
        )
    o = r["off_target"]
    lines += [
        "",
        "## Photos of no moth",
        "",
        f"{o['n']} photos (BIOSCAN photos of the other 17 orders, 5 unlabelled BIOSCAN crops, a "
        f"blank white and a blank grey frame): {o['refused']} refused, {o['unanswered']} without "
        f"an answer (unlike the bundle's reference photos: `photo_scope.md`), "
        f"{o['species_answers']} answered with a species"
        + (
            f" (median confidence {o['median_species_confidence']:.3f})"
            if o["median_species_confidence"] is not None
            else ""
        )
        + ".",
        "",
        "| Photo | answered at | taxon | confidence |",
        "|---|---|---|---|",
    ]
    for row in o["photos"]:
        if "refused" in row:
            lines.append(f"| {row['photo']} | refused: {row['refused']} | – | – |")
            continue
        lines.append(
            f"| {row['photo']} | {row['answered_at'] or '–'} | {row['taxon'] or '–'} | {row['confidence']:.3f} |"
        )
    b = r["bad_photos"]
    lat = r["latency"]
    lines += [
        "",
        "## Bad photos beside good ones (through the command)",
        "",
        f"3 good photos, a JPEG cut in half and a 30,000 × 30,000 PNG of {b['huge_png_bytes'] / 1e3:.0f} kB: "
        f"exit code {b['exit_code']}, {b['rows']} rows written; stderr:",
        "",
        "```",
        *b["stderr"],
        "```",
        "",
        "## Speed on this machine (2 CPU cores, ONNX Runtime INT8, decoding included)",
        "",
        f"{lat['ms_per_photo_batch1']:.1f} ms per photo at batch 1, {lat['ms_per_photo_batch32']:.1f} ms at batch 32.",
    ]
    text = "\n".join(lines) + "\n"
    write_results(out, text, r)


if __name__ == "__main__":
    main()
