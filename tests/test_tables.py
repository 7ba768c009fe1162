"""The one reader of rows (quantpipe.tables): its rules, for predict and monitor alike."""

from __future__ import annotations

import io
import itertools
import json
import math
import os
import re
import time

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from quantpipe.data import FEATURE_NAMES, TARGET_NAME
from quantpipe.errors import InputError
from quantpipe.tables import csv_layout, parse_jsonl, read_chunks

X = np.arange(16, dtype=np.float64).reshape(2, 8) + 0.5


def _read(text, **options):
    chunks = list(read_chunks(io.StringIO(text), FEATURE_NAMES, **options))
    Xs = np.concatenate([X for X, _ in chunks])
    ys = [y for _, y in chunks]
    return Xs, (np.concatenate(ys) if ys[0] is not None else None)


def _csv(columns, X, y=None, newline="\n"):
    lines = [",".join(columns)]
    for i, row in enumerate(X.tolist()):
        values = dict(zip(FEATURE_NAMES, row, strict=True))
        if y is not None:
            values[TARGET_NAME] = y[i]
        lines.append(",".join(repr(values[c.strip().lstrip("\ufeff")]) for c in columns))
    return newline.join(lines) + newline


@given(order=st.permutations([*FEATURE_NAMES, TARGET_NAME]), case=st.sampled_from(["", "l", "u"]))
def test_columns_in_any_order_and_case_give_the_same_rows(order, case):
    y = [1.25, 2.5]
    shown = [c.lower() if case == "l" else c.upper() if case == "u" else c for c in order]
    text = _csv(order, X, y).replace(",".join(order), ",".join(shown), 1)
    got_X, got_y = _read(text)
    np.testing.assert_array_equal(got_X, X)
    np.testing.assert_array_equal(got_y, y)


def test_bom_crlf_and_blank_lines_are_accepted():
    text = "\ufeff" + _csv(FEATURE_NAMES, X, newline="\r\n").replace("\r\n", "\r\n\r\n", 1)
    got_X, got_y = _read(text, chunk_rows=1)
    np.testing.assert_array_equal(got_X, X)
    assert got_y is None


def test_without_a_header_the_columns_are_the_features_in_order():
    text = "".join(",".join(map(repr, row)) + "\n" for row in X.tolist())
    np.testing.assert_array_equal(_read(text)[0], X)


def test_a_blank_line_keeps_the_line_numbers_of_what_follows():
    text = _csv(FEATURE_NAMES, X) + "\n\n1,2\n"
    with pytest.raises(InputError, match=r"^line 6: 2 values, expected 8"):
        _read(text)


def test_missing_values_are_an_error_or_nan_as_asked():
    text = _csv(FEATURE_NAMES, X).replace("8.5,", ",", 1)
    with pytest.raises(InputError, match=r"^line 3: MedInc is missing$"):
        _read(text)
    got, _ = _read(text, missing_ok=True)
    assert math.isnan(got[1, 0])
    np.testing.assert_array_equal(got[:, 1:], X[:, 1:])


def test_the_target_may_be_missing_even_for_predict():
    text = _csv([*FEATURE_NAMES, TARGET_NAME], X, [1.0, 2.0]).replace(",2.0\n", ",\n")
    got_X, got_y = _read(text)
    np.testing.assert_array_equal(got_X, X)
    assert got_y[0] == 1.0
    assert math.isnan(got_y[1])


@pytest.mark.parametrize(
    ("first", "message"),
    [
        ("a,b", r"columns are \['a', 'b'\]; expected the features"),
        (",".join([*FEATURE_NAMES, "MedInc"]), r"columns are \['MedInc', 'HouseAge',"),
        (",".join(FEATURE_NAMES[:-1]), r"columns are .* expected the features"),
        (",".join([*FEATURE_NAMES, "x" * 1000]), r"columns are .*\.\.\."),
    ],
)
def test_a_header_that_is_not_the_features_is_refused(first, message):
    with pytest.raises(InputError, match=message) as info:
        csv_layout(first, FEATURE_NAMES)
    assert len(str(info.value)) < 250


