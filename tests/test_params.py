"""params.yaml validation: the committed file loads, every bad value gets its message."""

from __future__ import annotations

import copy
import hashlib
import json

import pytest
import yaml

from quantpipe.errors import ParamsError
from quantpipe.params import load_params, validate_params
from tests.conftest import REPO_ROOT

GOOD = {
    "data": {"seed": 42, "test_size": 0.2},
    "quantize": {
        "bits": [8, 16],
        "scheme": "symmetric",
        "granularity": "per-tensor",
        "standardize": True,
        "bias_correction": True,
        "rounding": "data-aware",
        "casts": ["float32", "float16", "bfloat16"],
    },
    "integer": {"bits": [8], "calibration": "percentile", "percentile": 99.99},
    "gate": {
        "q16": {"max_r2_drop": 0.002, "max_pred_rmse": 0.001},
        "q8": {"max_r2_drop": 0.002, "max_pred_rmse": 0.005},
        "q4": {"max_pred_rmse": 0.06},
        "q8i": {"max_pred_p99": 0.1},
    },
    "monitor": {
        "batch": "data/split/test.npz",
        "bins": 10,
        "psi_alert": 0.2,
        "ks_alert": 0.1,
        "missing_alert": 0.01,
    },
    "mnist": {
        "seed": 0,
        "train": {"channels": [16, 32], "epochs": 1, "batch_size": 32, "learning_rate": 0.002},
        "quantize": {
            "bits": [8, 16],
            "rounding": "data-aware",
            "bias_correction": True,
            "calibration": "percentile",
            "percentile": 99.99,
            "calibration_images": 1000,
        },
        "gate": {
            "max_params": 25000,
            "min_accuracy": 0.98,
            "q8": {"max_accuracy_drop": 0.003, "min_agreement": 0.995},
            "q16": {"max_accuracy_drop": 0.0005},
            "q4": {"max_accuracy_drop": 0.01},
        },
    },
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
    assert params.quantize.rounding == "data-aware"
    assert params.quantize.casts == ("float32", "float16", "bfloat16")
    assert params.integer.bits == (8,)
    assert params.gate.budget("q8") == {"max_r2_drop": 0.002, "max_pred_rmse": 0.005}
    assert params.gate.budget("q8i") == {"max_pred_p99": 0.1}
    assert params.gate.budget("float16") == {}


def test_empty_casts_integer_widths_and_gate_are_allowed():
    raw = with_value("quantize", "casts", [])
    raw["integer"]["bits"] = []
    raw["gate"] = {}
    params = validate_params(raw)
    assert params.quantize.casts == ()
    assert params.integer.bits == ()
    assert params.gate.budgets == ()


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
            r"^params.yaml: unknown key 'train'; allowed keys: data, quantize, integer, gate, "
            r"monitor, mnist$",
        ),
        ({"data": GOOD["data"]}, r"^params.yaml: missing key 'quantize'; add it"),
        (
            {**GOOD, "data": {"seed": 1}},
            r"^params.yaml: missing key 'data.test_size'",
        ),
        ([1, 2], r"^params.yaml: 'the top level' must be a mapping"),
        ({**GOOD, "data": 3}, r"^params.yaml: 'data' must be a mapping"),
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
            with_value("gate", "q8", {"max_r2_drop": -0.1}),
            r"^params.yaml: gate.q8.max_r2_drop = -0.1 is not allowed; use a number >= 0$",
        ),
        (
            with_value("gate", "q8", {"max_pred_rmse": 0}),
            r"^params.yaml: gate.q8.max_pred_rmse = 0 is not allowed; use a number > 0$",
        ),
        (with_value("gate", "q8", {"max_pred_p99": "small"}), r"max_pred_p99 = 'small' is not"),
        (
            with_value("gate", "q8", {"max_rmse": 0.1}),
            r"^params.yaml: unknown key 'gate.q8.max_rmse'; did you mean 'max_pred_rmse'\?$",
        ),
        (with_value("gate", "q8", {}), r"^params.yaml: gate.q8 is empty; give some of: max_r2"),
        (with_value("gate", "q8", 0.01), r"^params.yaml: 'gate.q8' must be a mapping"),
        (
            with_value("gate", "fp16", {"max_pred_rmse": 0.1}),
            r"^params.yaml: gate has key 'fp16'; use variant names such as q8, q8i, float16$",
        ),
        (
            with_value("quantize", "rounding", "stochastic"),
            r"^params.yaml: quantize.rounding = 'stochastic' is not allowed; use one of: "
            r"nearest, data-aware$",
        ),
        (
            with_value("quantize", "casts", ["float8"]),
            r"^params.yaml: quantize.casts\[0\] = 'float8' is not allowed; use a list of "
            r"distinct values from: float32, float16, bfloat16 \(may be empty: \[\]\)$",
        ),
        (with_value("quantize", "casts", "float16"), r"quantize.casts = 'float16' is not allowed"),
        (
            with_value("quantize", "casts", ["float16", "float16"]),
            r"quantize.casts = \['float16', 'float16'\] is not allowed",
        ),
        (
            with_value("integer", "bits", [1]),
            r"^params.yaml: integer.bits\[0\] = 1 is not allowed; use a list of distinct "
            r"integers from 2 to 16 \(may be empty: \[\]\)$",
        ),
        (
            with_value("integer", "calibration", "mse"),
            r"integer.calibration = 'mse' is not allowed; use one of: minmax, percentile$",
        ),
        (
            with_value("integer", "percentile", 50),
            r"^params.yaml: integer.percentile = 50 is not allowed; use a number above 50 and "
            r"at most 100, e.g. 99.99$",
        ),
        (with_value("integer", "percentile", 100.5), r"integer.percentile = 100.5 is not"),
        (with_value("integer", "seed", 1), r"unknown key 'integer.seed'"),
        (
            with_value("monitor", "batch", "new.parquet"),
            r"^params.yaml: monitor.batch = 'new.parquet' is not allowed; use the path of a "
            r"\.csv or \.npz file",
        ),
        (with_value("monitor", "bins", 1), r"monitor.bins = 1 is not allowed; use an integer"),
        (with_value("monitor", "psi_alert", 0), r"monitor.psi_alert = 0 is not allowed; use a"),
        (with_value("monitor", "ks_alert", -1), r"monitor.ks_alert = -1 is not allowed"),
        (with_value("monitor", "missing_alert", "x"), r"monitor.missing_alert = 'x' is not"),
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
        node = params
        for part in key.split("."):
            assert isinstance(node, dict), key
            assert part in node, key
            node = node[part]


