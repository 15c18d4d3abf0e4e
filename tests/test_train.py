"""Training end to end on a small generated world: variants, resume, DDP parity, run folders."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from hir_edge.errors import ConfigError
from hir_edge.io import OutputExistsError
from hir_edge.train.config import load_config
from hir_edge.train.trainer import Trainer
from tests.conftest import SMALL_TRAINING as SMALL

pytestmark = pytest.mark.slow


def config_for(world: Path, *extra: str, variant: str = "hir-fuse"):
    return load_config(None, [*SMALL, f"data.path={world}", f"loss.variant={variant}", *extra])


def losses(run: Path) -> list[float]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if "loss" in r]


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def last_checkpoint(run: Path) -> Path:
    return (
        run / "checkpoints" / json.loads((run / "checkpoints" / "latest.json").read_text())["path"]
    )


# --------------------------------------------------------------------------- config
def test_unknown_keys_and_bad_values_are_named(tmp_path):
    with pytest.raises(
        ConfigError,
        match=r"config.train: unknown key 'epoch'; did you mean 'epochs'\? \(allowed: .*epochs",
    ):
        load_config(None, ["data.path=x.h5", "train.epoch=3"])
    with pytest.raises(
        ConfigError, match=r"loss.variant: 'hir2'; choose one of clibd, hir, hir-fuse"
    ):
        load_config(None, ["data.path=x.h5", "loss.variant=hir2"])
    with pytest.raises(ConfigError, match=r"config.train.epochs: expected an integer, got 'three'"):
        load_config(None, ["data.path=x.h5", "train.epochs=three"])
    with pytest.raises(ConfigError, match=r"--set 'train.epochs': expected key=value"):
        load_config(None, ["train.epochs"])
    with pytest.raises(ConfigError, match=r"fusion-only trains a head on frozen encoders"):
        load_config(None, ["data.path=x.h5", "train.mode=fusion-only"])
    with pytest.raises(
        ConfigError,
        match=r"^loss.prompt_label_smoothing_scope: 'taxon'; choose 'rank' or 'candidate'$",
    ):
        load_config(None, ["data.path=x.h5", "loss.prompt_label_smoothing_scope=taxon"])
    recipe = tmp_path / "r.yaml"
    recipe.write_text("train:\n  epochs: 3\n  batch_size: 8\ndata:\n  path: d.h5\n")
    cfg = load_config(recipe, ["train.epochs=5", "train.lr=1e-4"])
    assert (cfg.name, cfg.train.epochs, cfg.train.batch_size, cfg.train.lr) == ("r", 5, 8, 1e-4)


def test_shipped_recipes_load():
    root = Path(__file__).resolve().parents[1] / "recipes"
    names = sorted(p.name for p in root.glob("*.yaml"))
    assert {"tiny-clibd.yaml", "tiny-hir.yaml", "tiny-hir-fuse.yaml"} <= set(names)
    for path in root.glob("*.yaml"):
        cfg = load_config(path)
        assert cfg.loss.variant in ("clibd", "hir", "hir-fuse")
    weights_of = {v: load_config(root / f"tiny-{v}.yaml") for v in ("clibd", "hir", "hir-fuse")}
    assert (weights_of["clibd"].hir_weight, weights_of["clibd"].fusion_weight) == (0.0, 0.0)
    # tiny-hir's λ is the one benchmarks/hir_sweep.py chose on the validation split
    chosen = json.loads((root.parent / "benchmarks/results/hir_sweep.json").read_text())["choice"]
    hir = weights_of["hir"]
    assert (hir.hir_weight, hir.fusion_weight) == (chosen["hir_weight"], 0.0)
    assert hir.loss.hir_temperature == chosen["hir_temperature"]
    assert (weights_of["hir-fuse"].hir_weight, weights_of["hir-fuse"].fusion_weight) == (1.0, 1.0)


# --------------------------------------------------------------------------- training
@pytest.mark.parametrize("variant", ["clibd", "hir", "hir-fuse"])
def test_each_variant_trains_and_its_loss_falls(tiny_world, tmp_path, variant):
    run = tmp_path / variant
    extra = [] if variant == "hir-fuse" else ["model.overrides.fusion.enabled=false"]
    summary = Trainer(
        config_for(tiny_world, "train.epochs=3", *extra, variant=variant), run, quiet=True
    ).fit()
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "loss" in r]
    assert summary.last_epoch_loss < summary.first_epoch_loss
    assert ("hir" in steps[0]) == (variant != "clibd")
    assert ("fusion" in steps[0]) == (variant == "hir-fuse")
    assert sum(1 for r in rows if "val" in r) == 3
    assert (run / "best" / "model.safetensors").is_file() and (
        run / "best" / "taxonomy.json"
    ).is_file()
    assert summary.samples_per_second > 0 and summary.peak_rss_mb > 0


def test_precision_auto_is_bf16_only_where_native(tiny_world, tmp_path, monkeypatch):
    """``precision: auto`` trains in bf16 autocast where the device runs it natively and in
    fp32 elsewhere; the summary says which, and the two give different numbers."""
    import hir_edge.train.distributed as distributed

    for native, said in ((True, "bf16 autocast"), (False, "fp32")):
        monkeypatch.setattr(distributed, "native_bf16", lambda device, native=native: native)
        run = tmp_path / said.split()[0]
        cfg = config_for(tiny_world, "train.precision=auto", "train.epochs=1")
        assert Trainer(cfg, run, quiet=True).fit().precision == said
        assert json.loads((run / "summary.json").read_text())["precision"] == said
    assert losses(tmp_path / "bf16")[0] == pytest.approx(losses(tmp_path / "fp32")[0], rel=0.05)
    assert losses(tmp_path / "bf16") != losses(tmp_path / "fp32")


def test_resume_after_an_epoch_gives_the_same_weights(tiny_world, tmp_path):
    straight = tmp_path / "straight"
    Trainer(config_for(tiny_world), straight, quiet=True).fit()
    split = tmp_path / "split"
    Trainer(config_for(tiny_world), split, quiet=True).fit(stop_after_epochs=1)
    Trainer(config_for(tiny_world), split, resume=True, quiet=True).fit()
    a, b = weights(last_checkpoint(straight)), weights(last_checkpoint(split))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert losses(straight) == losses(split)


def test_resume_after_a_crash_mid_epoch(tiny_world, tmp_path, monkeypatch):
    straight = tmp_path / "straight"
    extra = ["train.checkpoint_every_steps=4"]
    Trainer(config_for(tiny_world, *extra), straight, quiet=True).fit()

    crashed = tmp_path / "crashed"
    real_step = torch.optim.AdamW.step
    calls = {"n": 0}

    def crash_at_step_7(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 7:
            raise KeyboardInterrupt
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", crash_at_step_7)
    with pytest.raises(KeyboardInterrupt):
        Trainer(config_for(tiny_world, *extra), crashed, quiet=True).fit()
    monkeypatch.setattr(torch.optim.AdamW, "step", real_step)
    assert last_checkpoint(crashed).name == "step-00000004"
    Trainer(config_for(tiny_world, *extra), crashed, resume=True, quiet=True).fit()
    a, b = weights(last_checkpoint(straight)), weights(last_checkpoint(crashed))
    assert all(torch.equal(a[k], b[k]) for k in a)
    # steps 5 and 6 ran twice, but each is logged once, and the summary covers the whole run
    rows = [json.loads(line) for line in (crashed / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in rows if "loss" in r]
    assert steps == sorted(set(steps)) and losses(crashed) == losses(straight)
    whole = json.loads((straight / "summary.json").read_text())
    resumed = json.loads((crashed / "summary.json").read_text())
    assert (resumed["steps"], resumed["samples"]) == (whole["steps"], whole["samples"])
    assert resumed["first_epoch_loss"] == whole["first_epoch_loss"]


def test_run_folder_is_never_clobbered(tiny_world, tmp_path):
    run = tmp_path / "run"
    Trainer(config_for(tiny_world, "train.epochs=1"), run, quiet=True).fit()
    with pytest.raises(OutputExistsError, match=r"run already exists; pass --force"):
        Trainer(config_for(tiny_world, "train.epochs=1"), run, quiet=True).fit()
    with pytest.raises(ConfigError, match=r"no checkpoint to resume from"):
        Trainer(
            config_for(tiny_world, "train.epochs=1"), tmp_path / "empty", resume=True, quiet=True
        ).fit()
    first = len(losses(run))
    Trainer(config_for(tiny_world, "train.epochs=1"), run, force=True, quiet=True).fit()
    assert len(losses(run)) == first  # the old metrics were replaced, not appended to


def test_fusion_only_trains_just_the_head(tiny_world, tmp_path):
    base = tmp_path / "base"
    Trainer(config_for(tiny_world, "train.epochs=1"), base, quiet=True).fit()
    post = tmp_path / "post"
    cfg = config_for(
        tiny_world,
        "train.epochs=1",
        "train.mode=fusion-only",
        f"train.init_from={base / 'best'}",
        "model.overrides={}",
    )
    Trainer(cfg, post, quiet=True).fit()
    before, after = weights(base / "best"), weights(last_checkpoint(post))
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("fusion.") for k in changed)


def test_train_command_prints_a_summary(tiny_world, tmp_path):
    from hir_edge.cli import main

    args = ["train", "-o", str(tmp_path / "cli")]
    for item in [*SMALL, f"data.path={tiny_world}", "train.epochs=1"]:
        args += ["--set", item]
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: cli-test\n")
    result = CliRunner().invoke(main, [*args, "--config", str(recipe)])
    assert result.exit_code == 0, result.output
    assert "trained" in result.output and "best val metric" in result.output


# --------------------------------------------------------------------------- DDP
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ddp_run(rank: int, world_size: int, port: int, world: str, run: str, steps: int) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world_size),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    # Three epochs capped at one epoch's steps: the same schedule as the single run, and the
    # run must stop at the cap on every rank (rank 0's broadcast state must not go stale).
    cfg = config_for(
        Path(world), "train.batch_size=8", "train.epochs=3", f"train.max_steps={steps}"
    )
    Trainer(cfg, run, quiet=True).fit()


def test_two_process_gloo_ddp_matches_one_process(tiny_world, tmp_path):
    """Same global batch (1 × 16 vs 2 × 8): the same loss trajectory, within float tolerance."""
    import torch.multiprocessing as mp

    single = tmp_path / "single"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        Trainer(config_for(tiny_world, "train.epochs=1"), single, quiet=True).fit()
    finally:
        torch.set_num_threads(threads)
    ddp = tmp_path / "ddp"
    steps = json.loads((single / "summary.json").read_text())["steps"]
    mp.spawn(
        _ddp_run, args=(2, _free_port(), str(tiny_world), str(ddp), steps), nprocs=2, join=True
    )
    a, b = losses(single), losses(ddp)
    done = json.loads((ddp / "summary.json").read_text())
    assert (done["steps"], done["epochs_done"], done["world_size"]) == (steps, 1, 2)
    assert (ddp / "best" / "model.safetensors").is_file()
    assert len(a) == len(b) > 5
    assert a == pytest.approx(b, rel=1e-4, abs=1e-4)
