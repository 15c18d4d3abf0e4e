"""``hir-edge info``: what a bundle is, what it was trained on, what can run it here."""

from __future__ import annotations

import click

from hir_edge.cli.common import bundle_option


@click.command()
@click.argument("bundle_arg", required=False, type=click.Path(exists=True))
@bundle_option
@click.option("--json", "as_json", is_flag=True, help="Print the manifest summary as JSON.")
def info(bundle_arg, bundle, as_json):
    """Model card, taxa, sizes, scoring and the backends available on this machine."""
    import json
    from pathlib import Path

    from hir_edge.io import human_size
    from hir_edge.runtime.bundle import MODEL_CARD, default_bundle, open_bundle
    from hir_edge.runtime.info import available_backends

    path = Path(bundle_arg or bundle or default_bundle())
    b = open_bundle(path)
    m = b.manifest
    summary = {
        "name": b.name,
        "path": str(b.root),
        "format": m["format"],
        "created": m.get("created"),
        "hir_edge_version": m.get("hir_edge_version"),
        "model": m["model"],
        "size": human_size(b.size_bytes()),
        "graphs": {p: g["files"] for p, g in m["graphs"].items()},
        "engines": {
            p: {k: v["tag"] for k, v in e.items()} for p, e in m.get("engines", {}).items()
        },
        "references": None if b.references is None else len(b.references.ids),
        "branches": m.get("provenance", {}).get("branches"),
        "scoring": {
            k: m.get("scoring", {}).get(k) for k in ("target_precision", "thresholds", "novelty")
        },
        "backends_here": available_backends(b),
    }
    if as_json:
        click.echo(json.dumps(summary, indent=1))
        return
    card = b.root / MODEL_CARD
    if card.is_file():
        click.echo(card.read_text(encoding="utf-8").rstrip())
        click.echo("")
    version = m.get("hir_edge_version")
    click.echo(f"bundle: {b.root} ({summary['size']}, format {m['format']}, hir-edge {version})")
    click.echo(f"taxa: {m['model']['taxa']}; reference specimens: {summary['references'] or 0}")
    for part, files in summary["graphs"].items():
        sizes = ", ".join(
            f"{p} {human_size((b.root / f).stat().st_size)}" for p, f in files.items()
        )
        click.echo(f"graph {part}: {sizes}")
    click.echo(
        "engines: "
        + (
            json.dumps(summary["engines"])
            if summary["engines"]
            else "none (build on the device with hir-edge export --engine --bundle ...)"
        )
    )
    click.echo("backends here: " + "; ".join(summary["backends_here"]))