# -- the file itself: read strictly ------------------------------------------------------------


def _committed_with(tmp_path, old: str, new: str):
    text = (REPO_ROOT / "params.yaml").read_text()
    assert old in text
    path = tmp_path / "params.yaml"
    path.write_text(text.replace(old, new, 1))
    return path


def test_a_key_given_twice_is_refused_with_its_line(tmp_path):
    path = _committed_with(tmp_path, "  seed: 42 ", "  seed: 42\n  seed: 7 ")
    line = next(i for i, t in enumerate(path.read_text().splitlines(), 1) if "seed: 7" in t)
    with pytest.raises(
        ParamsError, match=rf"params.yaml: not valid YAML at line {line}: the key 'seed' is given"
    ):
        load_params(path)


def test_an_alias_is_refused_before_it_can_expand(tmp_path):
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    )
    path = tmp_path / "params.yaml"
    path.write_text(bomb)
    with pytest.raises(ParamsError, match=r"at line 2: an alias \(\*a\) is not allowed; fix it$"):
        load_params(path)


def test_a_file_that_is_not_utf8_is_one_line(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_bytes(b"data:\n  seed: 4\xe92\n")
    with pytest.raises(ParamsError, match=r"params.yaml: byte 15 is not UTF-8 text; save the"):
        load_params(path)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("  seed: 42 ", "  seed: 42.0 ", r"data.seed = 42.0 is not allowed"),
        ("  standardize: true ", "  standardize: 1 ", r"standardize = 1 is not allowed"),
    ],
)
def test_values_dvc_finds_equal_are_still_refused(tmp_path, old, new, message):
    """DVC compares params by value (42.0 == 42, 1 == true), so only the params stage's dep
    on the file's bytes runs this check in `dvc repro`; dvc.yaml must keep that dep."""
    with pytest.raises(ParamsError, match=message):
        load_params(_committed_with(tmp_path, old, new))
    stages = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]
    assert "params.yaml" in stages["params"]["deps"]


def test_a_huge_value_gives_a_short_line(tmp_path):
    huge = f"  scheme: {[list(range(50))] * 50} "
    path = _committed_with(tmp_path, "  scheme: symmetric ", huge)
    with pytest.raises(ParamsError) as info:
        load_params(path)
    assert len(str(info.value)) < 200
    assert str(info.value).startswith("params.yaml: quantize.scheme = [[0, 1, 2, 3, 4, 5, ...], [")
    assert str(info.value).endswith(" ... is not allowed; use one of: symmetric, asymmetric")


def test_the_params_stage_refuses_a_monitor_batch_nobody_has_or_writes(tmp_path, capsys):
    from stages import params as stage

    path = _committed_with(tmp_path, "batch: data/split/test.npz", "batch: data/missing.csv")
    stamp = tmp_path / "params.valid.json"
    argv = ["--params", str(path), "--dvcfile", str(REPO_ROOT / "dvc.yaml"), "--stamp", str(stamp)]
    assert stage.main([*argv, "-q"]) == 1
    assert capsys.readouterr().err == (
        "error: params.yaml: monitor.batch = 'data/missing.csv': no such file, and no stage "
        "writes it; give the path of an existing .csv or .npz\n"
    )
    default = _committed_with(tmp_path, "batch: data/split/test.npz", "batch: data/split/test.npz")
    argv[1] = str(default)
    assert not stamp.exists()  # an invalid file is not stamped
    assert stage.main([*argv, "-q"]) == 0  # not there yet, perhaps, but the split stage writes it
    digest = hashlib.sha256(default.read_bytes()).hexdigest()
    assert json.loads(stamp.read_text()) == {"sha256": digest, "valid": True}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("? [a, b]\n: 1\n", r"at line 1: a key must be a word or a number; fix it$"),
        ("data:\n  seed: " + "1" * 5000 + "\n", r"a value YAML cannot read \(Exceeds the limit"),
        ("data:\n  seed: 2020-13-45\n", r"a value YAML cannot read \(month must be in 1..12\)"),
    ],
)
def test_what_pyyaml_cannot_build_is_one_line(tmp_path, text, message):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ParamsError, match=message):
        load_params(path)


def test_a_params_path_that_is_a_folder_is_one_line(tmp_path):
    (tmp_path / "params.yaml").mkdir()
    with pytest.raises(ParamsError, match=r"params.yaml: cannot read \(Is a directory\)$"):
        load_params(tmp_path / "params.yaml")


@pytest.mark.parametrize("variant", ["q08", "q1", "q17", "fp32"])
def test_a_digits_budget_for_no_variant_is_refused(variant):
    raw = copy.deepcopy(GOOD)
    raw["mnist"]["gate"][variant] = {"max_accuracy_drop": 0.01}
    with pytest.raises(ParamsError, match=rf"mnist.gate has key '{variant}'; use max_params"):
        validate_params(raw)
