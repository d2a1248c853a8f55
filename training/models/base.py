"""The model seam: what evaluation, the gates, publication and the DAGs know of a model.

A *scorer* ranks candidate anchors for users (`score(day, users, anchors) -> [U, A]`).
A *baseline* is a scorer made from the training set alone (popularity, random, the
simulator's oracle); a *model* is trained, exported, reloaded as a scorer and published as
a list of artifact folders. The two-tower model is one model among others: nothing outside
its package knows it has towers (the shape of `implicit`'s recommenders and TFRS's Model).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
from pydantic import BaseModel

from training.reader import Columns, TrainingSet


class Scorer(Protocol):
    def score(self, day: str, users: Columns, anchors: Columns) -> np.ndarray:
        """Scores `[len(users["user_id"]), len(anchors["anchor_id"])]`, higher = better.

        Args:
          day: the label day being ranked (YYYY-MM-DD).
          users: example columns of the users (`user_id`, `user_*`), one row per user.
          anchors: candidate columns (`anchor_id`, `anchor_*`), one row per live anchor.
        """
        ...


@dataclass(frozen=True)
class ScoringContext:
    """What a baseline may build itself from."""

    training_set: TrainingSet
    landing_root: Path | None = None  # the simulator's ground truth, when there is one
    seed: int = 0


BaselineFactory = Callable[[ScoringContext], Scorer | None]  # None: not applicable here


class Model(ABC):
    """A trainable, exportable, publishable model kind, registered by `name`."""

    name: ClassVar[str]
    config_class: ClassVar[type[BaseModel]]  # the model's own settings (pydantic)

    @abstractmethod
    def train(self, data: TrainingSet, out: Path, config: BaseModel, loop: Any,
              workers: int = 1) -> dict:
        """Train on `data`, write checkpoints, history.json and the export under `out`;
        returns a JSON-able summary. `loop` is a `training.config.LoopConfig`."""

    def export_dir(self, out: Path) -> Path:
        """Where `train(..., out)` leaves the export."""
        return Path(out) / "export"

    @abstractmethod
    def load(self, export_dir: Path) -> Scorer:
        """The scorer of an export (or of a published version laid out the same way)."""

    @abstractmethod
    def artifacts(self, export_dir: Path) -> dict[str, Path]:
        """Published name -> folder of the export; each becomes `<models>/<name>/<version>/`."""

    def checks(self, export_dir: Path) -> list[dict]:
        """Model-specific gate checks of an export (reload parity, finite outputs)."""
        return []
