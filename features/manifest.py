"""The manifest of a training set: what it holds and where it came from.

`jobs.training_set` writes it last (a run without a manifest is incomplete); the trainer,
evaluation, the gates and publication read it. Typed, so a missing or mistyped field is a
clear error at load time, not a KeyError deep in training.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from features.files import atomic_write_text

TRAINING_SETS = "training_sets"
MANIFEST_FILE = "manifest.json"


class SplitCounts(BaseModel):
    rows: int = Field(ge=0)
    positive_rate: float | None = None


class Counts(BaseModel):
    train: SplitCounts
    validation: SplitCounts
    candidates: int = Field(ge=0)


class Tables(BaseModel):
    """Table folders of the run, relative to the lake root."""

    train: str
    validation: str
    candidates: str


class TrainingSetManifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    run_id: str
    end: str
    days: int = Field(ge=2)  # M label days
    window: int = Field(ge=1)  # N: the window of the profiles
    seed: int
    shards: int = Field(ge=1)
    train_days: list[str]
    # label days kept out of training: validation days choose (early stopping, tuning,
    # fusion weights), test days (`holdout_days`) judge (evaluation, the gate); both are in
    # the `validation` table, told apart by dt
    validation_days: list[str] = []
    holdout_days: list[str]
    # label days with zero labels (no sessions, or all in the dropped band): part of the
    # range, with no examples
    empty_days: list[str] = []
    tables: Tables
    format: str  # "delta" or "parquet"
    counts: Counts
    source_versions: dict[str, int | None]  # source table -> Delta version read
    # "job/day" -> token of each day record the set was built from (features.day_status):
    # a label day re-run since makes the set out of date
    inputs: dict[str, str] = {}
    vocabularies: dict[str, list[str]]  # raw string column -> sorted values seen

    def save(self, lake_root: Path | str) -> Path:
        return atomic_write_text(manifest_path(lake_root, self.run_id),
                                 self.model_dump_json(indent=2))


RUN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$"


def check_run_id(run_id: str) -> str:
    """`run_id` when it is a safe folder name (no separators, no `..`); ValueError else."""
    if not isinstance(run_id, str) or not re.match(RUN_ID_PATTERN, run_id) or ".." in run_id:
        raise ValueError(f"run id must match {RUN_ID_PATTERN} without '..', got {run_id!r}")
    return run_id


def run_folder(run_id: str) -> str:
    """The folder of a training set, relative to the lake root."""
    return f"{TRAINING_SETS}/{check_run_id(run_id)}"


def manifest_path(lake_root: Path | str, run_id: str) -> Path:
    return Path(lake_root) / run_folder(run_id) / MANIFEST_FILE


def out_of_date(lake_root: Path | str, manifest: TrainingSetManifest) -> list[str]:
    """The input days of `manifest` re-run (or made incomplete) since it was built, as
    "job day" strings; empty when the set is still what its inputs say."""
    from features.day_status import Ledger

    ledger = Ledger(lake_root)
    stale = []
    for input_key, token in sorted(manifest.inputs.items()):
        job, day = input_key.split("/", 1)
        if ledger.token(job, day) != token:
            stale.append(f"{job} {day}")
    return stale


def load_manifest(lake_root: Path | str, run_id: str) -> TrainingSetManifest:
    """The manifest of a complete training set; a one-line error when missing or invalid."""
    path = manifest_path(lake_root, run_id)
    if not path.is_file():
        raise FileNotFoundError(f"training set {run_id!r} is missing or incomplete: no {path}")
    try:
        return TrainingSetManifest.model_validate_json(path.read_text())
    except ValidationError as error:
        raise ValueError(f"invalid training set manifest {path}: "
                         f"{error.errors()[0]['loc']}: {error.errors()[0]['msg']}") from None
