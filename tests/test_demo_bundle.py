"""The demo bundle shipped in the package identifies the shipped examples — the README's command."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from hir_edge.cli import main
from hir_edge.runtime.bundle import default_bundle

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"


def test_demo_bundle_is_small_verified_and_says_what_it_is():
    from hir_edge.runtime.bundle import open_bundle

    bundle = open_bundle(default_bundle())  # checks every file's sha256
    assert bundle.size_bytes() <= 25 * 2**20
    assert all(name.startswith("Demo") for name in bundle.taxonomy.names("order"))
    assert bundle.manifest.provenance["branches"]["dna"]["kind"] == "synthetic"
    card = (bundle.root / "MODEL_CARD.md").read_text()
    assert "identifies nothing real" in card


def test_readme_command_identifies_the_examples():
    with (EXAMPLES / "expected.tsv").open() as handle:
        expected = {row["id"]: row for row in csv.DictReader(handle, delimiter="\t")}
    result = CliRunner().invoke(
        main,
        [
            "identify",
            "--fasta",
            str(EXAMPLES / "reads.fa"),
            "--image",
            str(EXAMPLES / "photos"),
            "--format",
            "json",
            "-q",
        ],
    )
    assert result.exit_code == 0, result.output
    items = json.loads(result.stdout)
    assert {i["id"] for i in items} == set(expected)
    for item in items:
        truth = expected[item["id"]]
        lineage = item["assigned"]["lineage"]
        assert lineage, f"{item['id']}: no rank assigned"
        ranks = ("order", "family", "genus", "species")
        assert lineage == [truth[r] for r in ranks[: len(lineage)]], item
        assert item["modalities"] == ["image", "dna"]
    degraded = [i for i in items if expected[i["id"]]["read"].startswith("degraded")]
    assert len(degraded) == 1


def _expected() -> list[dict]:
    with (EXAMPLES / "expected.tsv").open() as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


@pytest.mark.parametrize("fmt", ["table", "tsv"])
def test_readme_command_prints(fmt):
    result = CliRunner().invoke(
        main,
        [
            "identify",
            "--fasta",
            str(EXAMPLES / "reads.fa"),
            "--image",
            str(EXAMPLES / "photos"),
            "--format",
            fmt,
        ],
    )
    assert result.exit_code == 0
    assert "identified 4 specimens (4 paired" in result.stderr
    truth = {row["id"]: row for row in _expected()}
    if fmt == "tsv":
        rows = list(csv.DictReader(io.StringIO(result.stdout), delimiter="\t"))
        assert [r["id"] for r in rows] == list(truth)
        for row in rows:  # clean examples at their true species, the degraded one on its path
            want = truth[row["id"]]
            rank = "species" if want["read"] == "clean" else row["assigned_rank"]
            assert rank in ("family", "genus", "species")
            assert (row["assigned_rank"], row["assigned_taxon"]) == (rank, want[rank])
    else:
        for sid, row in truth.items():
            if row["read"] == "clean":
                assert f"{sid}: Species {row['species']} (" in result.stdout


def test_a_tar_bundle_leaves_no_temporary_folder(tmp_path, monkeypatch):
    import tarfile
    import tempfile

    archive = tmp_path / "demo.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(default_bundle(), arcname="demo")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    made = []
    real = tempfile.TemporaryDirectory

    def recording(*args, **kwargs):
        folder = real(*args, **kwargs)
        made.append(folder.name)
        return folder

    monkeypatch.setattr(tempfile, "TemporaryDirectory", recording)
    result = CliRunner().invoke(
        main, ["identify", "--bundle", str(archive), "--fasta", str(EXAMPLES / "reads.fa")]
    )
    assert result.exit_code == 0
    assert [Path(m).parent for m in made] == [scratch]  # the bundle was extracted here ...
    assert list(scratch.iterdir()) == []  # ... and removed when the run ended


@pytest.mark.parametrize("placement", [True, False])
def test_random_dna_gets_no_taxon(tmp_path, placement):
    """With the demo's placement model, and without one (a bundle exported before it): a read
    of random bases gets no taxon and says why."""
    import shutil

    rng = np.random.default_rng(0)
    reads = tmp_path / "random.fa"
    reads.write_text(
        "".join(f">r{i}\n{''.join(rng.choice(list('ACGT'), 650))}\n" for i in range(3))
    )
    bundle = tmp_path / "demo"
    shutil.copytree(default_bundle(), bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert "placement" in manifest["scoring"]
    if not placement:
        del manifest["scoring"]["placement"]
        (bundle / "manifest.json").write_text(json.dumps(manifest))
    args = ["identify", "--bundle", str(bundle), "--fasta", str(reads), "--format", "json"]
    result = CliRunner().invoke(main, args)
    items = json.loads(result.stdout)
    assert result.exit_code == 0 and len(items) == 3
    for item in items:
        assert item["assigned"]["rank"] is None and item["assigned"]["confidence"] == 0.0
        assert item["best_hit"]["identity"] < 0.8 and item["best_hit"]["divergence"] is None
        # and no taxon is said to be absent: the read is no nearer than shuffled copies of it
        assert item["novel"] is None
        assert item["warnings"][-1].startswith("not recognisably COI: the best reference barcode")


def test_bench_times_dna_identification_by_read_set(tmp_path):
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(main, ["bench", "--batch", "1", "--repeat", "1", "-o", str(out)])
    assert result.exit_code == 0, result.output
    rows = json.loads(out.read_text())["rows"]
    read_rows = [r for r in rows if r["part"].startswith("reads: ")]
    # one row per read set, each timed over the read set made from the demo's references
    assert [r["part"] for r in read_rows] == [
        "reads: known",
        "reads: paper",
        "reads: 150 bp",
        "reads: unrelated",
    ]
    assert all(r["batch"] == 32 for r in read_rows)


def test_a_lone_read_is_embedded_as_it_would_be_in_a_batch():
    """ONNX Runtime's INT8 product of a single row takes another kernel that can round a read
    one quantum differently, so a lone read is run as two identical rows: its embedding does not
    depend on whether other reads came with it."""
    from hir_edge.dna.io import read_sequences
    from hir_edge.runtime.backends import OnnxRuntimeBackend
    from hir_edge.runtime.bundle import open_bundle
    from hir_edge.runtime.identifier import Identifier

    bundle = open_bundle(default_bundle())
    backend = OnnxRuntimeBackend(bundle, "int8", device="cpu", threads=1)
    read = next(iter(read_sequences(EXAMPLES / "reads.fa"))).sequence
    ids, mask = Identifier(bundle, backend).tokenizer.encode_batch([read, read])
    # the batch's second read: the first one's tokens less its last 24, so that both are run
    # at the same cut length (the encoder runs a short read without its padding) as one batch
    mask[1, int(mask[1].sum()) - 24 :] = 0
    ids[1, int(mask[1].sum()) :] = 0
    session, fed = backend._session("dna"), []

    class Spy:
        def run(self, outputs, feed):
            fed.append(feed["input_ids"])
            return session.run(outputs, feed)

    backend._sessions["dna"] = Spy()
    lone = backend.embed_dna(ids[:1], mask[:1])
    pair = backend.embed_dna(ids, mask)
    assert [f.shape[0] for f in fed] == [2, 2]  # the lone read doubled; then one true batch
    cut = fed[0].shape[1]
    assert np.array_equal(fed[0][1], ids[0, :cut]) and fed[1].shape[1] == cut
    assert not np.array_equal(fed[1][0], fed[1][1])
    assert lone.shape == (1, bundle.embed_dim)
    np.testing.assert_array_equal(lone[0], pair[0])
