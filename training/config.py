"""Training hyper-parameters: one frozen dataclass, defaults tuned on the simulator."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

STRATEGIES = ("auto", "default", "mirrored", "multi_worker")


@dataclass(frozen=True)
class TrainConfig:
    batch_size: int = 1024  # global batch; each replica takes batch_size / replicas rows
    epochs: int = 3
    max_steps: int | None = None  # stop early (tests, smoke runs)
    learning_rate: float = 2e-3
    embedding_dim: int = 32
    hidden_units: tuple[int, ...] = (128, 64)
    user_dropout_rate: float = 0.5  # DropoutNet: drop the whole preference group per example
    anchor_dropout_rate: float = 0.5
    num_negatives: int = 64  # K rolled in-batch negatives per positive
    margin: float = 0.1  # support-vector-guided softmax: pos' = pos - margin
    t: float = 1.2  # hard negatives become t*neg + t - 1
    gamma: float = 20.0  # logit scale
    softmax_weight: float = 1.0
    pairwise_weight: float = 0.2
    pointwise_weight: float = 0.5
    logq_correction: bool = True
    # subtract logq_weight * log q: 1 = full correction (warm anchors win, cold ones sink),
    # 0 = none (popular anchors sink); 0.5 measured best on the simulator
    logq_weight: float = 0.5
    remove_accidental_hits: bool = True
    last_k: int = 10
    strategy: str = "auto"
    seed: int = 7
    log_every: int = 50
    extra: dict = field(default_factory=dict)  # free-form notes recorded with the run

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        if self.batch_size < 2 or self.num_negatives < 1 or self.epochs < 1:
            raise ValueError("batch_size >= 2, num_negatives >= 1 and epochs >= 1 are required")

    def replace(self, **changes) -> TrainConfig:
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ValueError(f"unknown training settings: {sorted(unknown)}")
        if "hidden_units" in changes:
            changes["hidden_units"] = tuple(changes["hidden_units"])
        return dataclasses.replace(self, **changes)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(dataclasses.asdict(self), indent=2))

    @classmethod
    def load(cls, path: Path) -> TrainConfig:
        data = json.loads(path.read_text())
        data["hidden_units"] = tuple(data["hidden_units"])
        return cls(**data)
