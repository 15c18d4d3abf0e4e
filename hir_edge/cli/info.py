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

    from hir_edge.runtime.bundle import default_bundle, open_bundle
    from hir_edge.runtime.info import bundle_summary, bundle_text

    b = open_bundle(Path(bundle_arg or bundle or default_bundle()))
    summary = bundle_summary(b)
    click.echo(json.dumps(summary, indent=1) if as_json else bundle_text(b, summary))
