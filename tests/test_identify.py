"""The field runtime: bundle checks, pairing, output formats, exit codes, novelty, no torch."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from hir_edge.cli import main
from hir_edge.data.hdf5 import SpecimenStore
from hir_edge.dna.align import ReferenceAligner
from hir_edge.errors import BundleError
from hir_edge.runtime.bundle import open_bundle
from hir_edge.runtime.schema import RANKS
from tests.conftest import counting_only_spot_checks

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def field_inputs(tiny_world, tmp_path_factory):
    """Four test specimens as a biologist would bring them: a FASTA file and JPEG photos."""
    folder = tmp_path_factory.mktemp("field")
    store = SpecimenStore(tiny_world, "test")
    truth = {}
    with (folder / "reads.fa").open("w") as fasta:
        for i in range(4):
            sp = store[i]
            fasta.write(f">{sp.processid}\n{sp.barcode}\n")
            (folder / f"{sp.processid}.jpg").write_bytes(sp.image)
            truth[sp.processid] = sp.lineage
    return folder, truth


def run(args, **kw):
    return CliRunner().invoke(main, ["identify", *args], **kw)


def skipped_lines(result) -> list[str]:
    """The one-line reports of skipped inputs on the command's stderr."""
    return [line for line in result.stderr.splitlines() if line.startswith("skipped:")]


def test_json_schema_and_pairing_by_file_stem(tiny_bundle, field_inputs):
    folder, truth = field_inputs
    result = run(
        [
            "--bundle",
            str(tiny_bundle),
            "--fasta",
            str(folder / "reads.fa"),
            "--image",
            str(folder),
            "--format",
            "json",
            "-q",
        ]
    )
    assert result.exit_code == 0, result.output
    items = json.loads(result.stdout)
    assert [i["id"] for i in items] == list(truth)
    for item in items:
        assert set(item) >= {"id", "assigned", "ranks", "modalities", "gate", "qc", "novel"}
        assert set(item["assigned"]) >= {"rank", "taxon", "confidence"}
        assert item["modalities"] == ["image", "dna"]
        assert item["gate"]["image"] + item["gate"]["dna"] == pytest.approx(1.0, abs=1e-3)
        assert list(item["ranks"]) == ["order", "family", "genus", "species"]
        # probabilities consistent down the tree: a child never outweighs its parent's best
        best = [item["ranks"][r][0]["probability"] for r in item["ranks"] if item["ranks"][r]]
        assert all(a >= b - 1e-6 for a, b in itertools.pairwise(best))
        assert item["qc"]["clean_length"] > 0


def test_mixed_batch_of_read_only_photo_only_and_paired(tiny_bundle, field_inputs, tmp_path):
    folder, truth = field_inputs
    ids = list(truth)
    reads = tmp_path / "reads.fa"
    lines = (folder / "reads.fa").read_text().splitlines()
    reads.write_text("\n".join(lines[:4]) + "\n")  # reads of specimens 0 and 1
    photos = tmp_path / "photos"
    photos.mkdir()
    for sid in (ids[1], ids[2]):
        shutil.copy(folder / f"{sid}.jpg", photos / f"{sid}.jpg")
    result = run(
        [
            "--bundle",
            str(tiny_bundle),
            "--fasta",
            str(reads),
            "--image",
            str(photos),
            "--format",
            "jsonl",
            "-q",
        ]
    )
    assert result.exit_code == 0, result.output
    items = {json.loads(line)["id"]: json.loads(line) for line in result.stdout.splitlines()}
    assert items[ids[0]]["modalities"] == ["dna"] and items[ids[0]]["gate"] is None
    assert items[ids[1]]["modalities"] == ["image", "dna"]
    assert items[ids[2]]["modalities"] == ["image"] and items[ids[2]]["qc"] is None