def test_json_lines_objects_may_carry_the_target():
    lines = [
        '{"MedInc": 1, "HouseAge": 2, "AveRooms": 3, "AveBedrms": 4, "Population": 5, '
        '"AveOccup": 6, "Latitude": 7, "Longitude": 8, "MedHouseVal": 9}',
        "",
        "[1, 2, 3, 4, 5, 6, 7, 8]",
    ]
    got_X, got_y = parse_jsonl(lines, 1, FEATURE_NAMES)
    np.testing.assert_array_equal(got_X, [list(range(1, 9))] * 2)
    assert got_y[0] == 9.0
    assert math.isnan(got_y[1])


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("[1,2,3,4,5,6,7," + "9" * 400 + "]", r"Longitude = 9+\.\.\.9+ is too large"),
        ("[1,2,3,4,5,6,7,18446744073709551617]", None),  # above 2**64, still a float64
        ("[" * 100_000 + "]" * 100_000, r"JSON nested too deeply|not valid JSON"),
        ("[1,2,3,4,5,6,7," + "1" * 5000 + "]", r"^line 1: a number with too many digits$"),
    ],
)
def test_json_numbers_of_any_size_and_depth(line, message):
    if message is None:
        assert parse_jsonl([line], 1, FEATURE_NAMES)[0][0, 7] == 2.0**64
        return
    with pytest.raises(InputError, match=message):
        parse_jsonl([line], 1, FEATURE_NAMES)


def test_text_that_is_not_utf8_is_one_line():
    stream = io.TextIOWrapper(io.BytesIO(b"MedInc\xff,x\n"), encoding="utf-8")
    with pytest.raises(InputError, match=r"^the input is not UTF-8 text \(invalid start byte\)"):
        list(read_chunks(stream, FEATURE_NAMES))


def _slow_jsonl(lines, names, monkeypatch):
    from quantpipe import plain, tables

    with monkeypatch.context() as m:
        m.setattr(plain, "orjson", None)
        return tables.parse_jsonl(lines, 1, names)


def test_list_form_json_lines_take_the_fast_path_with_the_same_values(monkeypatch):
    from quantpipe.plain import plain_jsonl
    from quantpipe.tables import parse_jsonl

    lines = ["[1, 2]\n", "\n", "  [3.5,-4e-3] \n", "[0, -0.0]\n", "[123456789012345678901, 1e300]"]
    fast = plain_jsonl(lines, 2)
    assert fast is not None
    X, y = parse_jsonl(lines, 1, ["a", "b"])
    slow_X, slow_y = _slow_jsonl(lines, ["a", "b"], monkeypatch)
    assert y is None
    assert slow_y is None
    assert X.tobytes() == slow_X.tobytes() == fast.tobytes()  # -0.0 kept, bit for bit
    rng = np.random.default_rng(1)
    values = np.concatenate([rng.normal(0, 1e3, 4000), rng.normal(0, 1e-7, 4000)]).reshape(-1, 8)
    random_lines = ["[" + ",".join(map(repr, row)) + "]\n" for row in values.tolist()]
    assert plain_jsonl(random_lines, 8).tobytes() == values.tobytes()
    # digits past float64's, halfway cases: rounded as Python's float() rounds them
    hard = [
        "1.00000000000000011102230246251565404236316680908203125",
        "0.1000000000000000055511151231257827021181583404541015625",
        "2.2250738585072011e-308",
        "9007199254740993",
    ]
    hard_lines = [f"[{a}, {b}]\n" for a, b in zip(hard, hard[::-1], strict=True)]
    expected = np.array([[float(a), float(b)] for a, b in zip(hard, hard[::-1], strict=True)])
    assert plain_jsonl(hard_lines, 2).tobytes() == expected.tobytes()


@pytest.mark.parametrize(
    "line",
    [
        "[true, 1]",
        '["1", 2]',
        "[null, 1]",
        "[1]",
        "[1, 2, 3]",
        "[[1, 2]]",
        "[1, 2], [3, 4]",
        '{"a": 1, "b": 2}',
        "[1e999, 1]",
        "[NaN, 1]",
        "[01, 2]",
        "[1,, 2]",
        "[1, 2",
    ],
)
def test_anything_but_lists_of_numbers_is_left_to_the_line_by_line_parser(line, monkeypatch):
    from quantpipe.plain import plain_jsonl
    from quantpipe.tables import parse_jsonl

    lines = ["[1, 2]\n", line + "\n"]
    assert plain_jsonl(lines, 2) is None
    try:
        expected = _slow_jsonl(lines, ["a", "b"], monkeypatch)
    except InputError as exc:
        with pytest.raises(InputError, match=re.escape(str(exc))):
            parse_jsonl(lines, 1, ["a", "b"])
    else:  # an object line with the features' keys is valid, line by line
        X, _ = parse_jsonl(lines, 1, ["a", "b"])
        assert X.tobytes() == expected[0].tobytes()


# -- parsing in worker processes (quantpipe.pool) ----------------------------------------------


