"""The two-tower DropoutNet retrieval model, registered as "two_tower".

Two towers (user, anchor) over content and preference features; preference groups are
dropped at random in training so cold users and anchors still embed well; trained with an
in-batch softmax (rolled negatives, logQ, accidental hits removed) plus pairwise and
pointwise terms; exported as one SavedModel per tower taking raw feature columns.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from training.config import LoopConfig
from training.models import register_model
from training.models.base import Model
from training.models.two_tower.config import TwoTowerConfig
from training.reader import Columns, TrainingSet


class TwoTowerScorer:
    """Dot product of the user and anchor embeddings of an export (or a published version):
    their cosine plus the memory channel and the cold-anchor offset."""

    def __init__(self, export_dir: Path) -> None:
        from training.models.two_tower.export import load_towers

        self.towers = load_towers(export_dir)
        self.finite = True  # false once any embedding came out NaN or infinite

    def embed(self, tower: str, rows: Columns) -> np.ndarray:
        from training.models.two_tower.export import embed

        vectors = embed(self.towers[tower], rows)
        self.finite = self.finite and bool(np.isfinite(vectors).all())
        return vectors

    def score(self, day: str, users: Columns, anchors: Columns) -> np.ndarray:
        return self.embed("user_tower", users) @ self.embed("anchor_tower", anchors).T


@register_model
class TwoTower(Model):
    name = "two_tower"
    config_class = TwoTowerConfig

    def train(self, data: TrainingSet, out: Path, config: TwoTowerConfig, loop: LoopConfig,
              workers: int = 1, on_epoch=None) -> dict:
        from training.loop import run_loop
        from training.models.two_tower import cold_offset, memory_scale
        from training.models.two_tower.export import export_towers
        from training.models.two_tower.trainable import TwoTowerTrainable, prepare
        from training.models.two_tower.validation import InMemoryScorer, make_validator

        prepared = prepare(data, config)
        validate = make_validator(data, prepared.columns, prepared.vocab.id_list_width)
        result = run_loop(lambda replica_batch: TwoTowerTrainable(prepared, config, loop.seed,
                                                                  replica_batch),
                          data.files("train"), out, loop, validate, on_epoch)
        if result.chief:
            trainable, days = result.trainable, validate.days if validate else []
            # the validation days embedded once, for both choices: (MLP, memory) scores
            scorer = InMemoryScorer(trainable)
            parts = [scorer.parts(d.users, d.anchors) for d in days]
            scale = memory_scale.fit_on_validation(parts, days, config.memory_scale)
            offset = cold_offset.fit_on_validation(
                [mlp + scale["scale"] * memory for mlp, memory in parts], days, config.gamma,
                config.cold_anchor_offset)
            result.summary.update(memory_scale=scale, cold_anchor_offset=offset)
            export_towers(trainable.towers(), prepared.specs, prepared.vocab, data,
                          self.export_dir(out), offset["offset"], scale["scale"])
        return result.summary

    def load(self, export_dir: Path) -> TwoTowerScorer:
        return TwoTowerScorer(export_dir)

    def artifacts(self, export_dir: Path) -> dict[str, Path]:
        from training.models.two_tower.export import TOWERS

        return {name: Path(export_dir) / name for name in TOWERS}

    def checks(self, export_dir: Path) -> list[dict]:
        """Finite embeddings, and the reloaded SavedModels reproduce the in-memory ones."""
        import pyarrow.parquet as pq

        from training.model_gate import finite_check, parity_checks
        from training.models.two_tower.export import EMBEDDINGS, PARITY, embed, load_towers

        export_dir = Path(export_dir)
        sample = json.loads((export_dir / PARITY).read_text())
        stored = pq.read_table(export_dir / "anchor_tower" / EMBEDDINGS,
                               columns=["embedding"]).column("embedding").to_pylist()
        towers = load_towers(export_dir)
        reloaded = {}
        for side in ("user", "anchor"):
            tower = towers[f"{side}_tower"]
            missing = sorted(set(tower.specs) - set(sample[f"{side}_inputs"]))
            if missing:
                raise ValueError(f"parity sample lacks serving inputs {missing}")
            reloaded[side] = embed(tower, sample[f"{side}_inputs"])
        return [finite_check(f"finite[{EMBEDDINGS}]", stored),
                *[finite_check(f"finite[parity_sample.{s}]", sample[f"{s}_embeddings"])
                  for s in ("user", "anchor")],
                *[finite_check(f"finite[reloaded.{s}]", reloaded[s])
                  for s in ("user", "anchor")],
                *parity_checks({f"{s}_tower": sample[f"{s}_embeddings"] for s in reloaded},
                               {f"{s}_tower": reloaded[s] for s in reloaded})]
