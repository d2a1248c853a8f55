"""Settings of the training loop, shared by every model trained with `training.loop`.

A model's own settings (sizes, losses, dropout) live in its package; `split_settings`
sends each flat override to the loop or to the model, so a partial config file or a DAG
param names fields without saying whose they are.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from features.checks import config_from

Strategy = Literal["auto", "default", "mirrored", "multi_worker"]
STRATEGIES = ("auto", "default", "mirrored", "multi_worker")
# Keras dtype policies: the variables stay float32; "mixed_*" computes the towers in 16 bits
Precision = Literal["float32", "mixed_float16", "mixed_bfloat16"]
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


class LoopConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    batch_size: int = Field(1024, ge=2)  # global batch; each replica takes its share
    # at most this many passes; with validation days, training stops earlier once `monitor`
    # has not improved for `patience` epochs, and the best epoch's weights are kept
    epochs: int = Field(20, ge=1, le=1000)
    patience: int = Field(2, ge=0, le=100)  # 0: no early stopping
    monitor: str = "val_recall@50"  # a validation metric, higher is better
    min_delta: float = Field(0.001, ge=0)  # a smaller gain of `monitor` is no improvement
    # learning-rate schedule: multiplied by this after each epoch that did not improve
    # `monitor` (1: constant)
    lr_decay: float = Field(0.5, gt=0, le=1)
    max_steps: int | None = Field(None, ge=1)  # stop early (tests, smoke runs)
    learning_rate: float = Field(2e-3, gt=0, le=1)
    strategy: Strategy = "auto"  # auto: mirrored when GPUs are visible, else one device
    seed: int = 7
    log_every: int = Field(50, ge=1)
    # mixed_float16 adds dynamic loss scaling; losses and L2 normalisation stay float32
    precision: Precision = "float32"
    xla: StrictBool = False  # compile forward + backward with XLA (jit_compile)
    # stochastic weight averaging: average the weights of the last N epochs at the end (kept
    # when validation scores the average no lower than the early-stopping epoch); 0: off
    swa_epochs: int = Field(0, ge=0, le=100)


def split_settings(overrides: Mapping[str, Any], model_class: type[BaseModel]
                   ) -> tuple[LoopConfig, BaseModel]:
    """(loop, model) settings from defaults plus flat `overrides`; an unknown name or a bad
    value is a one-line ValueError. A model that wraps another (`nested_settings = (field,
    inner config class)`, e.g. fusion's two-tower component) takes the inner model's flat
    names too, into that field (a name given inside the field wins)."""
    loop_fields, model_fields = set(LoopConfig.model_fields), set(model_class.model_fields)
    overrides = dict(overrides)
    nested = getattr(model_class, "nested_settings", None)
    if nested:
        field, inner = nested
        routed = {k: overrides.pop(k) for k in list(overrides)
                  if k in set(inner.model_fields) - loop_fields - model_fields}
        if routed:
            overrides[field] = {**routed, **dict(overrides.get(field) or {})}
    unknown = sorted(set(overrides) - loop_fields - model_fields)
    if unknown:
        raise ValueError(f"unknown training settings {unknown}; known: "
                         f"{sorted(loop_fields | model_fields)}")
    loop = config_from(LoopConfig, {k: v for k, v in overrides.items() if k in loop_fields})
    model = config_from(model_class, {k: v for k, v in overrides.items() if k in model_fields})
    return loop, model


def read_settings_file(path: Path | str) -> dict[str, Any]:
    """Flat settings from a JSON file (a partial file is fine: defaults fill the rest)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"training settings file {path}: {error}") from None
    if not isinstance(data, dict):
        raise ValueError(f"training settings file {path} must hold a JSON object")
    # a saved run config nests {"model": name, "loop": {...}, "params": {...}}
    if "loop" in data or "params" in data:
        return {**data.get("loop", {}), **data.get("params", {})}
    return data


def save_settings(path: Path, model: str, loop: LoopConfig, params: BaseModel) -> None:
    from features.files import atomic_write_json

    atomic_write_json(path, {"model": model, "loop": loop.model_dump(),
                             "params": params.model_dump()})
