"""JSON lines: bulk and one-by-one formatting agree, and good sessions are valid and unique."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from jobs.simulator.lines import live_lines, render, session_fields, session_lines
from tests.jobs.simulator.conftest import DAY_ISO, START, lines

pytestmark = pytest.mark.unit


def test_bulk_and_single_line_formats_agree():
    # bad lines are rendered one by one, good ones in bulk: both must look the same
    args = [np.array(x) for x in ([12, 3], [7, 9], [0, 86399], [42.5, 0.5], [1.5, 0.0])]
    bulk = session_lines(START, *args)
    one = [render(session_fields(12, 7, "2026-01-01T00:00:00Z", 42.5, 1.5)),
           render(session_fields(3, 9, "2026-01-01T23:59:59Z", 0.5, 0.0))]
    assert bulk == one
    assert json.loads(bulk[0]) == {"user_id": 12, "anchor_id": 7, "watch_seconds": 42.5,
                                   "start_time": "2026-01-01T00:00:00Z", "gift_value": 1.5}


def test_live_lines():
    assert live_lines(np.array([3, 10])) == ['{"anchor_id": 3}', '{"anchor_id": 10}']


def test_good_sessions_are_valid_and_unique(sim, classified):
    root, summary = sim
    for day in DAY_ISO:
        counts, good = classified[day]
        assert counts["ok"] == summary["days"][day]["sessions"] == len(good)
        keys = {(s["user_id"], s["anchor_id"], s["start_time"]) for s in good}
        assert len(keys) == len(good)
        assert all(s.get("gift_value", 1.0) > 0 for s in good)
        for line in lines(root, "watch_sessions", day):
            # numbers carry at most one decimal
            assert not re.search(r"\d\.\d\d", line)
