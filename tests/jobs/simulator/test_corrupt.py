"""Bad lines: each kind breaks exactly its own rule, and the summary counts them right."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from features.validation import SESSION_REASONS
from jobs.simulator.corrupt import BAD_KINDS, corrupt
from jobs.simulator.lines import render, session_fields
from tests.jobs.simulator.conftest import DAY_ISO, START, failures, lines, run

pytestmark = pytest.mark.unit


def test_bad_record_accounting(sim, classified):
    root, summary = sim
    total = Counter()
    for day in DAY_ISO:
        stats = summary["days"][day]
        raw = lines(root, "watch_sessions", day)
        assert set(stats["bad"]) == set(BAD_KINDS)
        assert len(raw) == stats["lines"] == stats["sessions"] + sum(stats["bad"].values())
        counts, _ = classified[day]
        assert {k: v for k, v in counts.items() if k != "ok"} == {
            k: v for k, v in stats["bad"].items() if v}
        unparsable = 0
        for line in raw:
            try:
                json.loads(line)
            except json.JSONDecodeError:
                unparsable += 1
        assert unparsable == stats["bad"]["unparsable"]
        assert len(raw) - len(set(raw)) == stats["bad"]["duplicate"]
        # bad lines are mixed in, not appended after the good ones
        broken = [i for i, x in enumerate(raw) if failures(x, day, set(), set()) == ["unparsable"]]
        assert min(broken) < stats["sessions"]
        total.update(stats["bad"])
    assert all(total[k] > 0 for k in BAD_KINDS)


def test_bad_kinds_are_validation_reasons():
    assert set(BAD_KINDS) <= set(SESSION_REASONS)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("kind", [k for k in BAD_KINDS if k != "duplicate"])
def test_each_kind_breaks_exactly_its_rule(kind, seed):
    # user 12 and anchor 7 are known, so a good copy breaks nothing and a bad one only `kind`
    f = session_fields(12, 7, "2026-01-01T10:00:00Z", 42.5, 1.5)
    good = render(f)
    assert failures(good, "2026-01-01", {12}, {7}) == []
    bad = corrupt(kind, f, START, 36_000, good, np.random.default_rng(seed), serial=3)
    assert failures(bad, "2026-01-01", {12}, {7}) == [kind]


def test_duplicate_is_the_good_line_and_unknown_kinds_fail():
    f = session_fields(12, 7, "2026-01-01T10:00:00Z", 42.5, 0.0)
    rng = np.random.default_rng(0)
    assert corrupt("duplicate", f, START, 36_000, render(f), rng, serial=0) == render(f)
    with pytest.raises(ValueError, match="unknown bad kind"):
        corrupt("bad_gift", f, START, 36_000, render(f), rng, serial=0)


def test_no_bad_lines_at_zero_rate(tmp_path):
    summary = run(tmp_path, days=1, bad_rate=0.0)
    stats = summary["days"][DAY_ISO[0]]
    assert sum(stats["bad"].values()) == 0 and stats["lines"] == stats["sessions"]