def _rows_text(n, bad_lines=(), fmt="csv"):
    rng = np.random.default_rng(n)
    lines = []
    for row in rng.normal(size=(n, 8)).tolist():
        lines.append(",".join(map(repr, row)) if fmt == "csv" else json.dumps(row))
    for lineno, text in bad_lines:  # 1-based numbers of the lines after a CSV's header
        lines[lineno - 2] = text
    header = [",".join(FEATURE_NAMES)] if fmt == "csv" else []
    return "\n".join(header + lines) + "\n"


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_worker_processes_give_the_same_arrays(fmt):
    text = _rows_text(95, fmt=fmt).replace("\n", "\n\n", 3)  # blank lines, too
    alone = list(read_chunks(io.StringIO(text), FEATURE_NAMES, chunk_rows=10))
    workers = list(read_chunks(io.StringIO(text), FEATURE_NAMES, chunk_rows=10, jobs=2))
    assert len(workers) == len(alone) == 10
    for (a, _), (b, _) in zip(alone, workers, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("jobs", [1, 2, 3])
def test_worker_processes_report_the_first_bad_line(jobs):
    text = _rows_text(95, bad_lines=[(87, "1,2,x,4,5,6,7,8"), (57, "1,2,3")])
    with pytest.raises(InputError, match=r"^line 57: 3 values, expected 8 \(MedInc,"):
        list(read_chunks(io.StringIO(text), FEATURE_NAMES, chunk_rows=10, jobs=jobs))


def _slow_for_the_first(lines, first_lineno):
    time.sleep(0.2 if first_lineno == 1 else 0.0)  # the first chunk finishes last
    return first_lineno, len(lines)


def test_results_come_in_input_order_and_a_consumer_may_stop_early():
    from quantpipe.pool import parsed_in_order

    # lines as a text file gives them: each ends with its newline (the input's last may not)
    chunks = iter([(["a\n"] * 3, 1), (["b\n"] * 3, 4), (["c\n"] * 2, 7), (["d"], 9)])
    assert list(parsed_in_order(chunks, _slow_for_the_first, jobs=2)) == [
        (1, 3),
        (4, 3),
        (7, 2),
        (9, 1),
    ]
    endless = ((["x\n"], i) for i in itertools.count(1))
    results = parsed_in_order(endless, _slow_for_the_first, jobs=2)
    assert next(results) == (1, 1)
    results.close()  # the pool is shut down, nothing hangs


def test_worker_processes_report_a_bad_line_before_a_read_error_after_it():
    # the reader runs ahead of the workers: an undecodable byte read after a bad line must
    # not hide it (the chunks before the failed read come first, errors included)
    text = _rows_text(95, bad_lines=[(12, "1,2,x,4,5,6,7,8")]).encode() + b"\xff\xfe,1\n"
    for jobs in (1, 2):
        stream = io.TextIOWrapper(io.BytesIO(text), encoding="utf-8")
        with pytest.raises(InputError, match=r"^line 12: AveRooms = 'x' is not a number"):
            list(read_chunks(stream, FEATURE_NAMES, chunk_rows=10, jobs=jobs))
    good = _rows_text(95).encode() + b"\xff\n"
    stream = io.TextIOWrapper(io.BytesIO(good), encoding="utf-8")
    with pytest.raises(InputError, match=r"^the input is not UTF-8 text"):
        list(read_chunks(stream, FEATURE_NAMES, chunk_rows=10, jobs=2))


def _dies(lines, first_lineno):
    if first_lineno > 1:
        os._exit(1)  # a worker killed mid-parse
    return first_lineno


def test_a_worker_that_dies_is_one_line():
    from quantpipe.errors import QuantpipeError
    from quantpipe.pool import parsed_in_order

    chunks = iter([(["a\n"], 1), (["b\n"], 2), (["c\n"], 3)])
    with pytest.raises(QuantpipeError, match=r"^a process parsing the input died"):
        list(parsed_in_order(chunks, _dies, jobs=2))


def _line_one_is_bad(lines, first_lineno):
    if first_lineno == 1:
        raise InputError("line 1: bad")
    return first_lineno


def _second_read_fails():
    yield ["a\n"], 1
    raise InputError("the input is not UTF-8 text")


def _slow_after_two():
    yield ["a\n"], 1
    yield ["b\n"], 2
    time.sleep(1.0)  # a slow pipe: the worker parsing line 2 dies meanwhile
    yield ["c\n"], 3


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_bad_first_chunk_is_reported_before_a_failed_read_of_the_second(jobs):
    from quantpipe.pool import parsed_in_order

    with pytest.raises(InputError, match=r"^line 1: bad$"):
        list(parsed_in_order(_second_read_fails(), _line_one_is_bad, jobs=jobs))


def test_a_worker_that_dies_while_the_input_is_read_is_one_line():
    from quantpipe.errors import QuantpipeError
    from quantpipe.pool import parsed_in_order

    with pytest.raises(QuantpipeError, match=r"^a process parsing the input died"):
        list(parsed_in_order(_slow_after_two(), _dies, jobs=2))
