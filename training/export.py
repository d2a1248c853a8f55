"""Export: each tower as a SavedModel whose serving signature takes raw feature columns,
the anchor embedding table of the evaluation candidates, and a parity sample.

Layout (TF Serving): <export>/user_tower/, <export>/anchor_tower/ (a version folder is added
at publication), anchor_embeddings.parquet, parity_sample.json.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import tensorflow as tf

from training.inputs import (
    RawFeatureEncoder,
    column_signature,
    raw_columns,
    read_batches,
    shard_files,
)
from training.towers import Tower, TowerSpec

PARITY_ROWS = 8


class ServingTower(tf.Module):
    """A tower behind its raw-feature encoder: serve(raw columns) -> {"embedding": [B, D]}."""

    def __init__(self, tower: Tower, encoder: RawFeatureEncoder, signature: dict) -> None:
        super().__init__()
        self.tower, self.encoder = tower, encoder
        self.specs = signature
        self.columns = sorted(signature)
        self.serve = tf.function(self._serve, input_signature=[signature])

    def __call__(self, raw: dict) -> dict:
        return self.serve(raw)

    def _serve(self, raw: dict) -> dict:
        features, mask = self.encoder(raw)
        return {"embedding": self.tower(features, training=False, preference_mask=mask)}


def serving_towers(model, data, user_spec: TowerSpec, anchor_spec: TowerSpec,
                   schema: pa.Schema) -> dict[str, ServingTower]:
    towers = {}
    for name, tower, spec in (("user_tower", model.user_tower, user_spec),
                              ("anchor_tower", model.anchor_tower, anchor_spec)):
        columns = raw_columns(spec)
        towers[name] = ServingTower(tower, RawFeatureEncoder(spec, data.vocab),
                                    column_signature(columns, schema, data.vocab.last_k))
    return towers


def embed(tower, rows: dict[str, np.ndarray]) -> np.ndarray:
    """Embed numpy (or list) columns with a ServingTower or LoadedTower, converting each column
    to the dtype its signature declares."""
    raw = {c: tf.constant(np.asarray(rows[c]), dtype=spec.dtype)
           for c, spec in tower.specs.items()}
    return tower(raw)["embedding"].numpy()


def _read_all(path: Path, fmt: str, columns: list[str], last_k: int) -> dict[str, np.ndarray]:
    batches = list(read_batches(shard_files(path, fmt), columns, 1 << 20, 0, 0, last_k,
                                drop_remainder=False, shuffle_files=False))
    return {c: np.concatenate([b[c] for b in batches]) for c in columns} if batches else {}


def export_model(model, data, user_spec: TowerSpec, anchor_spec: TowerSpec, out: Path,
                 lake_root: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    fmt, tables = data.manifest["format"], data.manifest["tables"]
    schema = pq.read_schema(data.train_files[0])
    towers = serving_towers(model, data, user_spec, anchor_spec, schema)
    for name, module in towers.items():
        tf.saved_model.save(module, str(out / name),
                            signatures={"serving_default": module.serve.get_concrete_function()})

    anchor_columns = raw_columns(anchor_spec)
    candidates = _read_all(Path(lake_root) / tables["candidates"], fmt,
                           [*anchor_columns, "dt"], data.vocab.last_k)
    vectors = embed(towers["anchor_tower"], candidates)
    pq.write_table(pa.table({"anchor_id": candidates["anchor_id"], "dt": candidates["dt"],
                             "embedding": list(vectors.astype(np.float32))}),
                   out / "anchor_embeddings.parquet")

    user_columns = raw_columns(user_spec)
    sample = next(read_batches(data.train_files[:1], user_columns, PARITY_ROWS, 0, 0,
                               data.vocab.last_k, drop_remainder=False, shuffle_files=False))
    parity = {
        "user_inputs": {c: sample[c].tolist() for c in user_columns},
        "user_embeddings": embed(towers["user_tower"], sample).tolist(),
        "anchor_inputs": {c: candidates[c][:PARITY_ROWS].tolist() for c in anchor_columns},
        "anchor_embeddings": vectors[:PARITY_ROWS].tolist(),
    }
    (out / "parity_sample.json").write_text(json.dumps(parity, default=_plain))


def _plain(value):
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot serialise {type(value)}")


class LoadedTower:
    """A reloaded tower: call it with a dict of raw columns, like `ServingTower.serve`."""

    def __init__(self, path: Path) -> None:
        self.module = tf.saved_model.load(str(path))  # keeps the signature's variables alive
        self.signature = self.module.signatures["serving_default"]
        self.specs = self.signature.structured_input_signature[1]
        self.columns = sorted(self.specs)

    def __call__(self, raw: dict) -> dict:
        return self.signature(**raw)


def load_serving(model_dir: Path) -> dict[str, LoadedTower]:
    """The exported towers of `model_dir`: {"user_tower": ..., "anchor_tower": ...}."""
    return {name: LoadedTower(Path(model_dir) / name) for name in ("user_tower", "anchor_tower")}
