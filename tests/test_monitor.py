"""Drift monitoring: the math, the command's errors, and realistic scenarios on the real data."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from numpy.testing import assert_allclose
from scipy.stats import ks_2samp

from quantpipe import monitoring as monitor
from quantpipe.data import FEATURE_NAMES, split_dataset
from quantpipe.drift import (
    bin_shares,
    build_reference,
    feature_drift,
    ks_two_sample,
    load_reference,
    psi,
    save_reference,
)
from quantpipe.errors import ModelFileError
from quantpipe.params import MonitorParams
from quantpipe.registry import ModelRegistry
from quantpipe.serve.telemetry import DriftWindow
from quantpipe.source import fetch_dataset
from tests.conftest import REPO_ROOT
from tests.models import rows, write_models

PARAMS = MonitorParams()


def test_psi_known_answers():
    assert psi([0.5, 0.5], [0.5, 0.5]) == 0.0
    # (0.25 - 0.5) ln(0.5) + (0.75 - 0.5) ln(1.5)
    assert psi([0.5, 0.5], [0.25, 0.75]) == pytest.approx(0.25 * np.log(2) + 0.25 * np.log(1.5))
    assert np.isfinite(psi([0.5, 0.5], [0.0, 1.0]))  # an empty bin: large, finite


def test_bin_shares_known_answer_and_ignores_missing():
    assert_allclose(
        bin_shares(np.array([0.0, 1.0, 1.5, 3.0, np.nan]), np.array([1.0, 2.0])), [0.25, 0.5, 0.25]
    )


def test_reference_bins_are_training_deciles():
    X = np.random.default_rng(0).normal(size=(10_000, 2))
    ref = build_reference(X, ("a", "b"), bins=10)
    assert_allclose(ref.expected, 0.1, atol=1e-3)
    with pytest.raises(ValueError, match="bins must be at least 2, got 1"):
        build_reference(X, ("a", "b"), bins=1)
    with pytest.raises(ValueError, match=r"X must have shape \(n, 3\)"):
        build_reference(X, ("a", "b", "c"))


@given(
    arrays(np.float64, st.integers(1, 60), elements=st.integers(-5, 5).map(float)),
    arrays(np.float64, st.integers(1, 60), elements=st.floats(-6, 6, width=64)),
)
@pytest.mark.filterwarnings("ignore:ks_2samp. Exact calculation unsuccessful:RuntimeWarning")
def test_ks_two_sample_is_scipys_exact_statistic(a, b):
    assert ks_two_sample(a, b) == ks_2samp(a, b, method="exact").statistic


def test_ks_from_the_reference_matches_scipy_even_with_ties():
    rng = np.random.default_rng(1)
    train = np.column_stack([rng.normal(size=5000), rng.integers(1, 52, size=5000)])
    batch = np.column_stack([rng.normal(0.3, 1, size=800), rng.integers(5, 52, size=800)])
    ref = build_reference(train, ("x", "age"))
    approx = feature_drift(ref, batch)
    exact = feature_drift(ref, batch, train)
    for j, name in enumerate(("x", "age")):
        assert exact[name]["ks"] == pytest.approx(ks_2samp(train[:, j], batch[:, j]).statistic)
        assert approx[name]["ks"] == pytest.approx(exact[name]["ks"], abs=2e-3)


def test_missing_values_are_counted_not_scored():
    X = np.random.default_rng(2).normal(size=(1000, 1))
    ref = build_reference(X, ("x",))
    batch = X[:100].copy()
    batch[:30] = np.nan
    stats = feature_drift(ref, batch)["x"]
    assert stats["missing"] == pytest.approx(0.3)
    assert np.isfinite(stats["psi"])
    all_missing = feature_drift(ref, np.full((5, 1), np.nan))["x"]
    assert (all_missing["missing"], all_missing["ks"]) == (1.0, 1.0)


def test_reference_file_round_trip_and_errors(tmp_path):
    ref = build_reference(rows(500), FEATURE_NAMES)
    save_reference(tmp_path / "reference.npz", ref)
    loaded = load_reference(tmp_path / "reference.npz")
    assert loaded.feature_names == FEATURE_NAMES
    assert_allclose(loaded.quantiles, ref.quantiles)
    (tmp_path / "bad.npz").write_bytes(b"nope")
    with pytest.raises(ModelFileError, match=r"bad\.npz: corrupt or truncated"):
        load_reference(tmp_path / "bad.npz")


def test_drift_window_is_bounded_and_keeps_the_latest_rows():
    ref = build_reference(rows(2000), FEATURE_NAMES)
    window = DriftWindow(ref, size=100)
    for i in range(50):  # 50 x 37 rows through a 100-row window
        window.add(np.full((37, 8), float(i)))
    count, _ = window.scores()
    assert count == 100
    assert window.buffer.shape == (100, 8)
    assert set(np.unique(window.buffer)) == {47.0, 48.0, 49.0}
    window.add(np.arange(8.0 * 250).reshape(250, 8))  # more than the window at once
    # the window is now rows 150-249 of that batch; row g of all rows seen is at slot g % 100
    assert window.buffer[(window.seen - 1) % 100].tolist() == list(range(1992, 2000))
    assert sorted(window.buffer[:, 0].tolist()) == list(range(1200, 2000, 8))
    window.add(np.full((10, 8), -1.0))  # the next rows overwrite the oldest, not the newest
    assert sorted(window.buffer[:, 0].tolist())[10:] == list(range(1280, 2000, 8))


# -- the command -----------------------------------------------------------------------------

HEADER = ",".join(FEATURE_NAMES)


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text((REPO_ROOT / "params.yaml").read_text())
    write_models(tmp_path / "models")
    from quantpipe.data import Dataset, save_dataset

    X = rows(3000, seed=3)
    save_dataset(tmp_path / "train.npz", Dataset(X, X @ np.ones(8) * 0.001))
    return tmp_path


def run_monitor(workspace, csv_text, capsys):
    (workspace / "batch.csv").write_text(csv_text)
    status = monitor.main(
        [
            "--batch",
            "batch.csv",
            "--train",
            "train.npz",
            "--report",
            "report.json",
            "--plot",
            "drift.csv",
        ]
    )
    return status, capsys.readouterr().err


def csv_of(X, header=HEADER, extra=None):
    lines = [header] + [",".join(map(repr, r)) + (f",{extra}" if extra else "") for r in X.tolist()]
    return "\n".join(lines) + "\n"


def test_monitor_without_drift_exits_0_and_writes_report_and_plot(workspace, capsys):
    status, err = run_monitor(workspace, csv_of(rows(800, seed=9)), capsys)
    assert (status, err) == (0, "")
    report = json.loads((workspace / "report.json").read_text())
    assert report["rows"] == 800
    assert report["alerts"] == 0
    assert set(report["features"]) == set(FEATURE_NAMES)
    assert "models" not in report  # no labels
    assert (workspace / "drift.csv").read_text().startswith("feature,bin,source,share\n")


def test_monitor_alert_names_the_feature_and_exits_1(workspace, capsys):
    X = rows(800, seed=9)
    X[:, 0] *= 3
    status, err = run_monitor(workspace, csv_of(X), capsys)
    assert status == 1
    assert err.startswith("error: drift alert on batch.csv: MedInc PSI ")
    assert err.count("\n") == 1
    assert json.loads((workspace / "report.json").read_text())["features"]["MedInc"]["alert"] == 1


def test_monitor_with_labels_scores_every_model(workspace, capsys):
    header = HEADER + ",MedHouseVal"
    status, _ = run_monitor(workspace, csv_of(rows(300, seed=9), header, extra="2.5"), capsys)
    assert status == 0
    report = json.loads((workspace / "report.json").read_text())
    assert set(report["models"]) == {"fp64", "q8", "q16"}


def test_monitor_columns_in_any_order_and_missing_values(workspace, capsys):
    X = rows(400, seed=9)
    status, _ = run_monitor(workspace, csv_of(X), capsys)
    ordered = json.loads((workspace / "report.json").read_text())
    order = list(reversed(FEATURE_NAMES))
    lines = [",".join(order)] + [
        ",".join(repr(r[FEATURE_NAMES.index(c)]) for c in order) for r in X.tolist()
    ]
    status, err = run_monitor(workspace, "\n".join(lines) + "\n", capsys)
    assert (status, err) == (0, "")
    assert json.loads((workspace / "report.json").read_text()) == ordered
    lines[5] = "," + lines[5].split(",", 1)[1]  # Longitude (first column) missing on line 6
    status, err = run_monitor(workspace, "\n".join(lines) + "\n", capsys)
    report = json.loads((workspace / "report.json").read_text())
    assert report["features"]["Longitude"]["missing"] == 0.0025  # 1 of 400: under the 1 % alert
    assert report["complete_rows"] == 399
    assert (status, err) == (0, "")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "error: batch.csv: the input is empty: no rows\n"),
        (HEADER + "\n", "error: batch.csv: the input has a header but no rows\n"),
        ("a,b\n1,2\n", "error: batch.csv: line 1: columns are ['a', 'b']; expected the features"),
        (
            HEADER + "\n" + ",".join(["1"] * 7) + "\n",
            "error: batch.csv: line 2: 7 values, expected 8",
        ),
        (
            HEADER + "\n" + "1,x,1,1,1,1,1,1\n",
            "error: batch.csv: line 2: HouseAge = 'x' is not a number",
        ),
    ],
)
def test_monitor_bad_input_gets_one_line(workspace, capsys, text, message):
    status, err = run_monitor(workspace, text, capsys)
    assert status == 1
    assert err.startswith(message)
    assert err.count("\n") == 1


# -- scenarios on the real data --------------------------------------------------------------


@pytest.fixture(scope="module")
def real(data_home, tmp_path_factory):
    data = fetch_dataset(data_home)
    train, test = split_dataset(data, seed=42, test_size=0.2)
    models = write_models(tmp_path_factory.mktemp("monitor") / "models")
    return train, test, ModelRegistry.from_directory(models)


def alerting(report):
    return {name for name, s in report["features"].items() if s["alert"]}


def test_scenario_geographic_drift_train_north_monitor_south(real):
    train, test, registry = real
    north, south = train.X[train.X[:, 6] > 36.0], test.X[test.X[:, 6] <= 34.5]
    report = monitor.monitor_report(north, south, None, registry, PARAMS)
    assert {"Latitude", "Longitude"} <= alerting(report)
    assert report["features"]["Latitude"]["psi"] > 2


def test_scenario_income_shift(real):
    train, test, registry = real
    richer = test.X[test.X[:, 0] > np.quantile(test.X[:, 0], 0.5)]
    report = monitor.monitor_report(train.X, richer, None, registry, PARAMS)
    assert "MedInc" in alerting(report)
    assert report["predictions"]["alert"] == 1  # the model's outputs shift with it


@pytest.mark.parametrize(
    ("feature", "breakage"),
    [
        ("Population", lambda col: col / 1000),  # a unit change: thousands of people
        ("AveRooms", lambda col: np.full_like(col, 5.0)),  # a stuck sensor: constant
        ("HouseAge", lambda col: np.where(np.arange(len(col)) % 10 == 0, np.nan, col)),
    ],
    ids=["unit change", "constant", "10% missing"],
)
def test_scenario_broken_feature(real, feature, breakage):
    train, test, registry = real
    X = test.X.copy()
    j = FEATURE_NAMES.index(feature)
    X[:, j] = breakage(X[:, j])
    report = monitor.monitor_report(train.X, X, test.y, registry, PARAMS)
    assert alerting(report) == {feature}


def test_scenario_no_drift_false_alarm_rate(real):
    """Fresh random samples of held-out rows must not alert: 200 seeds, 1,000 rows each."""
    train, test, _ = real
    reference = build_reference(train.X, FEATURE_NAMES, PARAMS.bins)
    alarms = 0
    for seed in range(200):
        sample = test.X[np.random.default_rng(seed).choice(len(test.X), 1000, replace=False)]
        stats = feature_drift(reference, sample)
        alarms += any(
            s["psi"] > PARAMS.psi_alert or s["ks"] > PARAMS.ks_alert for s in stats.values()
        )
    assert alarms / 200 <= 0.01


def test_monitor_of_one_labelled_row_writes_a_valid_report(workspace, capsys):
    """R² of one row is undefined: it must not become NaN in the JSON report."""
    X = rows(1, seed=4)
    status, err = run_monitor(workspace, csv_of(X, HEADER + ",MedHouseVal", extra="2.5"), capsys)
    assert "Traceback" not in err
    report = json.loads((workspace / "report.json").read_text())
    assert report["rows"] == 1
    assert all(isinstance(m["r2"], float) for m in report["models"].values())
    assert status in (0, 1)  # one row may well look like drift; either way, one line at most
    assert err.count("\n") <= 1
