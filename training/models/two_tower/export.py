"""Export of the two-tower model: each tower a SavedModel whose serving signature takes raw
feature columns, the candidates' anchor embeddings, and a parity sample for the gate.

Layout (TF Serving; publication adds the version folder):
  <export>/user_tower/                       SavedModel
  <export>/anchor_tower/                     SavedModel + anchor_embeddings.parquet
  <export>/parity_sample.json                inputs and in-memory embeddings of a few rows
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import tensorflow as tf

from features.files import atomic_write_text
from training.models.two_tower.encoder import RawFeatureEncoder
from training.models.two_tower.features import Vocabularies, raw_columns
from training.models.two_tower.towers import Tower, TowerSpec
from training.pipeline import column_signature
from training.reader import TrainingSet

TOWERS = ("anchor_tower", "user_tower")  # published in this order: anchors index first
EMBEDDINGS = "anchor_embeddings.parquet"
PARITY = "parity_sample.json"
PARITY_ROWS = 8


class ServingTower(tf.Module):
    """A tower behind its raw-feature encoder: serve(raw columns) -> {"embedding": [B, D]}.

    `coordinate` (warm, cold), when given, appends one value to every embedding: `warm` for
    a row with behaviour, `cold` for one without (preference mask 0). The cold-anchor offset
    is (0, offset) on the anchor tower and (1, 1) on the user tower, so the dot product adds
    the offset to every cold anchor's score. `memory_scale` multiplies the memory part (the
    coordinates after the MLP's): the user tower's carries the chosen memory scale.
    """

    def __init__(self, tower: Tower, encoder: RawFeatureEncoder, signature: dict,
                 coordinate: tuple[float, float] | None = None,
                 memory_scale: float = 1.0) -> None:
        super().__init__()
        self.tower, self.encoder = tower, encoder
        self.coordinate = coordinate
        self.memory_scale = float(memory_scale)
        self.specs = signature
        self.columns = sorted(signature)
        self.serve = tf.function(self._serve, input_signature=[signature])

    def __call__(self, raw: dict) -> dict:
        return self.serve(raw)

    def _serve(self, raw: dict) -> dict:
        features, mask = self.encoder(raw)
        embedding = self.tower(features, training=False, preference_mask=mask)
        if self.memory_scale != 1.0:
            d = self.tower.output_dim
            embedding = tf.concat([embedding[:, :d], self.memory_scale * embedding[:, d:]],
                                  axis=1)
        if self.coordinate is not None:
            warm, cold = self.coordinate
            extra = warm * mask + cold * (1.0 - mask)
            embedding = tf.concat([embedding, extra[:, tf.newaxis]], axis=1)
        return {"embedding": embedding}


class LoadedTower:
    """A reloaded tower: call it with a dict of raw columns, like `ServingTower.serve`."""

    def __init__(self, path: Path) -> None:
        self.module = tf.saved_model.load(str(path))  # keeps the signature's variables alive
        self.signature = self.module.signatures["serving_default"]
        self.specs = self.signature.structured_input_signature[1]
        self.columns = sorted(self.specs)

    def __call__(self, raw: dict) -> dict:
        return self.signature(**raw)


def embed(tower: ServingTower | LoadedTower, rows: dict) -> np.ndarray:
    """`[rows, D]` embeddings of numpy (or list) columns, each cast to its signature's dtype."""
    raw = {c: tf.constant(np.asarray(rows[c]), dtype=spec.dtype)
           for c, spec in tower.specs.items()}
    return tower(raw)["embedding"].numpy()


def load_towers(model_dir: Path) -> dict[str, LoadedTower]:
    """The exported (or published) towers of `model_dir`, by name."""
    return {name: LoadedTower(Path(model_dir) / name) for name in TOWERS}


def _plain(value):
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot serialise {type(value)}")


def export_towers(towers: dict[str, Tower], specs: dict[str, TowerSpec], vocab: Vocabularies,
                  data: TrainingSet, out: Path, cold_offset: float = 0.0,
                  memory_scale: float = 1.0) -> dict[str, ServingTower]:
    """Write both SavedModels, the candidates' embeddings and the parity sample to `out`;
    each embedding ends with the cold-anchor offset's coordinate, and the user tower's
    memory part is scaled by `memory_scale` (see ServingTower)."""
    out.mkdir(parents=True, exist_ok=True)
    schema = data.schema("train")
    coordinates = {"user_tower": (1.0, 1.0), "anchor_tower": (0.0, float(cold_offset))}
    serving = {}
    for name in TOWERS:
        columns = raw_columns(specs[name])
        serving[name] = ServingTower(towers[name], RawFeatureEncoder(specs[name], vocab),
                                     column_signature(columns, schema, None),
                                     coordinates[name],
                                     memory_scale if name == "user_tower" else 1.0)
        tf.saved_model.save(serving[name], str(out / name), signatures={
            "serving_default": serving[name].serve.get_concrete_function()})

    anchor_columns = raw_columns(specs["anchor_tower"])
    candidates = data.read("candidates", [*anchor_columns, "dt"], vocab.id_list_width)
    vectors = embed(serving["anchor_tower"], candidates)
    pq.write_table(pa.table({"anchor_id": candidates["anchor_id"], "dt": candidates["dt"],
                             "embedding": list(vectors.astype(np.float32))}),
                   out / "anchor_tower" / EMBEDDINGS)

    user_columns = raw_columns(specs["user_tower"])
    sample = data.read("train", user_columns, vocab.id_list_width, limit=PARITY_ROWS)
    parity = {
        "user_inputs": {c: sample[c].tolist() for c in user_columns},
        "user_embeddings": embed(serving["user_tower"], sample).tolist(),
        "anchor_inputs": {c: candidates[c][:PARITY_ROWS].tolist() for c in anchor_columns},
        "anchor_embeddings": vectors[:PARITY_ROWS].tolist(),
    }
    atomic_write_text(out / PARITY, json.dumps(parity, default=_plain))
    return serving
