"""identify_bold.md from its measurements: the known-species and absent-taxa tables, the
learned evidence beside the best hit, speed and the example command
(``benchmarks/identify_bold.py`` measures and calls :func:`write`)."""

from __future__ import annotations

from pathlib import Path

from results_file import write_results


def _fraction(value) -> str:
    return "–" if value is None else f"{value:.3f}"


def _pct(value) -> str:
    return "–" if value is None else f"{value:.1f}"


def write(out: Path, report: dict) -> None:
    lib = report["library"]
    lines = [
        "# The real-DNA bundle against the alignment baseline, known and absent taxa",
        "",
        f"Bundle {report['bundle']}; backend {report['backend']}. The bundle ships "
        f"{lib['shipped']} references (every record); it is asked here with the "
        f"{lib['asked_with']} training records only, the library of the alignment baseline too, "
        "so no held-out read finds itself. Alignment: the best hit by edlib identity (infix, both "
        "strands), named at every rank. 'precision': the share of answers right at the rank "
        "they were given at; 'coverage at ≥ rank': the share of reads answered at that rank or "
        "deeper; 'wrong ≥ 0.95': wrong answers stated with confidence 0.95 or more; 'reads/s': "
        f"`identify` with {report['workers']} worker processes identifying batches of 32 (as "
        "`--workers` runs them), on this machine's 2 cores.",
        "",
        "## Known species (held-out reads)",
        "",
        "| Reads | answered at species / genus / family / order / none | precision | ECE | wrong ≥ 0.95 | right at species | species ranked first | alignment: species | reads/s | alignment reads/s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in report["known"].items():
        o, a = r["identify"], r["alignment"]
        at = o["answered_at"]
        lines.append(
            f"| {name} | {at['species']} / {at['genus']} / {at['family']} / {at['order']} / {at['none']} | "
            f"{_pct(o['precision_%'])} | {_pct(o['ece_%'])} | {o['wrong_at_0.95']} | "
            f"{o['answer_right_%']['species']:.1f} | {o['species_top1_%']:.1f} | "
            f"{a['best_hit_right_%']['species']:.1f} | {o['reads_per_second']:.0f} | "
            f"{a['reads_per_second']:.0f} |"
        )
    lines += [
        "",
        f"k-mer best hit (6-mer cosine) on the clean test reads: {report['kmer_best_hit_reads_per_second']:.0f} reads/s.",
        "",
        "## Taxa absent from the library (bold_coi_1826sp.tsv records, never seen by training or calibration)",
        "",
        "Records of each class (the measured half: genera, and families for absent families, "
        "that the calibration's outgroups do not hold): "
        + ", ".join(f"{k} {v:,}" for k, v in report.get("open_world_records", {}).items())
        + "; each class is a seeded sample of at most "
        + f"{report.get('max_per_class') or 'all'} of them (column n).",
        "",
        "| Reads | kind | n | answered at species / genus / family / order / none | precision | ECE | wrong ≥ 0.95 | coverage at ≥ genus / family / order | novel rank named (genus / family / order) | alignment best hit right: genus / family / order | reads/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for klass, kinds in report["open_world"].items():
        for kind, r in kinds.items():
            o, a = r["identify"], r["alignment"]
            at, cov, nov = o["answered_at"], o["coverage_%"], o["novel_at"]
            hit = a["best_hit_right_%"]
            lines.append(
                f"| {klass} | {kind} | {o['n']} | {at['species']} / {at['genus']} / {at['family']} / "
                f"{at['order']} / {at['none']} | {_pct(o['precision_%'])} | {_pct(o['ece_%'])} | "
                f"{o['wrong_at_0.95']} | {cov['genus']:.1f} / {cov['family']:.1f} / {cov['order']:.1f} | "
                f"{nov['genus']} / {nov['family']} / {nov['order']} | "
                f"{hit['genus']:.1f} / {hit['family']:.1f} / {hit['order']:.1f} | {o['reads_per_second']:.0f} |"
            )
    if report.get("unrelated"):
        lines += [
            "",
            "## Unrelated DNA",
            "",
            "Seeded random reads of an insect-like composition (A and T 35% each): no barcode, "
            "yet each finds a best hit. 'not COI': told apart from a distant relative by being "
            "no nearer its hit than shuffled copies of itself (runtime/chance.py); 'novel': "
            "still said to be of a taxon absent from the library.",
            "",
            "| length (bp) | reads | answered | not COI | novel | best-hit identity median / max |",
            "|---|---|---|---|---|---|",
        ]
        for row in report["unrelated"]:
            lines.append(
                f"| {row['length']} | {row['reads']} | {row['answered']} | {row['not_coi']} | "
                f"{row['novel']} | {_fraction(row['identity_median'])} / "
                f"{_fraction(row['identity_max'])} |"
            )
    lines += [
        "",
        "## The learned evidence alone against the best hit alone",
        "",
        "Top-1 at each rank of the prompt ranking with the reference embeddings (no alignment), "
        "and of the alignment best hit, clean and `paper` reads.",
        "",
        "| Reads | kind | learned: order | family | genus | best hit: order | family | genus |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for klass, kinds in [("known species", report["known"]), *report["open_world"].items()]:
        for kind in ("clean", "paper"):
            r = kinds[kind]
            le, hit = r["learned"], r["alignment"]["best_hit_right_%"]
            lines.append(
                f"| {klass} | {kind} | {le['order']:.1f} | {le['family']:.1f} | {le['genus']:.1f} | "
                f"{hit['order']:.1f} | {hit['family']:.1f} | {hit['genus']:.1f} |"
            )
    s = report["speed"]
    lines += [
        "",
        "## Speed on this machine (2 CPU cores)",
        "",
        "| Specimens | ms/specimen, batch 1 | ms/specimen, batch 32 | specimens/s |",
        "|---|---|---|---|",
    ]
    for name in ("dna", "image", "paired"):
        lines.append(
            f"| {name} | {s[name]['ms_per_specimen_batch1']:.1f} | {s[name]['ms_per_specimen_batch32']:.1f} | "
            f"{s[name]['specimens_per_second_batch32']:.0f} |"
        )
    c = report["command"]
    lines += [
        "",
        f"Cold start of one `identify` command (two reads, one 2880×2160 photo): {c['cold_start_seconds']:.2f} s, "
        f"peak RSS {c['peak_rss_mb']:.0f} MB.",
        "",
        f"Through the shipped bundle, whose library holds every record (the test records too, so "
        f"the first read finds its own record): a test read of {' '.join(c['truth'][0])} with the "
        f"BIOSCAN photo Diptera.jpg, and a read of {' '.join(c['truth'][1])} (a genus the library "
        "lacks):",
        "",
        "```",
        c["stderr"].strip(),
        c["stdout"].strip(),
        "```",
    ]
    text = "\n".join(lines) + "\n"
    write_results(out, text, report)
