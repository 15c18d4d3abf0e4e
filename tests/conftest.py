"""Shared fixtures: the real data beside the checkout (skipped cleanly when absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def shared_path(*parts: str) -> Path:
    """A path under ../shared/data, or a pytest skip naming what is missing."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available: {path} is absent (it lives beside the checkout)")
    return path


def counting_only_spot_checks(count):
    """A stand-in for kmers.reference_counts that refuses to count more than the spot checks
    of a kept k-mer index: a run that recounts the whole library fails."""
    from hir_edge.dna import kmers

    def counting(sequences, k):
        assert len(sequences) <= kmers.SPOT_CHECKS, "counted again although the index was kept"
        return count(sequences, k)

    return counting


@pytest.fixture(autouse=True, scope="session")
def _own_cache(tmp_path_factory):
    """Runs of ``identify`` keep their k-mer indexes in a folder of the test session's own,
    never the user's ~/.cache."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HIR_EDGE_CACHE", str(tmp_path_factory.mktemp("hir-edge-cache")))
        yield


@pytest.fixture
def shared_data() -> Path:
    return shared_path()


@pytest.fixture
def bold_100sp() -> Path:
    return shared_path("bold_coi", "bold_coi_100sp.tsv")


@pytest.fixture
def bold_1826sp() -> Path:
    return shared_path("bold_coi", "bold_coi_1826sp.tsv")


@pytest.fixture
def bioscan_photos() -> Path:
    return shared_path("bioscan_photos")


@pytest.fixture
def eu_moths() -> Path:
    return shared_path("eu_moths")


REAL_DATA_FIXTURES = {"shared_data", "bold_100sp", "bold_1826sp", "bioscan_photos", "eu_moths"}


def pytest_collection_modifyitems(items) -> None:
    """Every test that reads ../shared/data carries the ``realdata`` marker (``-m "not
    realdata"`` deselects them), whether it asks for a fixture or marks itself."""
    for item in items:
        if REAL_DATA_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.realdata)


# --------------------------------------------------------------------------- small trained model
# A small, dropout-free tiny model: fast on 2 cores, and deterministic across process counts.
SMALL_TRAINING = [
    "model.preset=tiny",
    "model.overrides={clip.config.vision_cfg.image_size: 32, clip.config.text_cfg.layers: 1, "
    "dna.config.hidden_dropout_prob: 0.0, dna.config.num_hidden_layers: 1, fusion.dropout: 0.0}",
    "train.batch_size=16",
    "train.epochs=2",
    "train.lr=0.02",
    "train.eval_every_epochs=1",
    "train.log_every_steps=1",
    "data.num_workers=0",
    "data.max_val_specimens=24",
    "data.text_coarsen_prob=0.5",
    "train.precision=fp32",  # the same numbers on every CPU (auto is bf16 where it is native)
]


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory) -> Path:
    """A generated world of 200 specimens (3 orders, ~12 species), with a held-out species split."""
    from hir_edge.data.synth import SynthConfig, generate_dataset

    out = tmp_path_factory.mktemp("world") / "synth"
    config = SynthConfig.from_dict(
        {
            "seed": 1,
            "n_orders": 3,
            "families_per_order": [1, 2],
            "genera_per_family": [1, 2],
            "species_per_genus": [2, 2],
            "n_specimens": 200,
            "image_size": 48,
        }
    )
    generate_dataset(config, out, quiet=True)
    return out / "specimens.h5"


@pytest.fixture(scope="session")
def tiny_run(tiny_world, tmp_path_factory) -> Path:
    """A CLIBD-HiR-Fuse model trained for 3 epochs on ``tiny_world`` (its run folder)."""
    from hir_edge.train.config import load_config
    from hir_edge.train.trainer import Trainer

    run = tmp_path_factory.mktemp("runs") / "tiny-hir-fuse"
    cfg = load_config(None, [*SMALL_TRAINING, f"data.path={tiny_world}", "train.epochs=3"])
    Trainer(cfg, run, quiet=True).fit()
    return run


@pytest.fixture(scope="session")
def tiny_bundle(tiny_run, tiny_world, tmp_path_factory) -> Path:
    """An INT8 bundle exported from ``tiny_run`` (teacher only: no distillation, to stay fast)."""
    from hir_edge.export.pipeline import ExportOptions, export_bundle

    out = tmp_path_factory.mktemp("bundles") / "tiny.bundle"
    export_bundle(
        ExportOptions(
            checkpoint=tiny_run / "best",
            output=out,
            int8=True,
            calib_data=tiny_world,
            calib_samples=64,
            name="tiny-test",
            quiet=True,
        )
    )
    return out
