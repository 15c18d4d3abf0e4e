"""Read, clean, QC and orient every real BOLD COI barcode beside the checkout.

What it checks, on the 9,278 records of ../shared/data/bold_coi/*.tsv:
  * every record parses from the TSV, and again after a FASTA round trip (same ids, same
    clean sequences, same QC);
  * the QC figures of real barcodes (length, N, ambiguity codes, best-frame stop codons, how
    repetitive they are against the low-complexity rule);
  * strand detection: BOLD stores COI-5P on the coding strand, so every record must be kept
    as it is, and its reverse complement must be flipped back to it exactly;
  * the same on reads degraded with hir_edge.degrade presets, against the stop-codon rule;
  * a cross-fit of the orientation model (fit on one file, test on the other).

    python benchmarks/bold_qc.py [--force]     # writes benchmarks/results/bold_qc.{md,json}
    python benchmarks/bold_qc.py --fit         # prints COI_MARKOV refitted on these records

It exits 1 when a record is skipped, the FASTA round trip differs, or a record with an open
reading frame is misoriented.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "bold_coi"
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # runs from a checkout, installed or not

from hir_edge.degrade import degrade_dna_seeded, get_preset  # noqa: E402
from hir_edge.dna.complexity import MIN_WORDS, low_complexity, repeat_share  # noqa: E402
from hir_edge.dna.io import (  # noqa: E402
    COI_MARKOV,
    DEFAULT_MAX_N_FRACTION,
    DEFAULT_MIN_LENGTH,
    RawRecord,
    ReadReport,
    clean_read,
    iter_records,
    orient_coi,
    read_sequences,
    reverse_complement,
    stop_codon_counts,
    write_fasta,
)
from hir_edge.io import atomic_write_text, ensure_writable  # noqa: E402

WINDOW = 120  # bp of the fragments whose repetitiveness is reported

PRESETS = ("none", "mild", "paper", "severe")
SEED = 0


def qc_stats(reads: list) -> dict:
    lengths = [r.qc.clean_length for r in reads]
    n_frac = np.array([r.qc.n_fraction for r in reads])
    stops = np.array([r.qc.stop_codons for r in reads])
    margins = np.array([r.qc.orientation_margin for r in reads])
    flags: dict[str, int] = {}
    for r in reads:
        for flag in r.qc.flags:
            flags[flag] = flags.get(flag, 0) + 1
    return {
        "length_min": min(lengths),
        "length_median": statistics.median(lengths),
        "length_max": max(lengths),
        "reads_with_n": int((n_frac > 0).sum()),
        "n_fraction_mean": float(n_frac.mean()),
        "n_fraction_max": float(n_frac.max()),
        "longest_n_run_max": max(r.qc.longest_n_run for r in reads),
        "ambiguity_codes": sum(r.qc.ambiguity_count for r in reads),
        "reads_with_ambiguity_codes": sum(r.qc.ambiguity_count > 0 for r in reads),
        "gaps_removed": sum(r.qc.gaps_removed for r in reads),
        "best_frame_stops": {
            "0": int((stops == 0).sum()),
            "1": int((stops == 1).sum()),
            "2": int((stops == 2).sum()),
            "3+": int((stops >= 3).sum()),
        },
        "margin_percentiles": [float(v) for v in np.percentile(margins, [0, 1, 50])],
        "flags": dict(sorted(flags.items())),
        **repeat_stats(reads),
    }


def repeat_stats(reads: list) -> dict:
    """How repetitive real barcodes are, against the low-complexity rule
    (hir_edge.dna.complexity): the share of each read's 4-mers that are its 6 most common, over
    whole reads and over 3 seeded 120-bp windows of each (a fragment is more repetitive)."""
    whole = np.array([repeat_share(r.sequence)[1] for r in reads])
    rng = np.random.default_rng(0)
    windows = []
    for r in reads:
        if len(r.sequence) < WINDOW:
            continue
        for start in rng.integers(0, len(r.sequence) - WINDOW + 1, 3):
            words, share = repeat_share(r.sequence[start : start + WINDOW])
            if words >= MIN_WORDS:
                windows.append(share)
    return {
        "repeat_share_median": float(np.median(whole)),
        "repeat_share_max": float(whole.max()),
        "window_repeat_share_max": float(max(windows)),
        "windows": len(windows),
        "low_complexity_reads": sum(low_complexity(r.sequence) is not None for r in reads),
    }


def orientation_check(raws: list[RawRecord]) -> dict:
    """Forward records must be kept, their reverse complements flipped back exactly."""
    wrong: dict[str, list[dict]] = {"forward": [], "reverse": []}
    open_frame = 0
    start = time.perf_counter()
    for raw in raws:
        truth, qc = clean_read(raw.sequence)
        open_frame += qc.stop_codons == 0
        oriented, flipped, _ = orient_coi(reverse_complement(truth))
        for side, bad in (("forward", orient_coi(truth)[1]), ("reverse", oriented != truth)):
            if bad or (side == "reverse" and not flipped):
                forward_stops, reverse_stops = stop_codon_counts(truth)
                wrong[side].append(
                    {
                        "id": raw.id,
                        "best_frame_stops": int(forward_stops.min()),
                        "reverse_best_frame_stops": int(reverse_stops.min()),
                    }
                )
    seconds = time.perf_counter() - start
    n = len(raws)
    return {
        "forward_correct": n - len(wrong["forward"]),
        "reverse_correct": n - len(wrong["reverse"]),
        "forward_accuracy": (n - len(wrong["forward"])) / n,
        "reverse_accuracy": (n - len(wrong["reverse"])) / n,
        "open_frame_records": open_frame,
        "open_frame_wrong": sum(
            w["best_frame_stops"] == 0 for w in wrong["forward"] + wrong["reverse"]
        ),
        "forward_wrong": wrong["forward"],
        "reverse_wrong": wrong["reverse"],
        "seconds": seconds,
        "orientations_per_s": 2 * n / seconds,
    }


def stop_rule(seq: str) -> bool:
    """The baseline: fewest stops in the best frame of each strand, a tie to the T-richer."""
    forward, reverse = stop_codon_counts(seq)
    if forward.min() != reverse.min():
        return bool(reverse.min() < forward.min())
    return seq.count("T") < seq.count("A")


def fit_model(seqs: list[str]) -> np.ndarray:
    """P(base | previous base, codon position) on coding-strand reads (``COI_MARKOV``'s fit).

    The frame is the one with fewest stop codons; N transitions are skipped; add-one smoothing.
    """
    counts = np.ones((3, 4, 4))
    code = {b: i for i, b in enumerate("ACGT")}
    for seq in seqs:
        frame = int(np.argmin(stop_codon_counts(seq)[0]))
        for j in range(1, len(seq)):
            a, b = code.get(seq[j - 1]), code.get(seq[j])
            if a is not None and b is not None:
                counts[(j - frame) % 3, a, b] += 1
    return counts / counts.sum(axis=2, keepdims=True)


def wrong_calls(seqs: list[str], flips) -> tuple[int, int]:
    """(forward reads flipped, reverse complements kept) for a strand caller."""
    forward = sum(bool(flips(s)) for s in seqs)
    reverse = sum(not flips(reverse_complement(s)) for s in seqs)
    return forward, reverse


def robustness(seqs: list[str]) -> dict:
    """Orientation of degraded reads (hir_edge.degrade presets): the model vs the stop rule."""
    out = {}
    for name in PRESETS:
        noise = get_preset(name).dna
        noisy = [degrade_dna_seeded(s, noise, SEED, i) for i, s in enumerate(seqs)]
        model = wrong_calls(noisy, lambda s: orient_coi(s)[1])
        stops = wrong_calls(noisy, stop_rule)
        out[name] = {
            "preset": get_preset(name).describe(),
            "n": len(noisy),
            "model_wrong_forward": model[0],
            "model_wrong_reverse": model[1],
            "stop_rule_wrong_forward": stops[0],
            "stop_rule_wrong_reverse": stops[1],
        }
    return out


def cross_fit(seqs_by_file: dict[str, list[str]]) -> list[dict]:
    """Fit the model on one file and orient the other (disjoint species), clean and noisy."""
    (name_a, seqs_a), (name_b, seqs_b) = seqs_by_file.items()
    out = []
    for fit_name, fit_seqs, test_name, test_seqs in (
        (name_a, seqs_a, name_b, seqs_b),
        (name_b, seqs_b, name_a, seqs_a),
    ):
        model = fit_model(fit_seqs)
        row = {"fit_on": fit_name, "tested_on": test_name, "n": len(test_seqs)}
        for preset in ("none", "paper"):
            noise = get_preset(preset).dna
            noisy = [degrade_dna_seeded(s, noise, SEED, i) for i, s in enumerate(test_seqs)]
            wrong = wrong_calls(noisy, lambda s, m=model: orient_coi(s, m)[1])
            row[f"{preset}_wrong"] = wrong[0] + wrong[1]
        out.append(row)
    return out


def run_file(path: Path, workdir: Path) -> dict:
    start = time.perf_counter()
    report = ReadReport()
    reads = list(read_sequences(path, report=report))
    tsv_seconds = time.perf_counter() - start

    raws = [r for r in iter_records(path) if isinstance(r, RawRecord)]
    fasta = workdir / f"{path.stem}.fasta"
    write_fasta(((r.id, r.sequence) for r in raws), fasta, line_width=60)
    start = time.perf_counter()
    fasta_report = ReadReport()
    fasta_reads = list(read_sequences(fasta, report=fasta_report))
    fasta_seconds = time.perf_counter() - start
    same = [(r.id, r.sequence, r.qc) for r in reads] == [
        (r.id, r.sequence, r.qc) for r in fasta_reads
    ]
    forward = [clean_read(r.sequence)[0] for r in raws]
    return {
        "file": path.name,
        "forward_sequences": forward,
        "records_tsv": report.n_read,
        "reads_tsv": report.n_ok,
        "skipped_tsv": report.n_skipped,
        "records_fasta": fasta_report.n_read,
        "reads_fasta": fasta_report.n_ok,
        "skipped_fasta": fasta_report.n_skipped,
        "fasta_round_trip_identical": same,
        "errors": [str(e) for e in report.errors + fasta_report.errors][:20],
        "tsv_seconds": tsv_seconds,
        "tsv_reads_per_s": report.n_ok / tsv_seconds,
        "fasta_seconds": fasta_seconds,
        "fasta_reads_per_s": fasta_report.n_ok / fasta_seconds,
        "qc": qc_stats(reads),
        "orientation": orientation_check(raws),
    }


def markdown(results: list[dict], extra: dict, meta: dict) -> str:
    def row(label: str, fn) -> str:
        return f"| {label} | " + " | ".join(str(fn(r)) for r in results) + " |"

    pct = "{:.2%}".format
    lines = [
        "# BOLD COI reading, QC and orientation",
        "",
        f"Generated by `benchmarks/bold_qc.py` on {meta['date']} ({meta['machine']}, "
        f"Python {meta['python']}). Data: `../shared/data/bold_coi/` (public BOLD records).",
        f"QC thresholds: `short` below {meta['min_length']} bp, `many_n` above "
        f"{meta['max_n_fraction']:.0%} N. Orientation: `orient_coi`, the likelier strand under "
        "a 3-periodic first-order Markov model of COI coding sequence (`COI_MARKOV`), frame "
        "chosen per 90-bp window.",
        "",
        "| | " + " | ".join(r["file"] for r in results) + " |",
        "|---|" + "---|" * len(results),
        row("records parsed (TSV)", lambda r: r["records_tsv"]),
        row("reads kept / skipped (TSV)", lambda r: f"{r['reads_tsv']} / {r['skipped_tsv']}"),
        row("records parsed (FASTA round trip)", lambda r: r["records_fasta"]),
        row("reads kept / skipped (FASTA)", lambda r: f"{r['reads_fasta']} / {r['skipped_fasta']}"),
        row("FASTA ids, sequences, QC identical", lambda r: r["fasta_round_trip_identical"]),
        row(
            "length min / median / max (bp)",
            lambda r: (
                f"{r['qc']['length_min']} / {r['qc']['length_median']:g} / {r['qc']['length_max']}"
            ),
        ),
        row("reads with N", lambda r: r["qc"]["reads_with_n"]),
        row(
            "N fraction mean / max",
            lambda r: f"{r['qc']['n_fraction_mean']:.4f} / {r['qc']['n_fraction_max']:.4f}",
        ),
        row("longest N run (bp)", lambda r: r["qc"]["longest_n_run_max"]),
        row(
            "IUPAC ambiguity codes (reads)",
            lambda r: f"{r['qc']['ambiguity_codes']} ({r['qc']['reads_with_ambiguity_codes']})",
        ),
        row("gap characters removed", lambda r: r["qc"]["gaps_removed"]),
        row(
            "best-frame stop codons 0 / 1 / 2 / 3+",
            lambda r: " / ".join(str(v) for v in r["qc"]["best_frame_stops"].values()),
        ),
        row("flags", lambda r: ", ".join(f"{k} {v}" for k, v in r["qc"]["flags"].items())),
        row(
            f"top-6 4-mer share: median / max of reads / max of {WINDOW}-bp windows",
            lambda r: (
                f"{r['qc']['repeat_share_median']:.3f} / {r['qc']['repeat_share_max']:.3f}"
                f" / {r['qc']['window_repeat_share_max']:.3f} ({r['qc']['windows']} windows)"
            ),
        ),
        row("low-complexity reads", lambda r: r["qc"]["low_complexity_reads"]),
        row(
            "strand margin (nats) min / 1st pct / median",
            lambda r: " / ".join(f"{v:.1f}" for v in r["qc"]["margin_percentiles"]),
        ),
        row(
            "orientation, forward records kept",
            lambda r: (
                f"{r['orientation']['forward_correct']} "
                f"({pct(r['orientation']['forward_accuracy'])})"
            ),
        ),
        row(
            "orientation, reverse complements flipped back",
            lambda r: (
                f"{r['orientation']['reverse_correct']} "
                f"({pct(r['orientation']['reverse_accuracy'])})"
            ),
        ),
        row(
            "TSV read+clean+QC+orient: s (reads/s)",
            lambda r: f"{r['tsv_seconds']:.2f} ({r['tsv_reads_per_s']:,.0f})",
        ),
        row(
            "FASTA read+clean+QC+orient: s (reads/s)",
            lambda r: f"{r['fasta_seconds']:.2f} ({r['fasta_reads_per_s']:,.0f})",
        ),
        row(
            "orientation only (reads/s)",
            lambda r: f"{r['orientation']['orientations_per_s']:,.0f}",
        ),
        "",
    ]
    wrong = [
        (r["file"], side, w)
        for r in results
        for side in ("forward", "reverse")
        for w in r["orientation"][f"{side}_wrong"]
    ]
    if wrong:
        lines += [
            "Misoriented records (a read with a stop codon in every frame of both strands has no "
            "open reading frame, hence no coding strand to find; QC flags it `stop_codons`):",
            "",
        ]
        lines += [
            f"- {file} ({side}): {w['id']}, best frame holds {w['best_frame_stops']} stop(s) on "
            f"the stored strand, {w['reverse_best_frame_stops']} on the other"
            for file, side, w in wrong
        ]
    else:
        lines.append("No record was misoriented in either direction.")
    lines += [
        "",
        "## Orientation of degraded reads",
        "",
        f"All {sum(r['reads_tsv'] for r in results):,} records degraded with "
        f"`hir_edge.degrade` (seed {meta['degradation_seed']}), then oriented as they are "
        "(forward) and reverse-complemented (reverse). Baseline: the stop-codon rule (fewest "
        "TAA/TAG in the best frame of each strand, a tie to the T-richer strand).",
        "",
        "| preset | model wrong fwd / rev | stop rule wrong fwd / rev |",
        "|---|---|---|",
    ]
    for r in extra["robustness"].values():
        n = r["n"]
        lines.append(
            f"| {r['preset']} | {r['model_wrong_forward']} / {r['model_wrong_reverse']} "
            f"({pct((r['model_wrong_forward'] + r['model_wrong_reverse']) / (2 * n))}) | "
            f"{r['stop_rule_wrong_forward']} / {r['stop_rule_wrong_reverse']} "
            f"({pct((r['stop_rule_wrong_forward'] + r['stop_rule_wrong_reverse']) / (2 * n))}) |"
        )
    lines += [
        "",
        "## Cross-fit (is COI_MARKOV over-fitted?)",
        "",
        "The 48 probabilities of `COI_MARKOV` were estimated from these same records "
        "(`--fit`). Refitted on one file alone (the two share no species), the model orients "
        "the other file as follows (wrong calls over forward + reverse):",
        "",
        "| fitted on | tested on | clean | paper preset |",
        "|---|---|---|---|",
    ]
    for r in extra["cross_fit"]:
        lines.append(
            f"| {r['fit_on']} | {r['tested_on']} | {r['none_wrong']} / {2 * r['n']} | "
            f"{r['paper_wrong']} / {2 * r['n']} |"
        )
    lines += [
        "",
        f"Refitting on all records reproduces `COI_MARKOV` to within "
        f"{extra['model_refit_max_abs_diff']:.4f} (it is stored rounded to 3 decimals). "
        f"Degradation and cross-fit checks took {extra['seconds']:.0f} s.",
    ]
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--force", action="store_true", help="overwrite earlier results")
    parser.add_argument(
        "--fit", action="store_true", help="print COI_MARKOV refitted on all records and stop"
    )
    args = parser.parse_args(argv)
    files = sorted(DATA.glob("*.tsv")) if DATA.is_dir() else []
    if not files:
        sys.exit(
            f"bold_qc: real data not found: {DATA} holds no .tsv files (the shared data lives "
            "beside the checkout, in ../shared/data); nothing to benchmark"
        )
    if args.fit:
        seqs = [r.sequence for path in files for r in read_sequences(path, orient=False)]
        model = fit_model(seqs)
        print(f"# fitted on {len(seqs)} records of {', '.join(p.name for p in files)}")
        print("COI_MARKOV = np.array(" + repr(model.round(3).tolist()) + ")")
        return 0
    md_path = ensure_writable(args.output_dir / "bold_qc.md", args.force)
    json_path = ensure_writable(args.output_dir / "bold_qc.json", args.force)

    with tempfile.TemporaryDirectory(prefix="bold_qc.") as tmp:
        results = [run_file(path, Path(tmp)) for path in files]
    seqs_by_file = {r["file"]: r.pop("forward_sequences") for r in results}
    every = [s for seqs in seqs_by_file.values() for s in seqs]
    start = time.perf_counter()
    extra = {
        "robustness": robustness(every),
        "cross_fit": cross_fit(seqs_by_file),
        "model_refit_max_abs_diff": float(np.abs(fit_model(every) - COI_MARKOV).max()),
    }
    extra["seconds"] = time.perf_counter() - start
    meta = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}",
        "python": platform.python_version(),
        "min_length": DEFAULT_MIN_LENGTH,
        "max_n_fraction": DEFAULT_MAX_N_FRACTION,
        "degradation_seed": SEED,
    }
    text = markdown(results, extra, meta)
    print(text)
    atomic_write_text(md_path, text)
    payload = {"meta": meta, "files": results, **extra}
    atomic_write_text(json_path, json.dumps(payload, indent=2) + "\n")
    print(f"wrote {md_path} and {json_path}")
    ok = all(
        r["skipped_tsv"] == 0
        and r["fasta_round_trip_identical"]
        and r["orientation"]["open_frame_wrong"] == 0
        for r in results
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
