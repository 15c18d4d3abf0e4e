"""The command line parses without loading the training stack, and says what it cannot do."""

from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner

from hir_edge.cli import main


def test_help_lists_every_command():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for name in ("identify", "info", "bench", "train", "eval", "export", "data", "degrade"):
        assert name in result.output


def test_unknown_command_suggests_the_close_one():
    result = CliRunner().invoke(main, ["trian"])
    assert result.exit_code == 2
    assert "No such command 'trian'. Did you mean 'train'?" in result.output


def test_edge_commands_do_not_import_torch(tmp_path):
    # the commands a field kit runs, run for real (identify is checked in test_identify)
    out = tmp_path / "noisy.fa"
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from hir_edge.cli import main\n"
        f"args = ['degrade', 'dna', 'examples/reads.fa', '-o', {str(out)!r}]\n"
        "r = CliRunner().invoke(main, args)\n"
        "assert r.exit_code == 0, r.output\n"
        "r = CliRunner().invoke(main, ['info', '--json'])\n"
        "assert r.exit_code == 0 and '\"backends_here\"' in r.output, r.output\n"
        "names = ('torch', 'open_clip', 'transformers', 'h5py')\n"
        "heavy = sorted(m for m in names if m in sys.modules)\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "HEAVY="
    assert out.read_text().count(">") == 4  # the four example reads, degraded


def test_version():
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0 and "hir-edge, version" in result.output
