"""A photo-only bundle with a pretrained EfficientNet-Lite0 tower: train, export, identify."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from hir_edge.cli import main
from hir_edge.data.hdf5 import Specimen, SpecimenStore, list_splits, write_hdf5
from hir_edge.export.pipeline import ExportOptions, export_bundle
from hir_edge.models import load_model

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def photo_world(tiny_world, tmp_path_factory) -> Path:
    """The tiny world's specimens without their barcodes, as `data pack` writes a photo table."""
    out = tmp_path_factory.mktemp("photos") / "photos.h5"
    splits = {}
    for split in list_splits(tiny_world):
        store = SpecimenStore(tiny_world, split)
        splits[split] = [
            Specimen(s.processid, s.lineage, "", s.image, s.sampleid)
            for s in (store[i] for i in range(len(store)))
        ]
    write_hdf5(out, splits, quiet=True, attrs={"source": "photos.tsv", "created_by": "test"})
    return out


@pytest.fixture(scope="module")
def lite_run(photo_world, tmp_path_factory) -> Path:
    from hir_edge.train.config import load_config
    from hir_edge.train.trainer import Trainer

    run = tmp_path_factory.mktemp("runs") / "lite"
    cfg = load_config(
        None,
        [
            "model.preset=tiny-lite0",
            "model.overrides={fusion.enabled: false, clip.config.vision_cfg.image_size: 64, "
            "clip.config.text_cfg.layers: 1}",
            f"data.path={photo_world}",
            "data.num_workers=0",
            "data.max_val_specimens=24",
            "loss.variant=clibd",
            "loss.prompt_weight=1.0",
            "train.batch_size=16",
            "train.epochs=1",
            "train.head_warmup_steps=5",
            "train.image_lr_scale=0.5",
            "train.log_every_steps=2",
        ],
    )
    Trainer(cfg, run, quiet=True).fit()
    return run


