"""Export: bundle layout, checksums, parity and INT8 figures, validation, the TensorRT stage."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from hir_edge.cli import main
from hir_edge.errors import ConfigError
from hir_edge.export.pipeline import ExportOptions, export_bundle, validate
from hir_edge.io import sha256_file
from hir_edge.runtime.bundle import open_bundle

pytestmark = pytest.mark.slow


def test_bundle_layout_manifest_and_measurements(tiny_bundle):
    manifest = json.loads((tiny_bundle / "manifest.json").read_text())
    assert manifest["format"] == "hir-edge-bundle/1"
    graphs = manifest["graphs"]
    assert set(graphs) == {"image", "dna", "fusion"}
    # INT8 only (no --keep-fp32); the TensorRT graph is derived on the device, measured here
    assert set(graphs["image"]["files"]) == {"int8"}
    assert set(graphs["fusion"]["files"]) == {"fp32"}
    assert not (tiny_bundle / "image.fp32.onnx").exists()
    for rel, info in manifest["files"].items():
        assert sha256_file(tiny_bundle / rel) == info["sha256"]
    assert "manifest.json" not in manifest["files"]
    # Measured at export: ONNX matches torch; INT8 stays close to fp32 (bounds stated here).
    meas = manifest["measurements"]
    assert min(p["min_cosine"] for p in meas["onnx_parity"].values()) >= 0.9999
    assert meas["int8_cosine"]["image"]["mean_cosine"] > 0.99
    assert meas["int8_cosine"]["dna"]["mean_cosine"] > 0.99
    assert min(v["mean_cosine"] for v in meas["int8_trt_cosine"].values()) > 0.99
    scoring = manifest["scoring"]
    for modality in ("image", "dna", "fused"):
        assert len(scoring["temperatures"][modality]) == 4
        assert all(0 < t <= 1.0 for t in scoring["thresholds"][modality])
    # fitted on clean reads, 'paper'-degraded copies and 100- and 150-bp fragments of them
    assert (scoring["calibration_noise"], scoring["calibration_fragments"]) == ("paper", [100, 150])
    # the divergence statistics' maths: test_divergence_stats_by_hand
    assert set(scoring["validation_read_divergence"]) == {"q50", "q99", "flagged_novel_%"}
    assert {
        "validation_fragment_100bp_read_divergence",
        "validation_fragment_150bp_read_divergence",
    } <= set(scoring)
    assert manifest["provenance"]["branches"]["image"]["kind"] == "synthetic"
    assert manifest["provenance"]["branches"]["dna"]["kind"] == "synthetic"
    card = (tiny_bundle / "MODEL_CARD.md").read_text()
    assert "## Limits" in card and "generated demo taxon" in card
    copies = "their 'paper'-degraded copies and 100-bp and 150-bp fragments of them"
    assert f"clean reads, {copies}" in card
    # read placement weighs identity against the references' radii, and the card says so
    assert "labelled_margin" in scoring["placement"]["features"]
    assert "how far that reference's taxon reaches" in card
    # nested: the thresholds were fitted on the nested probabilities, and the card says so
    assert scoring["placement"]["nested"] is True
    assert "read placement is nested" in card


def test_int8_dna_graph_keeps_attention_products_in_float(tiny_bundle):
    """Weights are INT8; the two attention products per layer (scores and weighted values, both
    inputs activations) and the projection head read float tensors: no dequantiser feeds
    them."""
    import onnx

    graph = onnx.load(str(tiny_bundle / "dna.int8.onnx")).graph
    stored = {init.name for init in graph.initializer}
    dequantisers = [n for n in graph.node if n.op_type == "DequantizeLinear"]
    dequantised = {n.output[0] for n in dequantisers}
    weights = stored | {n.output[0] for n in dequantisers if n.input[0] in stored}
    matmuls = [n for n in graph.node if n.op_type == "MatMul"]
    products = [n for n in matmuls if not any(i in weights for i in n.input)]
    layers = sum(n.op_type == "Softmax" for n in graph.node)
    assert layers >= 1 and len(products) == 2 * layers
    assert not any(i in dequantised for n in products for i in n.input)
    dense = [n for n in matmuls if n not in products]
    assert dense and all(all(i in dequantised for i in n.input) for n in dense)
    # the projection head on the pooled vector stays float too (QUANTISED_OPS)
    heads = [n for n in graph.node if n.op_type == "Gemm"]
    assert heads and not any(i in dequantised for n in heads for i in n.input)


def test_opened_bundle_matches_the_taxonomy(tiny_bundle):
    bundle = open_bundle(tiny_bundle)
    sizes = bundle.taxonomy.sizes()
    assert [b.shape[0] for b in bundle.prompt_banks] == list(sizes.values())
    assert all(np.allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-4) for b in bundle.prompt_banks)
    assert bundle.references is not None and bundle.references.dna.shape[1] == bundle.embed_dim


def test_shipped_library_is_every_record_embedded_once(tiny_bundle, tiny_run, tiny_world, tmp_path):
    """The full library reuses the reference split's rows embedded before calibration: the
    result is what embedding every split afresh gives, row for row."""
    import shutil

    from hir_edge.data.hdf5 import SpecimenStore
    from hir_edge.export.library import write_references
    from hir_edge.models import load_model

    copy = tmp_path / "b"
    shutil.copytree(tiny_bundle, copy)
    splits = ["test", "train", "val"]
    count, radii = write_references(
        copy,
        ExportOptions(tiny_run, copy),
        load_model(tiny_run / "best"),
        "int8",
        tiny_world,
        splits,
        radii_scoring=json.loads((copy / "manifest.json").read_text())["scoring"],
    )
    assert count == sum(len(SpecimenStore(tiny_world, s)) for s in splits)
    assert radii.shape == (count, 4)
    with (
        np.load(tiny_bundle / "references.npz") as shipped,
        np.load(copy / "references.npz") as fresh,
    ):
        assert sorted(shipped.files) == sorted(fresh.files)
        for key in shipped.files:
            nan = shipped[key].dtype.kind == "f"  # radii are NaN where not named
            assert np.array_equal(shipped[key], fresh[key], equal_nan=nan), key


def test_a_library_of_the_reference_split_alone_still_ships_its_radii(
    tiny_bundle, tiny_run, tiny_world, tmp_path
):
    """With ``library_all`` off the calibration's own references stay, and their radii are
    aligned into them: the placement reads them, and identify must never align them."""
    import shutil

    from hir_edge.data.hdf5 import SpecimenStore
    from hir_edge.export.stages import STAGES, ExportContext, full_library
    from hir_edge.models import load_model

    copy = tmp_path / "b"
    shutil.copytree(tiny_bundle, copy)
    train = set(SpecimenStore(tiny_world, "train").processids())
    with np.load(copy / "references.npz") as shipped:  # the library calibration saw
        keep = np.array([str(i) in train for i in shipped["ids"]])
        arrays = {k: shipped[k][keep] for k in shipped.files if k != "radii"}
    np.savez_compressed(copy / "references.npz", **arrays)
    options = ExportOptions(tiny_run, copy, library_all=False, reference_split="train")
    ctx = ExportContext(
        options=options,
        teacher=None,
        taxonomy=None,
        calib_path=tiny_world,
        out=copy,
        work=tmp_path / "work",
        field_model=load_model(tiny_run / "best"),
        manifest=json.loads((copy / "manifest.json").read_text()),
        precision="int8",
    )
    stage = next(s for s in STAGES if s.run is full_library)
    assert stage.wanted(ctx)
    line, _ = full_library(ctx)
    assert line.startswith(f"references: {int(keep.sum())} specimens of train; radii")
    assert ctx.manifest["scoring"]["calibrated_on"]["library_shipped"] == ["train"]
    with np.load(copy / "references.npz") as written:
        np.testing.assert_array_equal(written["ids"], arrays["ids"])
        assert written["radii"].shape == arrays["labels"].shape
        assert np.isfinite(written["radii"][:, -1]).any()


def test_validation_fails_fast_with_clear_messages(tiny_run, tiny_world, tmp_path):
    base = dict(checkpoint=tiny_run / "best", output=tmp_path / "b", calib_data=tiny_world)
    teacher = r"--student 'tiny' is a teacher preset; students: edge-s, edge-m"
    with pytest.raises(ConfigError, match=teacher):
        validate(ExportOptions(**base, student="tiny"))
    missing = r"--val-split 'holdout' is not in .* \(it has: test, train, val\)"
    with pytest.raises(ConfigError, match=missing):
        validate(ExportOptions(**base, val_split="holdout"))
    with pytest.raises(ConfigError, match=r"not a model folder"):
        validate(ExportOptions(**{**base, "checkpoint": tmp_path}))
    short = r"--calib-fragment 10: a read needs 18 called bases to be aligned"
    with pytest.raises(ConfigError, match=short):
        validate(ExportOptions(**base, calibration_fragments=(150, 10)))


def test_export_refuses_to_overwrite(tiny_bundle, tiny_run, tiny_world):
    result = CliRunner().invoke(
        main,
        [
            "export",
            "--checkpoint",
            str(tiny_run / "best"),
            "--calib-data",
            str(tiny_world),
            "-o",
            str(tiny_bundle),
            "-q",
        ],
    )
    assert result.exit_code == 2
    assert f"error: {tiny_bundle} already exists; pass --force to overwrite it" in result.output


def test_engine_stage_without_tensorrt_prints_trtexec(tiny_bundle, tmp_path):
    import shutil

    bundle = tmp_path / "copy.bundle"
    shutil.copytree(tiny_bundle, bundle)
    result = CliRunner().invoke(main, ["export", "--engine", "--bundle", str(bundle)])
    assert result.exit_code == 2
    assert "TensorRT is not installed here" in result.output
    trtexec = (
        "trtexec --onnx=image.int8-trt.onnx --saveEngine=engines/image.int8.plan --int8 --fp16"
    )
    assert trtexec in result.output
    assert "--minShapes=image:1x3x32x32" in result.output
    # the symmetric graph TensorRT reads was derived beside the CPU one, and is checksummed
    opened = open_bundle(bundle)
    assert opened.graph_path("image", "int8-trt") == bundle / "image.int8-trt.onnx"
    import onnx

    graph = onnx.load(str(bundle / "image.int8-trt.onnx"))
    zero_points = [
        init
        for init in graph.graph.initializer
        if init.name.endswith("zero_point") and init.data_type == onnx.TensorProto.UINT8
    ]
    assert zero_points == []


def test_distilled_student_bundle(tiny_run, tiny_world, tmp_path):
    from hir_edge.export.distill import DistillConfig

    out = tmp_path / "student.bundle"
    manifest = export_bundle(
        ExportOptions(
            checkpoint=tiny_run / "best",
            output=out,
            student="edge-s",
            int8=False,
            calib_data=tiny_world,
            distill=DistillConfig(epochs=1, batch_size=16),
            quiet=True,
            reference_split=None,
        )
    )
    assert manifest["model"]["student_preset"] == "edge-s"
    params = manifest["measurements"]["distillation"]["parameters"]
    assert params["student"]["total"] < params["teacher"]["total"]
    assert "int8" not in manifest["graphs"]["image"]["files"]
    assert not (out / "references.npz").exists()
    assert not (tmp_path / ".student.bundle.work").exists()  # the work folder is cleaned up


def test_divergence_stats_by_hand():
    from hir_edge.dna.align import Hit
    from hir_edge.export.calibrate import _divergence_stats
    from hir_edge.runtime.scoring import ScoringSettings

    hits = [
        Hit(0, 0.99, 600, (0, 0, 1), 0, divergence) for divergence in (0.0, 0.01, 0.03, 0.05)
    ] + [None]  # a read without a hit does not count
    settings = ScoringSettings.from_section({"novelty_divergence": 0.02}, 4)
    stats = _divergence_stats(hits, settings)
    assert stats["q50"] == pytest.approx(0.02)  # midway between 0.01 and 0.03
    assert stats["flagged_novel_%"] == 50.0  # 0.03 and 0.05 are over 2%
    assert _divergence_stats([None], settings)["q50"] is None
