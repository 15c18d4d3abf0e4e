"""Markdown tables laid out like the paper's Table 1 and Table 2, plus CSV rows of every number."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from hir_edge.evaluation.protocol import GLOBAL_DEFINITION

COLUMNS = ("order", "family", "genus", "species", "global")


def _cell(acc: dict, ks: Sequence[int] = (1, 5)) -> str:
    values = []
    for k in ks:
        v = acc.get(f"top{k}", acc.get(k))
        values.append("–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.1f}")
    return " / ".join(values)


def topk_table(rows: Iterable[tuple[str, str, str, dict]], title: str = "") -> str:
    """Rows of (setting, method, condition, TopKResult.to_dict()) as a Markdown table.

    Cells are "Top-1 / Top-5" accuracy (%), as in the paper.
    """
    lines = []
    if title:
        lines += [f"**{title}**", ""]
    lines += [
        "| Setting | Method | Cond. | Order | Family | Genus | Species | Global |",
        "|---|---|---|---|---|---|---|---|",
    ]
    last = None
    for setting, method, condition, result in rows:
        acc = result["accuracy"]
        shown = "" if (setting, method) == last else setting
        shown_method = "" if (setting, method) == last else method
        last = (setting, method)
        cells = " | ".join(_cell(acc.get(c, {})) for c in COLUMNS)
        lines.append(f"| {shown} | {shown_method} | {condition} | {cells} |")
    lines += ["", f"Top-1 / Top-5 accuracy (%). {GLOBAL_DEFINITION}."]
    return "\n".join(lines)


def clibd_table(results: dict, title: str = "") -> str:
    """CLIBD protocol: micro / macro nearest-neighbour accuracy per rank, seen and unseen."""
    lines = [f"**{title}**", ""] if title else []
    lines += [
        "| Query → key | Species set | Order | Family | Genus | Species |",
        "|---|---|---|---|---|---|",
    ]
    for pair, groups in results.items():
        for group, ranks in groups.items():
            cells = " | ".join(
                f"{ranks[r]['micro']:.1f} / {ranks[r]['macro']:.1f}" if r in ranks else "–"
                for r in COLUMNS[:4]
            )
            lines.append(f"| {pair} | {group} | {cells} |")
    lines += ["", "Micro / macro (class-averaged) top-1 accuracy (%) of the nearest key."]
    return "\n".join(lines)


def csv_rows(rows: Iterable[dict]) -> str:
    """Flat CSV text of dict rows (header from the first row's keys, in order)."""
    rows = list(rows)
    if not rows:
        return ""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def flatten_topk(method: str, setting: str, condition: str, result: dict) -> list[dict]:
    """One CSV row per (rank, k) of a TopKResult dict."""
    rows = []
    for rank, acc in result["accuracy"].items():
        for key, value in acc.items():
            rows.append(
                {
                    "method": method,
                    "setting": setting,
                    "condition": condition,
                    "rank": rank,
                    "metric": key,
                    "value": value,
                    "n": result["counts"].get(rank),
                }
            )
    return rows


def write_report(results: dict, out_dir: str | Path, force: bool = False) -> Path:
    """report.md (paper-style tables and the rest), results.json and results.csv, atomically."""
    from hir_edge.evaluation.embed import CONDITIONS
    from hir_edge.io import atomic_dir

    labels = {c: CONDITIONS[c].label for c in CONDITIONS}
    method = results["settings"]["preset"]
    rows, csv_data = [], []
    for setting, conds in results["paper"].items():
        for cond, res in conds.items():
            rows.append((setting, method, labels[cond], res))
            csv_data += flatten_topk(method, setting, labels[cond], res)
    s = results["settings"]
    md = [
        f"# Evaluation of {s['checkpoint']}",
        "",
        f"- data: {s['data']} (split {s['split']}, id {s['data_id']})",
        f"- model sha256 {s['model_sha256_16']}…",
        f"- {s['degradation_line']}; seed {s['seed']}",
        f"- taxa in the training taxonomy: {s['taxa']}",
        "",
        "## Prompt ranking (paper protocol)",
        "",
        topk_table(rows),
        "",
    ]
    if results.get("clibd"):
        md += ["## Nearest reference (CLIBD protocol)", "", clibd_table(results["clibd"]), ""]
    md += [
        "## Hierarchical consistency and mistake severity",
        "",
        "| Setting | Cond. | consistent paths % | species mistakes | mean tree distance "
        "| same genus |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for setting, conds in results["hierarchy"].items():
        for cond, h in conds.items():
            sp = h["severity"]["species"]
            md.append(
                f"| {setting} | {labels[cond]} | {h['consistency']:.1f} | {sp['mistakes']} | "
                f"{sp['mean_distance']:.2f} | {sp['within'].get('same genus', 0)} |"
            )
    if "calibration" in results:
        cal = results["calibration"]
        md += [
            "",
            "## Calibration and abstention (I+DT)",
            "",
            "Tree-consistent probabilities from the prompt evidence alone (a bundle adds the "
            "nearest-reference votes, fitted at export). "
            f"Temperatures fitted on validation: {_join(cal['temperatures'], 3)} "
            f"(raw 1/s = {cal['raw_temperature']:.3f}); thresholds for "
            f"{100 * cal['target_precision']:.0f}% precision: "
            f"{_join(cal['thresholds'], 2)}.",
            "",
            "| Cond. | rank | ECE before % | ECE after % |",
            "|---|---|---:|---:|",
        ]
        for cond, ranks in cal["ece"].items():
            for rank, e in ranks.items():
                md.append(f"| {labels[cond]} | {rank} | {e['before']:.1f} | {e['after']:.1f} |")
        md += [
            "",
            "| Cond. | threshold | accuracy % | mean depth | order % | family % | genus % "
            "| species % | none % |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for cond, ab in cal["abstention"].items():
            for row in [*ab["uniform"], ab["fitted"]]:
                t = row["thresholds"]
                name = "fitted" if row is ab["fitted"] else f"{t[0]:.2f}"
                shares = " | ".join(
                    f"{row['share_at'][r]:.1f}" for r in ("order", "family", "genus", "species")
                )
                md.append(
                    f"| {labels[cond]} | {name} | {row['accuracy']:.1f} | "
                    f"{row['mean_depth']:.2f} | {shares} | {row['none']:.1f} |"
                )
    out_dir = Path(out_dir)
    with atomic_dir(out_dir, force=force) as tmp:
        (tmp / "report.md").write_text("\n".join(md) + "\n", encoding="utf-8")
        (tmp / "results.json").write_text(
            json.dumps(_no_nan(results), indent=1, default=_jsonable, allow_nan=False),
            encoding="utf-8",
        )
        (tmp / "results.csv").write_text(csv_rows(csv_data), encoding="utf-8")
    return out_dir


def _no_nan(value):
    """NaN (a rank nobody is labelled at) becomes null: results.json stays strict JSON."""
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_no_nan(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _jsonable(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return None if np.isnan(value) else float(value)
    if isinstance(value, np.ndarray):
        return _no_nan(value.tolist())
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _join(values, digits: int) -> str:
    return ", ".join(f"{v:.{digits}f}" for v in values)
