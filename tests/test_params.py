"""params.yaml validation: the committed file loads, every bad value gets its message."""

from __future__ import annotations

import copy

import pytest
import yaml

from stages.errors import ParamsError
from stages.params import load_params, validate_params
from tests.conftest import REPO_ROOT

GOOD = {
    "data": {"seed": 42, "test_size": 0.2},
    "quantize": {
        "bits": [8, 16],
        "scheme": "symmetric",
        "granularity": "per-tensor",
        "standardize": True,
        "bias_correction": True,
    },
    "gate": {"max_r2_drop": 0.002, "max_pred_rmse": {8: 0.01, 16: 0.001}},
}


def with_value(section, key, value):
    raw = copy.deepcopy(GOOD)
    raw[section][key] = value
    return raw


def test_committed_params_file_is_valid_and_has_the_documented_defaults():
    params = load_params(REPO_ROOT / "params.yaml")
    assert params.data.seed == 42
    assert params.data.test_size == 0.2
    assert params.quantize.bits == (8, 16)
    assert params.quantize.symmetric
    assert not params.quantize.per_channel
    assert params.quantize.standardize
    assert params.quantize.bias_correction
    assert params.gate.max_r2_drop == 0.002
    assert params.gate.rmse_budget(8) == 0.01
    assert params.gate.rmse_budget(16) == 0.001
    assert params.gate.rmse_budget(4) is None


def test_gate_budget_keys_may_be_digit_strings():
    """`dvc exp run -S` may write the widths as strings."""
    params = validate_params(with_value("gate", "max_pred_rmse", {"4": 0.2, 8: 0.01}))
    assert params.gate.max_pred_rmse == ((4, 0.2), (8, 0.01))


def test_params_are_frozen():
    params = validate_params(GOOD)
    with pytest.raises(AttributeError):
        params.data.seed = 1


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            with_value("quantize", "bitz", [4]),
            r"^params.yaml: unknown key 'quantize.bitz'; did you mean 'bits'\?$",
        ),
        (
            with_value("data", "shuffle", True),
            r"^params.yaml: unknown key 'data.shuffle'; allowed keys: seed, test_size$",
        ),
        (
            {**GOOD, "train": {}},
            r"^params.yaml: unknown key 'train'; allowed keys: data, quantize, gate$",
        ),
        ({"data": GOOD["data"]}, r"^params.yaml: missing key 'quantize'; add it"),
        (
            {"data": {"seed": 1}, "quantize": GOOD["quantize"], "gate": GOOD["gate"]},
            r"^params.yaml: missing key 'data.test_size'",
        ),
        ([1, 2], r"^params.yaml: 'the top level' must be a mapping"),
        ({"data": 3, "quantize": {}, "gate": {}}, r"^params.yaml: 'data' must be a mapping"),
        (
            with_value("quantize", "bits", []),
            r"^params.yaml: quantize.bits = \[\] is not allowed; use a non-empty list of "
            r"distinct integers from 2 to 16, e.g. \[8, 16\]$",
        ),
        (with_value("quantize", "bits", 8), r"quantize.bits = 8 is not allowed; use a non-empty"),
        (with_value("quantize", "bits", [8, 1]), r"quantize.bits\[1\] = 1 is not allowed"),
        (with_value("quantize", "bits", [17]), r"quantize.bits\[0\] = 17 is not allowed"),
        (with_value("quantize", "bits", [8.0]), r"quantize.bits\[0\] = 8.0 is not allowed"),
        (with_value("quantize", "bits", ["8"]), r"quantize.bits\[0\] = '8' is not allowed"),
        (with_value("quantize", "bits", [True]), r"quantize.bits\[0\] = True is not allowed"),
        (with_value("quantize", "bits", [8, 8]), r"quantize.bits = \[8, 8\] repeats a width"),
        (
            with_value("data", "test_size", 0.0),
            r"^params.yaml: data.test_size = 0.0 is not allowed; use a fraction strictly "
            r"between 0 and 1, e.g. 0.2$",
        ),
        (with_value("data", "test_size", 1.0), r"data.test_size = 1.0 is not allowed"),
        (with_value("data", "test_size", 1), r"data.test_size = 1 is not allowed"),
        (with_value("data", "test_size", float("nan")), r"data.test_size = nan is not allowed"),
        (with_value("data", "test_size", "0.2"), r"data.test_size = '0.2' is not allowed"),
        (
            with_value("data", "seed", 4.2),
            r"^params.yaml: data.seed = 4.2 is not allowed; use an integer from 0 to 2\*\*32 - 1$",
        ),
        (with_value("data", "seed", -1), r"data.seed = -1 is not allowed"),
        (with_value("data", "seed", 2**32), r"data.seed = 4294967296 is not allowed"),
        (with_value("data", "seed", False), r"data.seed = False is not allowed"),
        (
            with_value("quantize", "scheme", "affine"),
            r"^params.yaml: quantize.scheme = 'affine' is not allowed; use one of: "
            r"symmetric, asymmetric$",
        ),
        (
            with_value("quantize", "granularity", "per-row"),
            r"quantize.granularity = 'per-row' is not allowed; use one of: per-tensor, "
            r"per-channel$",
        ),
        (
            with_value("quantize", "standardize", "yes"),
            r"^params.yaml: quantize.standardize = 'yes' is not allowed; use true or false$",
        ),
        (with_value("quantize", "bias_correction", 1), r"quantize.bias_correction = 1 is not"),
        (
            with_value("gate", "max_r2_drop", -0.1),
            r"^params.yaml: gate.max_r2_drop = -0.1 is not allowed; use a number >= 0$",
        ),
        (with_value("gate", "max_r2_drop", "small"), r"gate.max_r2_drop = 'small' is not"),
        (
            with_value("gate", "max_pred_rmse", {1: 0.5}),
            r"^params.yaml: gate.max_pred_rmse has key 1; use bit widths from 2 to 16, e.g. 8",
        ),
        (
            with_value("gate", "max_pred_rmse", {8: 0}),
            r"^params.yaml: gate.max_pred_rmse.8 = 0 is not allowed; use a number > 0$",
        ),
        (with_value("gate", "max_pred_rmse", [0.01]), r"'gate.max_pred_rmse' must be a mapping"),
        (with_value("gate", "max_rmse", 1), r"unknown key 'gate.max_rmse'; did you mean"),
    ],
)
def test_bad_params_name_the_key_and_the_allowed_values(raw, message):
    with pytest.raises(ParamsError, match=message):
        validate_params(raw)


def test_every_width_from_2_to_16_is_accepted():
    assert validate_params(with_value("quantize", "bits", list(range(2, 17)))).quantize.bits == (
        tuple(range(2, 17))
    )


def test_missing_file(tmp_path):
    with pytest.raises(ParamsError, match=r"params.yaml: not found; run from the repository root"):
        load_params(tmp_path / "params.yaml")


def test_invalid_yaml_names_the_line(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("data:\n  seed: [1\n")
    with pytest.raises(ParamsError, match=r"params.yaml: not valid YAML at line \d+; fix"):
        load_params(path)


def test_yaml_round_trip_of_the_good_params(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(GOOD))
    assert load_params(path) == validate_params(GOOD)


def test_dvc_yaml_lists_only_keys_that_exist():
    """Every params key a stage lists in dvc.yaml is a real key of params.yaml."""
    dvc = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    listed = [
        key
        for stage in dvc["stages"].values()
        for key in stage.get("params", [])
        if isinstance(key, str)
    ]
    assert listed
    for key in listed:
        section, _, name = key.partition(".")
        assert name in params[section], key
