"""Day parsing and arithmetic: one error shape for every bad day."""

from __future__ import annotations

import argparse

import pytest

from features.days import add_days, day_arg, days_between, parse_day, window_before

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("text, fragment", [
    ("2026-1-5", "must be a day as YYYY-MM-DD"),
    ("20260105", "must be a day as YYYY-MM-DD"),
    (" 2026-01-05", "must be a day as YYYY-MM-DD"),
    (None, "must be a day as YYYY-MM-DD"),
    ("2026-02-30", "is not a calendar day"),
    ("2026-13-01", "is not a calendar day"),
    ("1969-12-31", "outside the supported range 1970-01-01 .. 9000-12-31"),
    ("9999-12-31", "outside the supported range"),
])
def test_bad_days_are_one_line_errors(text, fragment):
    with pytest.raises(ValueError, match=fragment) as error:
        parse_day(text, "--date")
    assert str(error.value).startswith("--date ") and "\n" not in str(error.value)


def test_the_range_ends_are_days():
    assert parse_day("1970-01-01").isoformat() == "1970-01-01"
    assert parse_day("9000-12-31").isoformat() == "9000-12-31"
    assert add_days("2026-02-28", 1) == "2026-03-01" and add_days("2026-01-01", -1) == \
        "2025-12-31"
    with pytest.raises(ValueError, match="outside the supported range"):
        add_days("9001-01-01", -1)  # the input is checked (the result is not)


def test_day_arg_is_an_argparse_type():
    assert day_arg("2026-01-05") == "2026-01-05"
    with pytest.raises(argparse.ArgumentTypeError, match="not a calendar day"):
        day_arg("2026-02-29")  # 2026 is not a leap year


def test_ranges_and_windows():
    assert days_between("2026-02-27", "2026-03-01") == ["2026-02-27", "2026-02-28",
                                                        "2026-03-01"]
    assert days_between("2026-01-01", "2026-01-01") == ["2026-01-01"]
    with pytest.raises(ValueError, match="end day 2026-01-01 is before start day 2026-01-02"):
        days_between("2026-01-02", "2026-01-01")
    with pytest.raises(ValueError, match="start day must be"):
        days_between("x", "2026-01-01")
    # the profile of D reads D-N .. D-1, never D
    assert window_before("2026-03-01", 2) == ["2026-02-27", "2026-02-28"]
    with pytest.raises(ValueError, match="at least 1 day"):
        window_before("2026-03-01", 0)
