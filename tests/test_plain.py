"""The fast readers of plain inputs (quantpipe.plain): float()'s values, or None to defer."""

import io
import struct

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from quantpipe import pool, tables
from quantpipe.compiled import csv_floats
from quantpipe.data import FEATURE_NAMES
from quantpipe.plain import plain_csv


def bits(values):
    return np.asarray(values, dtype=np.float64).view(np.int64).tolist()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("9007199254740993", 2.0**53),  # a tie between 2**53 and 2**53 + 2: to even
        ("9007199254740995", 2.0**53 + 4),  # a tie: to even, upwards
        ("4503599627370496.5", 2.0**52),  # a tie reached by division
        ("4503599627370497.5", 2.0**52 + 2),
        ("9007199254740993.0000000000001", 2.0**53 + 2),  # past the tie: only strtod sees it
        ("9999999999999999999", 1e19),  # 19 digits: a w of 64 bits
        ("999999999999999999.9", 1e18),  # divided with no shift: w has bits to spare
        ("12345678901234567890000", 1.234567890123456789e22),  # digits past 19, all zeros
        ("123456789012345678901234567890", 1.2345678901234568e29),  # over 19 digits: strtod
        ("0.1", 0.1),
        ("-0", -0.0),
        ("+.5", 0.5),
        ("5.", 5.0),
        ("000.000123e+3", 0.123),
        ("1E-19", 1e-19),
        ("2.5e22", 2.5e22),
        ("1.7976931348623157e308", 1.7976931348623157e308),
        ("0e999999", 0.0),
    ],
)
def test_a_field_is_floats_value_bit_for_bit(field, value):
    assert bits([float(field)]) == bits([value])  # the expectation is float()'s
    table = plain_csv(f" {field}\t,1\r\n", 2)
    assert table is not None
    assert bits(table) == bits([[float(field), 1.0]])


@pytest.mark.parametrize(
    "text",
    [
        "x,1\n",
        ",1\n",  # a missing value: the line-by-line reader says which
        "1e999,1\n",  # beyond float64
        "1e-320,1\n",  # subnormal: strtod reports the underflow
        "nan,1\n",
        "inf,1\n",
        "1_0,1\n",  # float() takes it; the reader leaves it to float()
        "0x1p3,1\n",
        "1e,1\n",
        ".,1\n",
        "1.2.3,1\n",
        "1,2,3\n",  # a column too many
        "1\n",
        "1,2\x00\n",
        "1,2\n\x00\n",  # a NUL on a line of its own is not a blank line
        "1,\u0663\n",  # a digit float() reads, but not ASCII
        "1,2\x0c\n",  # whitespace to str.strip, not to this reader
    ],
)
def test_anything_unusual_is_left_to_the_line_by_line_reader(text):
    assert plain_csv(text, 2) is None


def test_blank_lines_and_a_last_line_without_its_newline():
    table = plain_csv("\n 1,2\r\n \t\r\n\n3,4", 2)
    assert table is not None
    assert table.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert plain_csv("", 2).shape == (0, 2)


def test_the_output_must_fit():
    with pytest.raises(ValueError, match=r"^out has 3 columns, expected 2$"):
        csv_floats("1,2\n", 2, np.empty((2, 3)))
    with pytest.raises(ValueError, match=r"^columns must be at least 1$"):
        csv_floats("1\n", 0, np.empty((2, 1)))
    assert csv_floats("1\n2\n3\n", 1, np.empty((2, 1))) == -1  # more rows than room: defer


finite = st.floats(allow_nan=False, allow_infinity=False).filter(
    lambda x: x == 0 or abs(x) >= 2.2250738585072014e-308
)


@given(st.lists(finite, min_size=3, max_size=3))
def test_repr_round_trips(row):
    table = plain_csv(",".join(map(repr, row)) + "\n", 3)
    assert table is not None
    assert bits(table[0]) == bits(row)


@given(
    sign=st.sampled_from(["", "-", "+"]),
    digits=st.text("0123456789", min_size=1, max_size=25),
    point=st.integers(0, 25),
    exponent=st.one_of(st.just(""), st.integers(-40, 40).map(lambda e: f"e{e}")),
)
def test_any_decimal_gives_floats_value(sign, digits, point, exponent):
    field = sign + digits[:point] + "." + digits[point:] + exponent
    table = plain_csv(field + "\n", 1)
    value = float(field)
    if table is None:  # only a subnormal, left to float() (no decimal here overflows)
        assert 0 < abs(value) < 2.2250738585072014e-308
    else:
        assert bits(table[0]) == bits([value])


def test_random_doubles_by_the_thousand():
    raw = np.random.default_rng(0).integers(0, 2**63, size=(4000, 4), dtype=np.int64)
    values = raw.view(np.float64)
    values = values[np.isfinite(values).all(axis=1) & (np.abs(values) >= 2.3e-308).all(axis=1)]
    text = "".join(",".join(map(repr, row)) + "\n" for row in values.tolist())
    table = plain_csv(text, 4)
    assert table is not None
    assert bits(table) == bits(values)
    assert struct.pack("<d", table[0, 0]) == struct.pack("<d", values[0, 0])


def _no_workers(*args):
    raise AssertionError("a worker was asked")


def test_by_default_a_csv_is_read_here_and_json_lines_by_workers(monkeypatch):
    monkeypatch.setattr(pool, "_in_workers", _no_workers)
    monkeypatch.setattr(pool, "can_fork", lambda: True)
    monkeypatch.setattr(pool, "cpus", lambda: 2)
    rows = [[float(i + j) for j in range(8)] for i in range(30)]
    csv = "\n".join(",".join(map(repr, row)) for row in rows) + "\n"
    chunks = list(tables.read_chunks(io.StringIO(csv), FEATURE_NAMES, chunk_rows=10, jobs=None))
    assert np.concatenate([X for X, _ in chunks]).tolist() == rows
    jsonl = "".join(f"{row}\n" for row in rows)
    with pytest.raises(AssertionError, match="a worker was asked"):
        list(tables.read_chunks(io.StringIO(jsonl), FEATURE_NAMES, chunk_rows=10, jobs=None))
