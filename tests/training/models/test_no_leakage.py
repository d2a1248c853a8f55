"""No lake baseline reads the scored day or a later one, and every one is built by its
registered factory from a training set's lake root."""

from __future__ import annotations

import shutil
from types import SimpleNamespace

import numpy as np
import pytest

from tests.training.models.tiny_lake import user, watch, write_lake
from training.models import baselines
from training.models.history import read_before

pytestmark = pytest.mark.unit

LAKE_BASELINES = ("recent_popularity", "segment_popularity", "rewatch", "item_cf", "als")
DAY, NEXT = "2026-01-10", "2026-01-11"
USERS = {"user_id": np.array([1, 2, 3]),
         "user_gender": np.array(["f", "m", "f"], dtype=object),
         "user_age_bucket": np.array(["18-24", "25-34", "18-24"], dtype=object),
         "user_city": np.array(["X", "Y", "X"], dtype=object)}
ANCHORS = {"anchor_id": np.array([10, 20, 30, 99])}


def _context(root):
    """What a factory reads of a ScoringContext: the training set's lake root and format."""
    data = SimpleNamespace(lake_root=root, manifest=SimpleNamespace(format="delta"))
    return SimpleNamespace(training_set=data, landing_root=None, seed=0)


@pytest.fixture(scope="module")
def lakes(tmp_path_factory):
    """`past`: days before DAY only. `later`: the same, plus DAY and NEXT, where everyone
    (the scored users too) watches anchor 99 for hours: any read of DAY would move 99 up."""
    past = tmp_path_factory.mktemp("past")
    watches = [watch(u, a, f"2026-01-0{d}", 300.0 * (1 + (u + a + d) % 4))
               for d in range(1, 10) for u in range(1, 9) for a in (10, 20, 30)
               if (u + a // 10 + d) % 3]
    people = [user(u, "fm"[u % 2], ("18-24", "25-34")[u % 3 == 0], "XY"[u % 2])
              for u in range(1, 9)]
    write_lake(past, watches, people)
    later = tmp_path_factory.mktemp("later") / "lake"
    shutil.copytree(past, later)
    flood = [watch(u, 99, d, 20_000.0, sessions=40) for d in (DAY, NEXT) for u in range(1, 12)]
    write_lake(later, flood + [watch(u, 10, d) for d in (DAY, NEXT) for u in (1, 2, 3)],
               [user(u, "f", "18-24", "X", DAY) for u in (9, 10, 11)])
    return past, later


def test_every_lake_baseline_is_registered():
    assert set(LAKE_BASELINES) <= set(baselines())


@pytest.mark.parametrize("name", LAKE_BASELINES)
def test_a_baseline_never_reads_the_scored_day_or_later(lakes, name):
    past, later = lakes
    factory = baselines()[name]
    clean = factory(_context(past)).score(DAY, USERS, ANCHORS)
    scorer = factory(_context(later))
    np.testing.assert_array_equal(scorer.score(DAY, USERS, ANCHORS), clean)
    # the flood does change the answer once it is in the past: DAY's rows are read for NEXT
    assert not np.array_equal(scorer.score(NEXT, USERS, ANCHORS), clean)


def test_reads_stop_before_the_day(lakes):
    from features.catalog import DAILY_USER_ANCHOR
    from features.catalog import USERS as USERS_TABLE

    _, later = lakes
    for table in (DAILY_USER_ANCHOR, USERS_TABLE):
        rows = read_before(later, table, DAY, ["user_id"])
        assert len(rows["dt"]) and max(rows["dt"]) < DAY
    window = read_before(later, DAILY_USER_ANCHOR, DAY, ["user_id"], days=2)
    assert sorted(set(window["dt"])) == ["2026-01-08", "2026-01-09"]
