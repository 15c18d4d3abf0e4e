"""The classical DNA baselines on real BOLD barcodes: the bar the DNA branch is measured against.

Reference library: 70% of the records of each species of ../shared/data/bold_coi/
bold_coi_100sp.tsv (seeded shuffle within species); queries: the other 30%, as they are,
degraded with the ``hir_edge.degrade`` presets, and cut to random 150/300-bp windows. Two
baselines: best hit by edlib identity (HW infix mode, N = any base, on the 50 references
nearest by 6-mer cosine) and 6-mer cosine 1-NN. Per-rank Top-1/Top-5 (distinct taxa) and
Global, throughput, and the identity of the best hit.

Open set: the records of bold_coi_1826sp.tsv whose genus is in the library but whose species
is not. The best hit is scored at order, family and genus, and its identity tells how often
the 97% species convention would force a wrong species name on them.

The prefilter is checked against exhaustive alignment (all references) on a sample.

    python benchmarks/dna_baselines.py [--force]   # writes benchmarks/results/dna_baselines.*
"""

from __future__ import annotations

import argparse
import csv
import datetime
import importlib.metadata
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "bold_coi"
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # runs from a checkout, installed or not

from hir_edge.degrade import degrade_dna_seeded, get_preset, specimen_rng  # noqa: E402
from hir_edge.evaluation.baselines import (  # noqa: E402
    GLOBAL_DEFINITION,
    SPECIES_IDENTITY,
    AlignmentIndex,
    BaselinePrediction,
    alignment_predict,
    kmer_predict,
    per_species_split,
    topk_accuracy,
)
from hir_edge.io import OutputExistsError, atomic_write_text, ensure_writable  # noqa: E402
from hir_edge.taxonomy import RANKS, Taxonomy, lineage_of  # noqa: E402

SEED = 0
TEST_FRACTION = 0.3
PRESETS = ("mild", "paper", "severe")
FRAGMENTS = (300, 150)
IDENTITY_BINS = (0.0, 0.90, 0.95, 0.97, 0.98, 0.99, 1.0 + 1e-9)
THRESHOLDS = (0.90, 0.93, 0.95, 0.97, 0.98, 0.99)


def load(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))


def fragment(seq: str, width: int, seed: int, index: int) -> str:
    """A uniformly placed ``width``-bp window of the read (the whole read when shorter)."""
    if len(seq) <= width:
        return seq
    start = int(specimen_rng(seed, index).integers(0, len(seq) - width + 1))
    return seq[start : start + width]


def conditions(queries: list[str], seed: int) -> dict[str, tuple[str, list[str]]]:
    """name -> (description, query reads) for every condition."""
    out = {"clean": ("the held-out barcodes as stored", queries)}
    for name in PRESETS:
        preset = get_preset(name)
        out[name] = (
            preset.describe().removesuffix(f" blur_kernel={preset.blur_kernel}"),
            [degrade_dna_seeded(s, preset.dna, seed, i) for i, s in enumerate(queries)],
        )
    for width in FRAGMENTS:
        out[f"frag{width}"] = (
            f"a random {width}-bp window of each clean barcode",
            [fragment(s, width, seed, i) for i, s in enumerate(queries)],
        )
    return out


def identity_summary(identity: np.ndarray) -> dict:
    counts, _ = np.histogram(identity, bins=IDENTITY_BINS)
    return {
        "percentiles_0_5_25_50": [float(v) for v in np.percentile(identity, [0, 5, 25, 50])],
        "bins": [
            {"from": lo, "to": min(hi, 1.0), "n": int(n)}
            for lo, hi, n in zip(IDENTITY_BINS[:-1], IDENTITY_BINS[1:], counts)
        ],
        "at_least": {f"{t:.2f}": float((identity >= t).mean()) for t in THRESHOLDS},
    }


def summarise(pred: BaselinePrediction, truth: np.ndarray, lengths: list[int]) -> dict:
    result = topk_accuracy(pred.ranked, truth, RANKS, ks=(1, 5)).to_dict()
    result.update(
        queries=len(truth),
        seconds=pred.seconds,
        queries_per_s=pred.queries_per_second,
        mean_length=float(np.mean(lengths)),
        best_score=identity_summary(pred.best_score),
    )
    return result


