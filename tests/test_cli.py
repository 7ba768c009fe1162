"""The command-line boundary: --help everywhere, one-line errors, nothing written on failure."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from quantpipe import cli
from quantpipe.modelfile import quantized_model_arrays, save_model
from quantpipe.quant.linear import quantize_linear
from tests.conftest import REPO_ROOT


def run(args, cwd):
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def files_in(directory: Path) -> set[str]:
    return {str(p.relative_to(directory)) for p in directory.rglob("*")}


#: The DVC entry points, one module each under stages/.
STAGES = sorted(p.stem for p in (REPO_ROOT / "stages").glob("*.py") if p.stem != "__init__")


def run_main(stage, argv, capsys):
    """Run a stage's main() in-process; returns (status, stderr)."""
    status = importlib.import_module(f"stages.{stage}").main(argv)
    return status, capsys.readouterr().err


def test_every_dvc_yaml_stage_has_its_module():
    pipeline = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]
    assert sorted(pipeline) == STAGES


@pytest.mark.parametrize("stage", STAGES)
def test_every_stage_has_help(stage, capsys):
    with pytest.raises(SystemExit) as exit_info:
        importlib.import_module(f"stages.{stage}").main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: python -m stages.{stage}")
    assert "--params" in out


@pytest.mark.parametrize("command", cli.COMMANDS)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: quantpipe {command}")
    assert any(flag in out for flag in ("--params", "--models-dir", "--remote"))


def test_a_stage_as_a_process_exits_1_with_one_line_and_no_traceback(tmp_path):
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    params["quantize"]["bits"] = [8, 1]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = run(["-m", "stages.quantize"], tmp_path)
    assert result.returncode == 1
    assert result.stderr == (
        "error: params.yaml: quantize.bits[1] = 1 is not allowed; use a non-empty list of "
        "distinct integers from 2 to 16, e.g. [8, 16]\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]


def test_quantpipe_command_lists_its_commands_and_refuses_others(capsys):
    assert cli.main(["--help"]) == 0
    assert "usage: quantpipe {predict,serve,gate,monitor,share}" in capsys.readouterr().out
    assert cli.main(["bogus"]) == 2
    assert capsys.readouterr().err == (
        "error: unknown command 'bogus'; choose one of: predict, serve, gate, monitor, share\n"
    )
    assert cli.main(["quantize"]) == 2  # a pipeline stage is not a command
    assert "unknown command 'quantize'" in capsys.readouterr().err


@pytest.mark.parametrize("stage", STAGES)
def test_misspelt_key_stops_every_stage_with_one_line(stage, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    params["quantize"]["bitz"] = [4]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    before = files_in(tmp_path)
    status, err = run_main(stage, [], capsys)
    assert status == 1
    assert err == "error: params.yaml: unknown key 'quantize.bitz'; did you mean 'bits'?\n"
    assert files_in(tmp_path) == before


@pytest.mark.parametrize(
    ("stage", "message"),
    [
        ("split", "error: data/raw/california_housing.npz: not found; run `dvc repro`"),
        ("train", "error: data/split/train.npz: not found; run `dvc repro`"),
        ("quantize", "error: models/fp64.npz: not found; run `dvc repro`"),
        ("evaluate", "error: data/split/test.npz: not found; run `dvc repro`"),
        ("mnist_train", "error: data/mnist/digits.npz: not found; run `dvc repro`"),
        ("mnist_quantize", "error: models/mnist/fp32.npz: not found; run `dvc repro`"),
        ("mnist_evaluate", "error: data/mnist/digits.npz: not found; run `dvc repro`"),
        ("mnist_latency", "error: data/mnist/digits.npz: not found; run `dvc repro`"),
    ],
)
def test_missing_inputs_give_one_line(stage, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text((REPO_ROOT / "params.yaml").read_text())
    status, err = run_main(stage, [], capsys)
    assert status == 1
    assert err.startswith(message)
    assert err.count("\n") == 1


def test_quantize_refuses_a_quantized_model_as_input(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text((REPO_ROOT / "params.yaml").read_text())
    q = quantize_linear(np.ones(8), 0.0, np.zeros(8), np.ones(8), bits=8)
    names = tuple(f"f{i}" for i in range(8))
    save_model("q8.npz", quantized_model_arrays(q, "q8", names, {}, (np.zeros(8), np.ones(8)), {}))
    status, err = run_main("quantize", ["--model", "q8.npz"], capsys)
    assert status == 1
    assert err == ("error: q8.npz is a quantized model, not the float model (models/fp64.npz)\n")