def test_training_logs_each_term_and_its_gradient(lite_run):
    rows = [json.loads(line) for line in (lite_run / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["step"] == 0 and rows[0]["head_warmup"]["steps"] == 5
    logged = [r for r in rows if "loss" in r]
    assert logged and {"con_IT", "prompt_I", "grad_con_IT_image", "grad_prompt_I_image"} <= set(
        logged[0]
    )
    assert logged[0]["grad_prompt_I_image"] > 0


@pytest.fixture(scope="module")
def photo_bundle(lite_run, photo_world, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bundles") / "photos.bundle"
    export_bundle(
        ExportOptions(
            checkpoint=lite_run / "best",
            output=out,
            student="edge-s",
            int8=True,
            calib_data=photo_world,
            calib_samples=32,
            quiet=True,
        )
    )
    return out


def test_photo_only_bundle_ships_int8_image_graph_and_says_so(photo_bundle, lite_run):
    manifest = json.loads((photo_bundle / "manifest.json").read_text())
    assert set(manifest["graphs"]) == {"image"}
    # only the CPU INT8 graph: TensorRT's symmetric one is derived on the device (test_export)
    assert set(manifest["graphs"]["image"]["files"]) == {"int8"}
    assert not (photo_bundle / "image.fp32.onnx").exists()
    branches = manifest["provenance"]["branches"]
    assert branches["image"] == {"kind": "real", "source": "photographs listed in photos.tsv"}
    assert branches["dna"]["kind"] == "none"
    distill = manifest["measurements"]["distillation"]
    assert distill["image_tower"] == "handed over from the teacher"
    assert "Photos only" in (photo_bundle / "MODEL_CARD.md").read_text()
    assert manifest["preprocess"]["image_size"] == 64  # the teacher's resolution, kept


def test_the_student_keeps_the_teachers_image_tower(lite_run, photo_world, tmp_path):
    from hir_edge.export.distill import DistillConfig, Distiller

    teacher = load_model(lite_run / "best").eval()
    config = DistillConfig(epochs=1, batch_size=16)
    distiller = Distiller(teacher, photo_world, "train", config, tmp_path, quiet=True)
    student = distiller.student.eval()
    assert distiller.inherits_image
    for (name, a), (_, b) in zip(
        teacher.visual.state_dict().items(), student.visual.state_dict().items()
    ):
        assert torch.equal(a, b), name
    assert not any(p.requires_grad for p in student.visual.parameters())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(teacher.encode_image(x), student.encode_image(x), atol=1e-6)


def test_identify_names_photos_and_refuses_reads(photo_bundle, photo_world, tmp_path):
    store = SpecimenStore(photo_world, "test")
    for i in range(3):
        (tmp_path / f"p{i}.jpg").write_bytes(store.image_bytes(i))
    runner = CliRunner()
    result = runner.invoke(
        main,
        ["identify", "--bundle", str(photo_bundle), "--image", str(tmp_path), "--format", "json"],
    )
    assert result.exit_code == 0, result.output
    answers = json.loads(result.stdout)
    assert [a["id"] for a in answers] == ["p0", "p1", "p2"]
    assert all(a["modalities"] == ["image"] and not a["warnings"] for a in answers)
    reads = tmp_path / "r.fa"
    reads.write_text(">r1\n" + "ACGT" * 100 + "\n")
    refused = runner.invoke(
        main, ["identify", "--bundle", str(photo_bundle), "--fasta", str(reads)]
    )
    assert refused.exit_code == 2
    assert refused.stderr.strip().endswith(
        "identifies photos only (its training data had no barcodes): give --image alone, or a "
        "bundle with a DNA branch"
    )
    assert np.isfinite(answers[0]["assigned"]["confidence"])


def test_a_photo_unlike_the_references_is_refused_by_distance(photo_bundle, photo_world, tmp_path):
    """The export sets the distance limit that all but 1% of the validation photos stay
    within; a photo of noise lies far beyond it."""
    from PIL import Image

    from hir_edge.runtime.backends import select_backend
    from hir_edge.runtime.bundle import open_bundle
    from hir_edge.runtime.identifier import Identifier

    manifest = json.loads((photo_bundle / "manifest.json").read_text())
    limit = manifest["scoring"]["scope_distance"]["image"]
    bundle = open_bundle(photo_bundle)
    # the bundle ships every photo as a reference, the test photos too: ask with the training
    # photos alone, the library the limit was set with
    train = set(SpecimenStore(photo_world, "train").processids())
    bundle.references = bundle.references.subset(
        np.array([str(i) in train for i in bundle.references.ids])
    )
    identifier = Identifier(bundle, select_backend(bundle, "onnxruntime", "int8", "cpu"))
    store = SpecimenStore(photo_world, "test")
    photos = [store.image_bytes(i) for i in range(len(store))]
    pixels = np.stack([identifier.decode_photo(p).pixels for p in photos])
    distances = identifier.photo_scope.distances(identifier.backend.embed_images(pixels))
    assert limit > 0 and np.mean(distances > limit) <= 0.1  # test photos: in scope
    noise = np.random.default_rng(0).integers(0, 256, (96, 96, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "noise.png")
    args = ["--bundle", str(photo_bundle), "--image", str(tmp_path / "noise.png")]
    result = CliRunner().invoke(main, ["identify", *args, "--format", "json"])
    (answer,) = json.loads(result.stdout)
    assert answer["assigned"]["rank"] is None
    (warning,) = answer["warnings"]
    assert warning.startswith("unlike the bundle's reference photos (distance ")
    assert warning.endswith(
        f"beyond the {limit:.1f} that validation photos stay within): no answer"
    )


def test_image_weights_take_seven_bits_and_dna_weights_eight(photo_bundle, tiny_bundle):
    """U8 activations times S8 weights saturate in pairs on x86 CPUs without VNNI unless the
    weights stay within ±64 (ONNX Runtime's reduce_range): so the image graph's do; the DNA
    encoder's products stay in range, and its weights use all 8 bits."""
    import onnx
    from onnx import numpy_helper

    def widest(path: Path) -> list[int]:
        graph = onnx.load(str(path)).graph
        return [
            int(np.abs(numpy_helper.to_array(w).astype(np.int32)).max())
            for w in graph.initializer
            if w.data_type == onnx.TensorProto.INT8 and len(w.dims) > 1
        ]

    image = widest(photo_bundle / "image.int8.onnx")
    assert image and max(image) == 64
    assert max(widest(tiny_bundle / "image.int8.onnx")) == 64
    assert max(widest(tiny_bundle / "dna.int8.onnx")) == 127


def test_a_bundle_of_one_order_says_so_when_given_photos(
    photo_bundle, photo_world, tmp_path, monkeypatch
):
    """A moth bundle names any insect photo that passes as a moth 'Lepidoptera': the run
    says so once. The tiny world holds several orders (no note); made to hold one, it notes."""
    from hir_edge.taxonomy import Taxonomy

    photo = tmp_path / "p.jpg"
    photo.write_bytes(SpecimenStore(photo_world, "test").image_bytes(0))
    args = ["identify", "--bundle", str(photo_bundle), "--image", str(photo), "--format", "json"]
    assert "knows one order" not in CliRunner().invoke(main, args).stderr
    names = Taxonomy.names
    monkeypatch.setattr(
        Taxonomy, "names", lambda self, rank: ["Lepidoptera"] if rank == 0 else names(self, rank)
    )
    notes = [line for line in CliRunner().invoke(main, args).stderr.splitlines() if "order" in line]
    assert notes == [
        "note: this bundle knows one order, Lepidoptera: a photo of another insect that "
        "resembles its photos is answered as Lepidoptera"
    ]
