"""Label rule at its boundaries, new-entity flags, and argument checks."""

from __future__ import annotations

from datetime import datetime

import pytest

from features.rules import LabelRule
from features.tables import ANCHORS, RAW_WATCH_SESSIONS, USERS
from jobs import labels

DAY = "2026-05-02"


def test_thresholds_at_the_boundaries(spark):
    t = datetime(2026, 5, 2, 12)
    # (user, anchor, seconds): pair totals 2 -> 0, 3 -> dropped, 29 -> dropped, 30 -> 1;
    # user 5 watches anchor 10 twice (1.5 + 1.5 = 3 s in total: dropped, not a bounce).
    watches = [(1, 10, 2.0), (2, 10, 3.0), (3, 10, 29.0), (4, 10, 30.0), (5, 10, 1.5),
               (5, 10, 1.5), (6, 11, 0.0)]
    sessions = spark.createDataFrame(
        [(i, u, a, t, s, 0.0, DAY) for i, (u, a, s) in enumerate(watches)],
        RAW_WATCH_SESSIONS.schema)
    users = spark.createDataFrame(
        [(u, "2026-01-01", "F", "18-24", "c0", "ios", "2026-05-01") for u in range(1, 6)]
        + [(6, DAY, "M", "18-24", "c0", "ios", DAY)], USERS.schema)
    anchors = spark.createDataFrame(
        [(10, "2026-01-01", "music", "F", "c0", "2026-04-01"),
         (11, DAY, "chat", "M", "c1", DAY)], ANCHORS.schema)
    out = labels.build_labels(sessions, users, anchors, DAY, LabelRule())
    got = sorted((r.user_id, r.anchor_id, r.label, r.watch_seconds, r.is_new_user,
                  r.is_new_anchor) for r in out.collect())
    assert got == [(1, 10, 0, 2.0, False, False), (4, 10, 1, 30.0, False, False),
                   (6, 11, 0, 0.0, True, True)]
    wider = labels.build_labels(sessions, users, anchors, DAY, LabelRule(29.0, 3.0))
    assert sorted((r.user_id, r.label) for r in wider.collect()) == [
        (1, 0), (2, 0), (3, 1), (4, 1), (5, 0), (6, 0)]


@pytest.mark.parametrize("positive, negative", [(30, 30), (10, 20), (30, -1)])
def test_inconsistent_thresholds_are_refused(positive, negative):
    with pytest.raises(ValueError):
        LabelRule(positive, negative)
    with pytest.raises(SystemExit):
        labels.main(["--date", DAY, "--positive-seconds", str(positive),
                     "--negative-seconds", str(negative)])


def test_missing_day_is_a_clear_error(lake):
    lake.create(RAW_WATCH_SESSIONS)
    with pytest.raises(FileNotFoundError, match="no partition 2026-05-02"):
        labels.run(lake, DAY)
