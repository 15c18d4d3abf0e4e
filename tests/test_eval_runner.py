"""`hir-edge eval` end to end on a small trained model: every protocol runs and reports."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from hir_edge.cli import main
from hir_edge.evaluation.runner import EvalOptions, Evaluator

pytestmark = pytest.mark.slow


def test_evaluator_produces_every_section(tiny_run, tiny_world, tmp_path):
    options = EvalOptions(preset="paper", seed=3, cache_dir=str(tmp_path / "cache"))
    results = Evaluator(tiny_run / "best", tiny_world, options).run()
    paper = results["paper"]
    assert set(paper) == {"IT", "DT", "I+DT Avg", "I+DT Fusion"}
    assert set(paper["IT"]) == {"clean", "noisy_i"} and set(paper["DT"]) == {"clean", "noisy_d"}
    for conds in paper.values():
        for res in conds.values():
            acc = res["accuracy"]
            for rank in ("order", "family", "genus", "species", "global"):
                assert 0.0 <= acc[rank]["top1"] <= acc[rank]["top5"] <= 100.0
            # Global needs every labelled rank right: never above the best rank's top-1
            assert acc["global"]["top1"] <= max(
                acc[r]["top1"] for r in ("order", "family", "genus", "species")
            )
    assert results["settings"]["degradation_line"].startswith("degradation preset=paper")
    cal = results["calibration"]
    assert len(cal["temperatures"]) == 4 and all(t > 0 for t in cal["temperatures"])
    assert set(results["clibd"]) == {"I→I", "D→D", "I→D"}
    # The cache makes the second run reuse the embeddings (identical numbers).
    again = Evaluator(tiny_run / "best", tiny_world, options).run()
    assert again["paper"] == paper
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 5  # 3 test passes + val + keys


def test_noise_seed_changes_only_noisy_conditions(tiny_run, tiny_world):
    a = Evaluator(
        tiny_run / "best", tiny_world, EvalOptions(seed=1, val_split=None, keys_split=None)
    ).run()
    b = Evaluator(
        tiny_run / "best", tiny_world, EvalOptions(seed=2, val_split=None, keys_split=None)
    ).run()
    assert a["paper"]["DT"]["clean"] == b["paper"]["DT"]["clean"]
    assert a["paper"]["IT"]["noisy_i"] == b["paper"]["IT"]["noisy_i"]  # blur is deterministic


def test_eval_command_writes_report(tiny_run, tiny_world, tmp_path):
    out = tmp_path / "report"
    args = [
        "eval",
        "--checkpoint",
        str(tiny_run / "best"),
        "--data",
        str(tiny_world),
        "-o",
        str(out),
        "-q",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    text = (out / "report.md").read_text()
    assert "| Setting | Method | Cond. | Order | Family | Genus | Species | Global |" in text
    assert "degradation preset=paper p_sub=0.03" in text
    rows = (out / "results.csv").read_text().splitlines()
    assert rows[0] == "method,setting,condition,rank,metric,value,n"
    assert json.loads((out / "results.json").read_text())["settings"]["split"] == "test"
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 2 and "already exists; pass --force" in again.output
    (out / "report.md").write_text("old")
    forced = CliRunner().invoke(main, [*args, "--force"])  # the report folder is replaced
    assert forced.exit_code == 0, forced.output
    assert "| Setting | Method |" in (out / "report.md").read_text()
    a_file = tmp_path / "report.txt"
    a_file.write_text("mine")
    clash = CliRunner().invoke(main, [*args[:5], "-o", str(a_file), "--force", "-q"])
    assert clash.exit_code == 2 and "is a file" in clash.output
    assert a_file.read_text() == "mine"
    bad = CliRunner().invoke(main, [*args[:5], "--preset", "papr", "-o", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "Did you mean 'paper'?" in bad.output


def test_identify_and_bench_open_a_training_checkpoint_in_torch(tiny_run, tiny_world, tmp_path):
    """A training checkpoint runs in torch (identify and bench share open_for_inference); an
    asked-for backend or precision that it cannot honour gets one note, not silence."""
    from hir_edge.data.hdf5 import SpecimenStore

    photos = tmp_path / "photos"
    photos.mkdir()
    with SpecimenStore(tiny_world, "test") as store:
        for i in range(3):
            (photos / f"p{i}.jpg").write_bytes(store.image_bytes(i))
    best = tiny_run / "best"
    args = ["identify", "--bundle", str(best), "--image", str(photos), "--format", "json"]
    asked = CliRunner().invoke(main, [*args, "--precision", "fp32"])
    assert asked.exit_code == 0, asked.output
    note = (
        f"note: {best} is a training checkpoint, run with torch at full precision; "
        "--backend and --precision apply to exported bundles only"
    )
    assert asked.stderr.count(note) == 1
    rows = json.loads(asked.stdout)
    assert sorted(r["id"] for r in rows) == ["p0", "p1", "p2"]
    plain = CliRunner().invoke(main, args)
    assert plain.exit_code == 0 and note not in plain.stderr
    assert json.loads(plain.stdout) == rows  # the same torch model either way
    bench = CliRunner().invoke(main, ["bench", str(best), "--batch", "2", "--repeat", "1"])
    assert bench.exit_code == 0, bench.output
    assert bench.stdout.splitlines()[1].startswith("torch")