def prefilter_check(
    index: AlignmentIndex,
    refs: list[str],
    ref_labels: np.ndarray,
    reads: dict[str, list[str]],
    sample: np.ndarray,
) -> dict:
    """Best hits with the prefilter against exhaustive alignment, on a sample of queries."""
    exact = AlignmentIndex(refs, prefilter=None, k=index.kmers.k, mode=index.mode)
    out = {}
    for name, queries in reads.items():
        subset = [queries[i] for i in sample]
        fast_idx, fast_id = index.best_hits(subset)
        start = time.perf_counter()
        exact_idx, exact_id = exact.best_hits(subset)
        seconds = time.perf_counter() - start
        differ = np.flatnonzero(~np.isclose(fast_id, exact_id))
        out[name] = {
            "queries": len(subset),
            "same_best_hit": int((fast_idx == exact_idx).sum()),
            "same_identity": int(len(subset) - len(differ)),
            "same_species": int((ref_labels[fast_idx, -1] == ref_labels[exact_idx, -1]).sum()),
            "differences": [
                {
                    "query": int(sample[i]),
                    "prefilter_identity": float(fast_id[i]),
                    "exhaustive_identity": float(exact_id[i]),
                }
                for i in differ
            ],
            "exhaustive_queries_per_s": len(subset) / seconds,
        }
    return out


def open_set(
    rows: list[dict[str, str]],
    library_rows: list[dict[str, str]],
    taxonomy: Taxonomy,
    index: AlignmentIndex,
    ref_labels: np.ndarray,
    seed: int,
) -> dict:
    """Species absent from the library, genus present: where does the best hit place them?"""
    genera = {r["genus_name"] for r in library_rows}
    species = {r["species_name"] for r in library_rows}
    chosen = [r for r in rows if r["genus_name"] in genera and r["species_name"] not in species]
    truth = taxonomy.encode_many(lineage_of(r) for r in chosen)  # species: -1 (absent)
    clean = [r["nucleotides"] for r in chosen]
    paper = get_preset("paper").dna
    out = {
        "records": len(chosen),
        "species": len({r["species_name"] for r in chosen}),
        "genera": len({r["genus_name"] for r in chosen}),
        "placed_at_genus_in_library_taxonomy": int((truth[:, 2] >= 0).sum()),
    }
    for name, reads in (
        ("clean", clean),
        ("paper", [degrade_dna_seeded(s, paper, seed, i) for i, s in enumerate(clean)]),
    ):
        aligned = alignment_predict(reads, index, ref_labels)
        kmer = kmer_predict(reads, index.kmers, ref_labels)
        out[name] = {
            "alignment": summarise(aligned, truth, [len(s) for s in reads]),
            "kmer": summarise(kmer, truth, [len(s) for s in reads]),
        }
    return out


def pct(value: float) -> str:
    return "–" if value != value else f"{value:.1f}"