def test_worker_processes_answer_as_this_process_does(tiny_bundle, field_inputs, monkeypatch):
    """Batches identified in worker processes give the same answers, in input order; a run of
    one batch starts no workers."""
    import hir_edge.runtime.run

    folder, _ = field_inputs
    pools = []
    real = hir_edge.runtime.run.BatchPool

    def counting(*args, **kw):
        pools.append(args)
        return real(*args, **kw)

    monkeypatch.setattr(hir_edge.runtime.run, "BatchPool", counting)
    base = ["--bundle", str(tiny_bundle), "--fasta", str(folder / "reads.fa"), "--image"]
    base += [str(folder), "--format", "tsv", "-q"]
    alone = run([*base, "--workers", "1", "--batch-size", "1"])
    one_batch = run([*base, "--workers", "2"])
    assert pools == []
    parallel = run([*base, "--workers", "2", "--batch-size", "1"])
    assert len(pools) == 1 and pools[0][1] == 2
    for result in (alone, one_batch, parallel):
        assert result.exit_code == 0, result.output
    assert parallel.stdout == alone.stdout == one_batch.stdout
    assert len(parallel.stdout.splitlines()) == 5  # a header and the four specimens


def test_each_photo_is_decoded_once(tiny_bundle, field_inputs, monkeypatch):
    """The input stage decodes a photo into the image branch's pixels, which travel with the
    specimen: no second decode to embed it, none to check it, none for the drawn-photo note."""
    import hir_edge.images
    import hir_edge.runtime.identifier
    import hir_edge.runtime.inputs

    folder, truth = field_inputs
    decoded = []
    real = hir_edge.images.load_image

    def counting(source, **kw):
        decoded.append(Path(source).name)
        return real(source, **kw)

    for module in (hir_edge.runtime.identifier, hir_edge.runtime.inputs):
        monkeypatch.setattr(module, "load_image", counting)
    result = run(["--bundle", str(tiny_bundle), "--image", str(folder), "-q", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert sorted(decoded) == sorted(f"{sid}.jpg" for sid in truth)
    assert len(json.loads(result.stdout)) == len(truth)


def test_bad_records_are_skipped_and_exit_code_is_1(tiny_bundle, field_inputs, tmp_path):
    folder, _ = field_inputs
    reads = tmp_path / "mixed.fa"
    good = (folder / "reads.fa").read_text().splitlines()[:2]
    reads.write_text("\n".join([*good, ">protein", "MKVLAAGIVGLLLAAQPAMA", ">empty", ""]) + "\n")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    result = run(
        [
            "--bundle",
            str(tiny_bundle),
            "--fasta",
            str(reads),
            "--image",
            str(broken),
            "--format",
            "tsv",
        ]
    )
    assert result.exit_code == 1
    rows = result.stdout.strip().splitlines()
    assert rows[0].startswith("id\tassigned_rank\tassigned_taxon\tconfidence\torder\torder_p")
    assert len(rows) == 2  # header + the one good read
    assert f"skipped: {reads}: record 'protein'" in result.stderr
    assert "looks like a protein sequence" in result.stderr
    assert f"skipped: {broken}: is not an image Pillow can read" in result.stderr


def test_a_blank_frame_is_skipped_and_its_read_answers_alone(tiny_bundle, field_inputs, tmp_path):
    """A flash-blown white frame is no specimen: one line, exit 1, the good photo beside it
    still named; a blank photo paired with a read leaves the read to answer alone."""
    folder, _ = field_inputs
    good = next(folder.glob("*.jpg"))
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(good, photos / good.name)
    Image.new("RGB", (640, 480), (255, 255, 255)).save(photos / "white.png")
    result = run(["--bundle", str(tiny_bundle), "--image", str(photos), "--format", "json"])
    assert result.exit_code == 1
    errors = skipped_lines(result)
    assert errors == [
        f"skipped: {photos / 'white.png'}: is a blank frame (brightness varies by 0.00 grey "
        "levels, under 2): nothing to identify"
    ]
    assert [i["id"] for i in json.loads(result.stdout)] == [good.stem]
    reads = tmp_path / "one.fa"
    reads.write_text("\n".join((folder / "reads.fa").read_text().splitlines()[:2]) + "\n")
    read_id = reads.read_text().split()[0][1:]
    Image.new("RGB", (640, 480), (0, 0, 0)).save(tmp_path / f"{read_id}.png")
    args = ["--bundle", str(tiny_bundle), "--fasta", str(reads), "--format", "json"]
    (alone,) = json.loads(run(args).stdout)
    paired = run([*args, "--image", str(tmp_path / f"{read_id}.png")])
    assert paired.exit_code == 1
    (item,) = json.loads(paired.stdout)
    assert item["modalities"] == ["dna"] and item["assigned"] == alone["assigned"]


def test_a_read_without_enough_called_bases_is_no_evidence(tiny_bundle, field_inputs, tmp_path):
    folder, _ = field_inputs
    reads = tmp_path / "gaps.fa"
    good = (folder / "reads.fa").read_text().splitlines()[:2]
    some = "ACGTACGTAC" + "N" * 140  # 10 called bases: fewer than 3 k-mers' worth (18)
    reads.write_text("\n".join([*good, ">blank", "N" * 150, ">some", some, ">lit", "N" * 150]))
    photo = tmp_path / "lit.jpg"
    shutil.copy(next(folder.glob("*.jpg")), photo)
    args = ["--bundle", str(tiny_bundle), "--fasta", str(reads), "--image", str(photo)]
    result = run([*args, "--format", "json"])
    assert result.exit_code == 1
    errors = skipped_lines(result)
    assert errors == [
        f"skipped: {reads}: record 'blank': read has 0 called bases (A/C/G/T) of 150; "
        "at least 18 are needed",
        f"skipped: {reads}: record 'some': read has 10 called bases (A/C/G/T) of 150; "
        "at least 18 are needed",
    ]
    items = {item["id"]: item for item in json.loads(result.stdout)}
    assert len(items) == 2 and items["lit"]["modalities"] == ["image"]
    assert items["lit"]["best_hit"] is None and items["lit"]["gate"] is None
    assert (
        "read has 0 called bases (A/C/G/T) of 150; at least 18 are needed: identified from the "
        "photo alone" in items["lit"]["warnings"]
    )


def test_a_repeat_read_is_skipped_and_the_good_reads_answered(tiny_bundle, field_inputs, tmp_path):
    """A poly-A read aligns a few bases somewhere; its far best hit once read as "order
    probably absent from the library"."""
    folder, _ = field_inputs
    reads = tmp_path / "junk.fa"
    good = (folder / "reads.fa").read_text().splitlines()[:2]
    reads.write_text("\n".join([*good, ">polyA", "A" * 600, ">at", "AT" * 150, ""]))
    result = run(["--bundle", str(tiny_bundle), "--fasta", str(reads), "--format", "json"])
    assert result.exit_code == 1
    errors = skipped_lines(result)
    assert errors == [
        f"skipped: {reads}: record '{name}': read is low-complexity: its 6 most common 4-mers "
        "make up 100% of it (a homopolymer or short tandem repeat, not a barcode)"
        for name in ("polyA", "at")
    ]
    (item,) = json.loads(result.stdout)
    assert item["id"] == good[0][1:].split()[0] and item["assigned"]["rank"] is not None


def test_unrelated_dna_is_not_called_a_novel_order(tiny_bundle, field_inputs, tmp_path):
    """A random read finds a best hit far below the library's orders; so does a distant
    insect. Only the insect is nearer its hit than shuffled copies of itself get."""
    import random

    folder, _ = field_inputs
    good = (folder / "reads.fa").read_text().splitlines()[:2]
    rng = random.Random(0)
    distant = "".join(rng.choice("ACGT") if rng.random() < 0.4 else b for b in good[1])
    unrelated = "".join(rng.choices("ACGT", weights=[35, 15, 15, 35], k=600))
    reads = tmp_path / "far.fa"
    reads.write_text("\n".join([">distant", distant, ">unrelated", unrelated, ""]))
    result = run(["--bundle", str(tiny_bundle), "--fasta", str(reads), "--format", "json"])
    assert result.exit_code == 0, result.stderr
    items = {item["id"]: item for item in json.loads(result.stdout)}
    junk = items["unrelated"]
    assert junk["assigned"]["rank"] is None and junk["novel"] is None
    assert len(junk["warnings"]) == 1
    assert junk["warnings"][0].startswith("not recognisably COI: the best reference barcode is ")
    far = items["distant"]
    # below the library's orders too (novel at order: the coarsest band) and under 0.70, so
    # its shuffled copies are aligned too (runtime/chance.py), yet near its hit
    assert far["best_hit"]["identity"] < 0.70
    assert far["novel"]["rank"] == "order" and far["assigned"]["rank"] is None
    assert not any(w.startswith("not recognisably COI") for w in far["warnings"])


def test_the_library_api_answers_nothing_for_a_read_of_ns(tiny_bundle):
    from hir_edge.runtime.backends import select_backend
    from hir_edge.runtime.identifier import Identifier, Specimen

    bundle = open_bundle(tiny_bundle)
    (answer,) = Identifier(bundle, select_backend(bundle)).identify([Specimen("x", "N" * 40)])
    assert answer.assigned["rank"] is None and answer.modalities == []
    assert answer.warnings == ["read has 0 called bases (A/C/G/T) of 40; at least 18 are needed"]


def test_a_read_of_uncertain_strand_is_put_on_its_library_relatives_strand(tiny_bundle):
    from dataclasses import replace

    from hir_edge.dna.qc import clean_read, reverse_complement
    from hir_edge.runtime.backends import select_backend
    from hir_edge.runtime.identifier import Identifier, Specimen

    bundle = open_bundle(tiny_bundle)
    barcode = bundle.references.barcodes[3]
    window = (barcode.decode() if isinstance(barcode, bytes) else str(barcode))[200:300]
    # as if the coding model had called the wrong strand without conviction
    wrong, qc = clean_read(reverse_complement(window))
    qc = replace(qc, flags=("short", "uncertain_strand"))
    sure = replace(qc, flags=("short",))  # a confident call is left alone
    identifier = Identifier(bundle, select_backend(bundle))
    fixed, kept = identifier.strand_from_library(
        [Specimen("unsure", wrong, qc), Specimen("sure", wrong, sure)]
    )
    assert fixed.sequence == window and fixed.qc.reverse_complemented is True
    assert fixed.qc.flags == ("short", "strand_from_library")
    assert kept.sequence == wrong and kept.qc is sure


def test_usage_errors_exit_2(tiny_bundle, tmp_path):
    assert run(["--bundle", str(tiny_bundle)]).exit_code == 2
    result = run(["--bundle", str(tiny_bundle), "--fasta", str(tmp_path / "none.fa")])
    assert result.exit_code == 2
    assert (
        "Invalid value for '--fasta': File" in result.output
        and "none.fa' does not exist" in result.output
    )


def test_rank_cap_and_min_confidence(tiny_bundle, field_inputs):
    folder, _ = field_inputs
    args = ["--bundle", str(tiny_bundle), "--fasta", str(folder / "reads.fa")]
    args += ["--format", "json", "-q"]
    capped = json.loads(run([*args, "--rank", "family"]).stdout)
    assert all(i["assigned"]["rank"] in ("order", "family", None) for i in capped)
    default = json.loads(run(args).stdout)
    strict = json.loads(run([*args, "--min-confidence", "0.999"]).stdout)
    depth = {None: 0, "order": 1, "family": 2, "genus": 3, "species": 4}
    for loose, tight in zip(default, strict, strict=True):
        assert depth[tight["assigned"]["rank"]] <= depth[loose["assigned"]["rank"]]
        if tight["assigned"]["rank"] is not None:
            assert tight["assigned"]["confidence"] >= 0.999


def test_a_photo_paired_with_unrelated_dna_is_identified_from_the_photo(
    tiny_bundle, field_inputs, tmp_path
):
    """As with an unusable read: the photo answers alone, and says why."""
    folder, _ = field_inputs
    photo = next(folder.glob("*.jpg"))
    unrelated = "".join(np.random.default_rng(1).choice(list("ACGT"), 600))
    reads = tmp_path / "one.fa"
    reads.write_text(f">{photo.stem}\n{unrelated}\n")
    args = ["--bundle", str(tiny_bundle), "--format", "json", "--image", str(photo)]
    (alone,) = json.loads(run(args).stdout)
    (paired,) = json.loads(run([*args, "--fasta", str(reads)]).stdout)
    assert paired["modalities"] == ["image"] and paired["novel"] is None
    assert paired["assigned"] == alone["assigned"] and paired["ranks"] == alone["ranks"]
    assert any(
        w.startswith("not recognisably COI: the best reference barcode is ")
        and w.endswith("not a novel taxon: identified from the photo alone")
        for w in paired["warnings"]
    )


def test_random_sequence_is_placed_nowhere_and_called_no_barcode(tiny_bundle, tmp_path):
    rng = np.random.default_rng(0)
    reads = tmp_path / "odd.fa"
    reads.write_text(">random\n" + "".join(rng.choice(list("ACGT"), 600)) + "\n")
    args = ["--bundle", str(tiny_bundle), "--fasta", str(reads), "--format", "json", "-q"]
    item = json.loads(run(args).stdout)[0]
    hit = item["best_hit"]
    assert hit["identity"] < 0.8
    assert hit["divergence"] is None  # too far for the estimate: absent, not 0.0
    # no rank is reached, and no rank is said to be absent: it is no nearer than its shuffles
    assert item["assigned"]["rank"] is None and item["novel"] is None
    (warning,) = item["warnings"]
    assert warning.startswith("not recognisably COI: the best reference barcode is ")
    assert warning.endswith("unrelated DNA, another gene or a failed read, not a novel taxon")


def test_a_reference_barcode_is_its_own_best_hit(tiny_bundle, tmp_path):
    """A read identical to a reference: 100% identity, no divergence, not novel, named."""
    refs = open_bundle(tiny_bundle).references
    barcode = refs.barcodes[5]
    barcode = barcode.decode() if isinstance(barcode, bytes) else str(barcode)
    reads = tmp_path / "ref.fa"
    reads.write_text(f">again\n{barcode}\n")
    args = ["--bundle", str(tiny_bundle), "--fasta", str(reads), "--format", "json", "-q"]
    item = json.loads(run(args).stdout)[0]
    hit = item["best_hit"]
    assert (hit["identity"], hit["divergence"], hit["gaps"]) == (1.0, 0.0, 0)
    assert hit["mismatches_by_codon_position"] == [0, 0, 0]
    assert hit["mismatches_with_library_bases"] == 0
    assert hit["barcode_gap"] > 0.02  # the next species was aligned too, well below 100%
    assert item["novel"] is None
    table = run(["--bundle", str(tiny_bundle), "--fasta", str(reads), "-q", "--format", "table"])
    assert "best barcode hit:" in table.stdout and "100.0% identity" in table.stdout
    gap = f"{100 * hit['barcode_gap']:.1f} points above the next species"
    assert gap in table.stdout


def test_fragments_of_reference_barcodes_follow_their_alignment(tiny_bundle, tmp_path):
    """150-bp windows of reference barcodes: each answer names the best hit's taxon at every
    rank it reaches, down to genus at least (a short read's prompt ranking must not overrule its
    alignment; whether a 150-bp window tells sister species apart is the placement's call)."""
    bundle = open_bundle(tiny_bundle)
    refs = bundle.references
    lines = []
    for j in range(0, 40, 4):
        barcode = refs.barcodes[j]
        barcode = barcode.decode() if isinstance(barcode, bytes) else str(barcode)
        lines.append(f">frag{j}\n{barcode[200:350]}\n")
    reads = tmp_path / "fragments.fa"
    reads.write_text("".join(lines))
    args = ["--bundle", str(tiny_bundle), "--fasta", str(reads), "--format", "json", "-q"]
    items = json.loads(run(args).stdout)
    assert len(items) == 10
    for item in items:
        hit = item["best_hit"]
        assert hit["identity"] >= 0.98 and item["novel"] is None  # itself or a conspecific
        lineage = item["assigned"]["lineage"]
        path = [item["placement"][r]["taxon"] for r in bundle.taxonomy.ranks]
        depth = bundle.taxonomy.ranks.index(hit["rank"])
        assert path[depth] == hit["taxon"], item["id"]  # the answer path follows the hit
        assert len(lineage) >= min(depth, 2) + 1, item["id"]
        assert lineage == path[: len(lineage)], item["id"]


def test_a_changed_read_reports_which_mismatches_other_species_explain(tiny_bundle, tmp_path):
    """Two changed bases: the JSON counts those carrying a base another species has there, and
    the table prints the same count beside the codon positions."""
    barcode = open_bundle(tiny_bundle).references.barcodes[5]
    barcode = barcode.decode() if isinstance(barcode, bytes) else str(barcode)
    swap = {"A": "G", "G": "A", "C": "T", "T": "C"}
    read = list(barcode)
    for position in (101, 302):
        read[position] = swap[read[position]]
    reads = tmp_path / "changed.fa"
    reads.write_text(">changed\n" + "".join(read) + "\n")
    args = ["--bundle", str(tiny_bundle), "--fasta", str(reads), "-q"]
    hit = json.loads(run([*args, "--format", "json"]).stdout)[0]["best_hit"]
    assert sum(hit["mismatches_by_codon_position"]) == 2
    shared = hit["mismatches_with_library_bases"]
    # the same count from the aligner itself, built on the bundle's barcodes and species
    opened = open_bundle(tiny_bundle)
    scoring = opened.manifest.scoring
    rows = [
        (b.decode() if isinstance(b, bytes) else str(b), int(c))
        for b, c in zip(opened.references.barcodes, opened.references.labels[:, -1])
    ]
    rows = [(b, None if c < 0 else c) for b, c in rows if b]  # identify aligns barcoded ones
    direct = ReferenceAligner(
        [b for b, _ in rows],
        scoring["kmer_k"],
        scoring["barcode_shortlist"],
        [c for _, c in rows],
        scoring["barcode_per_species"],
    ).search(["".join(read)])[1][0]
    assert shared == direct.library_bases
    by_pos = "/".join(str(m) for m in hit["mismatches_by_codon_position"])
    table = run([*args, "--format", "table"]).stdout
    assert f"1/2/3 {by_pos} ({shared} with a base other species carry there)" in table


def test_novel_above_moves_the_novelty_cut_off(tiny_bundle, tmp_path):
    """A read 20 third-position changes from a reference (a sister species 3-4% away): novel
    under the bundle's 2%, not under --novel-above 10; the run log records the setting."""
    from hir_edge.dna.align import coding_frame

    barcode = open_bundle(tiny_bundle).references.barcodes[5]
    barcode = barcode.decode() if isinstance(barcode, bytes) else str(barcode)
    swap = {"A": "G", "G": "A", "C": "T", "T": "C"}
    read = list(barcode)
    frame = coding_frame(barcode)
    codons = (len(barcode) - frame) // 3
    for codon in range(3, codons, codons // 20)[:20]:
        position = frame + 3 * codon + 2
        read[position] = swap.get(read[position], "A")
    reads = tmp_path / "sister.fa"
    reads.write_text(">sister\n" + "".join(read) + "\n")
    args = ["--bundle", str(tiny_bundle), "--fasta", str(reads), "--format", "json", "-q"]
    item = json.loads(run(args).stdout)[0]
    assert item["novel"]["rank"] == "species" and item["best_hit"]["divergence"] > 0.02
    assert item["novel"]["reason"].startswith("best reference barcode 9")
    assert item["assigned"]["rank"] != "species"
    log = tmp_path / "run.json"
    item = json.loads(run([*args, "--novel-above", "10", "--log", str(log)]).stdout)[0]
    assert item["novel"] is None
    record = json.loads(log.read_text())
    assert record["settings"]["novel_divergence"] == record["novel_divergence_in_effect"] == 0.1
    bad = run([*args, "--novel-above", "0"])
    assert bad.exit_code == 2 and "Invalid value for '--novel-above'" in bad.output


def test_output_file_is_atomic_and_never_clobbered(tiny_bundle, field_inputs, tmp_path):
    folder, _ = field_inputs
    out = tmp_path / "ids.csv"
    args = [
        "--bundle",
        str(tiny_bundle),
        "--fasta",
        str(folder / "reads.fa"),
        "--format",
        "csv",
        "-o",
        str(out),
        "--log",
        str(tmp_path / "run.json"),
        "-q",
    ]
    assert run(args).exit_code == 0
    assert out.read_text().startswith("id,assigned_rank,assigned_taxon,confidence")
    log = json.loads((tmp_path / "run.json").read_text())
    assert log["identified"] == 4 and log["backend"].startswith("ONNX Runtime")
    again = run(args)
    assert again.exit_code == 2 and "already exists; pass --force" in again.output


def test_tampered_bundle_is_refused(tiny_bundle, tmp_path):
    copy = tmp_path / "copy.bundle"
    shutil.copytree(tiny_bundle, copy)
    with (copy / "dna.int8.onnx").open("ab") as handle:
        handle.write(b"\0")
    tampered = r"dna.int8.onnx does not match its checksum in the manifest"
    with pytest.raises(BundleError, match=tampered):
        open_bundle(copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["format"] = "hir-edge-bundle/9"
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=r"bundle format 'hir-edge-bundle/9' is not supported"):
        open_bundle(copy)


def test_bundle_tar_opens_and_traversal_is_refused(tiny_bundle, tmp_path):
    archive = tmp_path / "tiny.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(tiny_bundle, arcname="tiny.bundle")
    assert open_bundle(archive).taxonomy.sizes()["order"] == 3
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as tar:
        tar.add(tiny_bundle / "manifest.json", arcname="../manifest.json")
    with pytest.raises(BundleError, match=r"would extract outside"):
        open_bundle(evil)


def test_identify_imports_no_torch(tiny_bundle, field_inputs):
    folder, _ = field_inputs
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from hir_edge.cli import main\n"
        f"r = CliRunner().invoke(main, ['identify', '--bundle', {str(tiny_bundle)!r}, "
        f"'--fasta', {str(folder / 'reads.fa')!r}, '--image', {str(folder)!r}, '-q'])\n"
        "assert r.exit_code == 0, r.output\n"
        "heavy = ('torch', 'open_clip', 'transformers', 'h5py')\n"
        "print('HEAVY=' + ','.join(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "HEAVY="


def test_info_and_bench(tiny_bundle, tmp_path):
    info = CliRunner().invoke(main, ["info", str(tiny_bundle), "--json"])
    assert info.exit_code == 0, info.output
    summary = json.loads(info.stdout)
    assert summary["name"] == "tiny-test" and summary["references"] > 0
    assert any(b.startswith("onnxruntime") for b in summary["backends_here"])
    bench = CliRunner().invoke(
        main, ["bench", str(tiny_bundle), "--repeat", "2", "-o", str(tmp_path / "b.json")]
    )
    assert bench.exit_code == 0, bench.output
    rows = json.loads((tmp_path / "b.json").read_text())["rows"]
    timed = {"image", "dna", "fusion", "specimen"}
    read_sets = {"reads: known", "reads: paper", "reads: 150 bp", "reads: unrelated"}
    assert {r["part"] for r in rows} == timed | read_sets
    assert {r["batch"] for r in rows if r["part"] in timed} == {1, 32}
    from hir_edge.dna.align import default_workers

    workers = default_workers()  # reads are timed as identify runs them: in worker processes
    suffix = f", {workers} workers" if workers > 1 else ""
    assert all(r["backend"].endswith(suffix) for r in rows if r["part"] in read_sets)


def test_references_without_a_barcode_are_left_out_of_the_alignment(tiny_bundle):
    """Photo-only reference specimens (no barcode) must not break read identification; hits
    still name rows of the whole library."""
    from hir_edge.runtime.backends import OnnxRuntimeBackend
    from hir_edge.runtime.identifier import Identifier

    bundle = open_bundle(tiny_bundle)
    barcodes = bundle.references.barcodes.copy()
    read = barcodes[5].decode() if isinstance(barcodes[5], bytes) else str(barcodes[5])
    barcodes[[0, 1, 2]] = b""
    bundle.references.barcodes = barcodes
    identifier = Identifier(bundle, OnnxRuntimeBackend(bundle, "fp32"))
    sims, hits = identifier.barcode_alignments([read])
    assert sims.shape == (1, len(barcodes)) and not sims[0, :3].any()
    assert sims[0, 5] == pytest.approx(1.0)
    assert hits[0].identity == 1.0 and hits[0].reference not in (0, 1, 2)
    assert barcodes[hits[0].reference] == barcodes[5]


def _edited_bundle(tiny_bundle, tmp_path, edit):

    copy = tmp_path / "edited.bundle"
    shutil.copytree(tiny_bundle, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    edit(copy, manifest)
    (copy / "manifest.json").write_text(json.dumps(manifest))
    return copy


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda root, m: m.pop("model"), "'model' is missing, expected a dict"),
        (lambda root, m: m.update(graphs=[]), "'graphs' is a list, expected a dict"),
        (
            lambda root, m: m["files"].pop("taxonomy.json"),
            "taxonomy.json is not among the checked files",
        ),
    ],
)
def test_a_damaged_manifest_is_one_line_and_exit_3(tiny_bundle, tmp_path, edit, message):
    bundle = _edited_bundle(tiny_bundle, tmp_path, edit)
    reads = tmp_path / "r.fa"
    reads.write_text(">r\n" + "ACGT" * 100 + "\n")
    result = run(["--bundle", str(bundle), "--fasta", str(reads)])
    assert result.exit_code == 3
    assert result.stderr.startswith(f"error: {bundle / 'manifest.json'}: ")
    assert message in result.stderr and "Traceback" not in result.stderr


def test_an_npz_of_pickled_objects_is_refused(tiny_bundle, tmp_path):
    import numpy as np

    from hir_edge.io import sha256_file

    def pickled(root, manifest):
        np.savez(root / "prompts.npz", rank0=np.array([{"a": 1}], dtype=object))
        manifest["files"]["prompts.npz"]["sha256"] = sha256_file(root / "prompts.npz")

    bundle = _edited_bundle(tiny_bundle, tmp_path, pickled)
    reads = tmp_path / "r.fa"
    reads.write_text(">r\n" + "ACGT" * 100 + "\n")
    result = run(["--bundle", str(bundle), "--fasta", str(reads)])
    assert result.exit_code == 3
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {bundle / 'prompts.npz'}: cannot be read as plain arrays (Object arrays cannot "
        "be loaded when allow_pickle=False)"
    )


def test_an_output_the_system_refuses_is_one_line_and_exit_4(tiny_bundle, tmp_path):
    # a read-only folder or a full disk refuses the same way; a file used as a folder is one
    # such refusal that even root meets
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    reads = tmp_path / "r.fa"
    reads.write_text(">r\n" + "ACGT" * 100 + "\n")
    result = run(["--bundle", str(tiny_bundle), "--fasta", str(reads), "-o", str(blocker / "o")])
    assert result.exit_code == 4
    assert result.stderr.strip().splitlines()[-1] == f"error: {blocker}: File exists"


def test_a_worker_that_cannot_start_is_one_line_not_a_traceback(tmp_path, capfd):
    from hir_edge.errors import HirEdgeError
    from hir_edge.runtime.parallel import BatchPool, WorkerSettings

    pool = BatchPool(WorkerSettings(bundle=tmp_path / "gone.bundle"), 2)  # it cannot open it
    try:
        with pytest.raises(HirEdgeError, match="a worker process stopped unexpectedly"):
            list(pool.map([[], []]))
    finally:
        pool.close()
    err = capfd.readouterr().err
    assert "Traceback" not in err and "hir-edge worker: " in err and "gone.bundle" in err


def test_identify_keeps_the_k_mer_index_where_cache_says(
    tiny_bundle, field_inputs, tmp_path, monkeypatch
):
    from hir_edge.dna import kmers

    folder, _ = field_inputs
    args = ["--bundle", str(tiny_bundle), "--fasta", str(folder / "reads.fa"), "-q"]
    first = run([*args, "--cache", str(tmp_path / "kept"), "--format", "tsv"])
    assert first.exit_code == 0, first.output
    assert [p.name[:11] for p in (tmp_path / "kept").iterdir()] == ["kmer-index-"]
    off = run([*args, "--format", "tsv"], env={"HIR_EDGE_CACHE": "off"})
    monkeypatch.setattr(
        kmers, "reference_counts", counting_only_spot_checks(kmers.reference_counts)
    )
    second = run([*args, "--cache", str(tmp_path / "kept"), "--format", "tsv"])
    assert second.exit_code == 0, second.output
    assert second.output == first.output == off.output  # the same answers, kept or counted


def test_tsv_rows_carry_each_ranks_calibrated_chance_for_reads(tiny_bundle, field_inputs):
    """<rank>_p_right is the placement's p_right of the JSON, to three places; a photo alone
    has no placement and leaves it empty."""
    import csv
    import io

    folder, _ = field_inputs
    reads = ["--bundle", str(tiny_bundle), "--fasta", str(folder / "reads.fa"), "-q"]
    table = run([*reads, "--format", "tsv"])
    as_json = run([*reads, "--format", "json"])
    assert table.exit_code == 0 and as_json.exit_code == 0, table.output
    rows = list(csv.DictReader(io.StringIO(table.stdout), delimiter="\t"))
    answers = {a["id"]: a for a in json.loads(as_json.stdout)}
    assert list(rows[0])[-5:] == [f"{r}_p_right" for r in RANKS] + ["warnings"]
    for row in rows:
        placement = answers[row["id"]]["placement"]
        assert placement is not None
        for rank in RANKS:
            assert row[f"{rank}_p_right"] == f"{placement[rank]['p_right']:.3f}"
        # the answer's confidence is its rank's calibrated chance
        rank = row["assigned_rank"]
        assert rank and row["confidence"] == row[f"{rank}_p_right"]
    photo = next(folder.glob("*.jpg"))
    alone = run(["--bundle", str(tiny_bundle), "--image", str(photo), "-q", "--format", "tsv"])
    (row,) = csv.DictReader(io.StringIO(alone.stdout), delimiter="\t")
    assert all(row[f"{rank}_p_right"] == "" for rank in RANKS)
