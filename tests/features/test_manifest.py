"""Training-set manifest: typed, atomic, and only under a safe run folder."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from features.manifest import (
    TrainingSetManifest,
    check_run_id,
    load_manifest,
    manifest_path,
    run_folder,
)

pytestmark = pytest.mark.unit


def _manifest(**changes) -> TrainingSetManifest:
    values = {
        "run_id": "r1", "end": "2026-01-05", "days": 2, "window": 7, "seed": 7, "shards": 2,
        "train_days": ["2026-01-04"], "holdout_days": ["2026-01-05"],
        "tables": {"train": "training_sets/r1/train", "validation": "training_sets/r1/validation",
                   "candidates": "training_sets/r1/candidates"}, "format": "delta",
        "counts": {"train": {"rows": 10, "positive_rate": 0.5},
                   "validation": {"rows": 4, "positive_rate": None}, "candidates": 3},
        "source_versions": {"labels": 3, "users": None}, "vocabularies": {"category": ["a"]},
    }
    return TrainingSetManifest.model_validate({**values, **changes})


@pytest.mark.parametrize("run_id", ["..", "../users", "a/b", "/abs", "", ".hidden",
                                    "a..b", "x" * 201, "tab\there"])
def test_unsafe_run_ids_are_refused(run_id):
    with pytest.raises(ValueError, match="run id must match"):
        run_folder(run_id)


def test_safe_run_ids():
    assert check_run_id("end-2026-01-14_M-7_N-7") == "end-2026-01-14_M-7_N-7"
    assert run_folder("r1") == "training_sets/r1"


def test_save_and_load_round_trip(tmp_path):
    manifest = _manifest()
    path = manifest.save(tmp_path)
    assert path == manifest_path(tmp_path, "r1") == tmp_path / "training_sets/r1/manifest.json"
    assert load_manifest(tmp_path, "r1") == manifest
    assert json.loads(path.read_text())["counts"]["validation"]["positive_rate"] is None
    assert [p.name for p in path.parent.iterdir()] == ["manifest.json"]  # no temp file left


def test_missing_and_invalid_manifests_are_one_line_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="'r2' is missing or incomplete"):
        load_manifest(tmp_path, "r2")
    path = manifest_path(tmp_path, "r3")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({**json.loads(_manifest().model_dump_json()), "shards": 0}))
    with pytest.raises(ValueError, match=r"invalid training set manifest .*\('shards',\)"):
        load_manifest(tmp_path, "r3")
    with pytest.raises(ValueError, match="run id must match"):
        load_manifest(tmp_path, "../r3")


def test_the_manifest_is_strict():
    with pytest.raises(ValidationError, match="Extra inputs"):
        _manifest(extra_field=1)
    with pytest.raises(ValidationError, match="greater than or equal to 2"):
        _manifest(days=1)
    with pytest.raises(ValidationError, match="frozen"):
        _manifest().seed = 8


def test_empty_label_days_are_recorded():
    assert _manifest().empty_days == []  # manifests written before the field still load
    assert _manifest(empty_days=["2026-01-04"]).empty_days == ["2026-01-04"]