def markdown(results: dict, meta: dict) -> str:
    lines = [
        "# Classical DNA baselines on real BOLD barcodes",
        "",
        f"Generated by `benchmarks/dna_baselines.py` on {meta['date']} ({meta['machine']}, "
        f"{meta['cpus']} CPU, Python {meta['python']}, numpy {meta['numpy']}, edlib "
        f"{meta['edlib']}).",
        "",
        f"Library: {meta['references']} barcodes, {meta['test_fraction']:.0%} of each of the "
        f"100 species of `bold_coi_100sp.tsv` held out as {meta['queries']} queries "
        f"(per-species seeded split, seed {meta['seed']}).",
        f"**alignment**: best hit by identity = 1 − edit distance / query length (edlib "
        f"{meta['mode']} infix mode, N matches any base) among the {meta['prefilter']} "
        f"references nearest by {meta['k']}-mer cosine. **k-mer**: {meta['k']}-mer cosine "
        "1-NN. At each rank the prediction is the best reference labelled there; Top-5 = the "
        "5 best *distinct taxa* at the rank, in the order of their best reference.",
        f"{GLOBAL_DEFINITION}.",
        "",
        "## Top-1 / Top-5 accuracy (%) per rank",
        "",
        "| condition | reads | mean bp | method | order | family | genus | species | Global "
        "| queries/s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for cond, entry in results["conditions"].items():
        for method in ("alignment", "kmer"):
            r = entry[method]
            cells = [
                f"{pct(r['accuracy'][rank]['top1'])} / {pct(r['accuracy'][rank]['top5'])}"
                for rank in (*RANKS, "global")
            ]
            lines.append(
                f"| {cond} | {r['queries']} | {r['mean_length']:.0f} | {method} | "
                + " | ".join(cells)
                + f" | {r['queries_per_s']:,.0f} |"
            )
    lines += ["", "Conditions:", ""]
    lines += [f"- **{c}**: {e['description']}" for c, e in results["conditions"].items()]
    lines += [
        "",
        "## Best-hit identity of reads whose species *is* in the library",
        "",
        f"Share of reads whose best hit reaches each identity; below {SPECIES_IDENTITY:.0%} "
        "(the usual COI species convention) a known species would be flagged novel.",
        "",
        "| condition | min | 5th pct | median | "
        + " | ".join(f"≥ {t:.0%}" for t in THRESHOLDS)
        + " |",
        "|---|---|---|---|" + "---|" * len(THRESHOLDS),
    ]
    for cond, entry in results["conditions"].items():
        s = entry["alignment"]["best_score"]
        p0, p5, _, p50 = s["percentiles_0_5_25_50"]
        lines.append(
            f"| {cond} | {p0:.3f} | {p5:.3f} | {p50:.3f} | "
            + " | ".join(f"{100 * v:.1f}%" for v in s["at_least"].values())
            + " |"
        )
    o = results["open_set"]
    lines += [
        "",
        "## Open set: species absent from the library",
        "",
        f"{o['records']} records of `bold_coi_1826sp.tsv` ({o['species']} species, "
        f"{o['genera']} genera) whose genus is in the library and whose species is not. The "
        "best hit can be right at most to genus; Global here = right at order, family and "
        "genus. Best score: identity (alignment) or cosine (k-mer).",
        "",
        "| reads | method | order | family | genus | Global | best score median | "
        + " | ".join(f"best hit ≥ {t:.0%}" for t in THRESHOLDS)
        + " |",
        "|---|---|---|---|---|---|---|" + "---|" * len(THRESHOLDS),
    ]
    for cond in ("clean", "paper"):
        for method in ("alignment", "kmer"):
            r = o[cond][method]
            acc = r["accuracy"]
            s = r["best_score"]
            share = (
                " | ".join(f"{100 * v:.1f}%" for v in s["at_least"].values())
                if method == "alignment"
                else " | ".join("(cosine)" for _ in THRESHOLDS)
            )
            median = s["percentiles_0_5_25_50"][3]
            lines.append(
                f"| {cond} | {method} | {pct(acc['order']['top1'])} | "
                f"{pct(acc['family']['top1'])} | {pct(acc['genus']['top1'])} | "
                f"{pct(acc['global']['top1'])} | {median:.3f} | {share} |"
            )
    bins = o["clean"]["alignment"]["best_score"]["bins"]
    lines += [
        "",
        "Best-hit identity of the clean open-set reads: "
        + ", ".join(f"[{b['from']:.2f}, {b['to']:.2f}): {b['n']}" for b in bins)
        + f". At the {SPECIES_IDENTITY:.0%} convention, "
        f"{100 * o['clean']['alignment']['best_score']['at_least'][f'{SPECIES_IDENTITY:.2f}']:.1f}%"
        " of these absent-species reads would still be given a (wrong) species name.",
        "",
        "## Prefilter against exhaustive alignment",
        "",
        f"The same queries aligned to all {meta['references']} references "
        f"(sample of {results['prefilter_check_sample']} queries per condition, seeded).",
        "",
        "| condition | same best hit | same identity | same species | exhaustive queries/s |",
        "|---|---|---|---|---|",
    ]
    for cond, r in results["prefilter_check"].items():
        n = r["queries"]
        lines.append(
            f"| {cond} | {r['same_best_hit']} / {n} | {r['same_identity']} / {n} | "
            f"{r['same_species']} / {n} | {r['exhaustive_queries_per_s']:.1f} |"
        )
    diffs = [(c, d) for c, r in results["prefilter_check"].items() for d in r["differences"]]
    if diffs:
        lines += ["", "Where the prefilter missed the best identity:", ""]
        lines += [
            f"- {c}: query {d['query']}: {d['prefilter_identity']:.4f} with the prefilter, "
            f"{d['exhaustive_identity']:.4f} exhaustive"
            for c, d in diffs
        ]
    lines += [
        "",
        "## Prefilter size (paper preset)",
        "",
        "| prefilter | species Top-1 | Global Top-1 | queries/s |",
        "|---|---|---|---|",
    ]
    for size, r in results["prefilter_sweep"].items():
        lines.append(
            f"| {size} | {pct(r['accuracy']['species']['top1'])} | "
            f"{pct(r['accuracy']['global']['top1'])} | {r['queries_per_s']:,.0f} |"
        )
    lines += ["", f"Total run time {results['seconds']:.0f} s.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--force", action="store_true", help="overwrite earlier results")
    parser.add_argument("--seed", type=int, default=SEED, help="split and degradation seed")
    parser.add_argument("--prefilter", type=int, default=50, help="references aligned per read")
    parser.add_argument(
        "--check-sample", type=int, default=150, help="queries per condition aligned exhaustively"
    )
    args = parser.parse_args(argv)
    library_path, open_path = DATA / "bold_coi_100sp.tsv", DATA / "bold_coi_1826sp.tsv"
    missing = [str(p) for p in (library_path, open_path) if not p.is_file()]
    if missing:
        sys.exit(
            f"dna_baselines: real data not found: {', '.join(missing)} (the shared data lives "
            "beside the checkout, in ../shared/data); nothing to benchmark"
        )
    try:
        md_path = ensure_writable(args.output_dir / "dna_baselines.md", args.force)
        json_path = ensure_writable(args.output_dir / "dna_baselines.json", args.force)
    except OutputExistsError as exc:
        sys.exit(f"dna_baselines: {exc}")
    began = time.perf_counter()
    rows = load(library_path)
    train, test = per_species_split([r["species_name"] for r in rows], TEST_FRACTION, args.seed)
    library_rows = [rows[i] for i in train]
    taxonomy = Taxonomy.from_records(library_rows)
    ref_labels = taxonomy.encode_many(lineage_of(r) for r in library_rows)
    truth = taxonomy.encode_many(lineage_of(rows[i]) for i in test)
    refs = [r["nucleotides"] for r in library_rows]
    index = AlignmentIndex(refs, prefilter=args.prefilter)

    results: dict = {"conditions": {}}
    reads_by_condition = {}
    for name, (description, reads) in conditions(
        [rows[i]["nucleotides"] for i in test], args.seed
    ).items():
        reads_by_condition[name] = reads
        lengths = [len(s) for s in reads]
        entry = {"description": description}
        for method, pred in (
            ("alignment", alignment_predict(reads, index, ref_labels)),
            ("kmer", kmer_predict(reads, index.kmers, ref_labels)),
        ):
            entry[method] = summarise(pred, truth, lengths)
            acc = entry[method]["accuracy"]
            print(
                f"{name:8s} {method:9s} "
                + " ".join(f"{r}={acc[r]['top1']:5.1f}" for r in (*RANKS, "global"))
                + f"  {entry[method]['queries_per_s']:7.0f} q/s",
                flush=True,
            )
        results["conditions"][name] = entry

    results["open_set"] = open_set(
        load(open_path), library_rows, taxonomy, index, ref_labels, args.seed
    )
    o = results["open_set"]
    print(
        f"open set {o['records']} reads: alignment genus="
        f"{o['clean']['alignment']['accuracy']['genus']['top1']:.1f} family="
        f"{o['clean']['alignment']['accuracy']['family']['top1']:.1f}, best hit >= 97%: "
        f"{100 * o['clean']['alignment']['best_score']['at_least']['0.97']:.1f}%",
        flush=True,
    )

    rng = np.random.default_rng(args.seed)
    sample = np.sort(rng.choice(len(test), min(args.check_sample, len(test)), replace=False))
    results["prefilter_check_sample"] = len(sample)
    results["prefilter_check"] = prefilter_check(
        index,
        refs,
        ref_labels,
        {c: reads_by_condition[c] for c in ("clean", "paper", "frag150")},
        sample,
    )
    for cond, r in results["prefilter_check"].items():
        print(
            f"prefilter check {cond}: same best hit {r['same_best_hit']}/{r['queries']}, "
            f"same identity {r['same_identity']}/{r['queries']}",
            flush=True,
        )

    results["prefilter_sweep"] = {}
    for size in (10, args.prefilter, 200):
        sized = index if size == args.prefilter else AlignmentIndex(refs, prefilter=size)
        pred = alignment_predict(reads_by_condition["paper"], sized, ref_labels)
        results["prefilter_sweep"][str(size)] = summarise(
            pred, truth, [len(s) for s in reads_by_condition["paper"]]
        )
    results["seconds"] = time.perf_counter() - began

    meta = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}",
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "edlib": importlib.metadata.version("edlib"),
        "seed": args.seed,
        "test_fraction": TEST_FRACTION,
        "references": len(train),
        "queries": len(test),
        "prefilter": args.prefilter,
        "k": index.kmers.k,
        "mode": index.mode,
        "species_identity": SPECIES_IDENTITY,
    }
    atomic_write_text(json_path, json.dumps({"meta": meta, **results}, indent=1) + "\n")
    text = markdown(results, meta)
    atomic_write_text(md_path, text)
    print(text)
    print(f"wrote {md_path} and {json_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
