"""Every model and baseline, registered by name.

Adding one is adding a module to this package that calls `register_model` or
`register_baseline` at import: `discover()` imports every module here, so evaluation,
the gates, publication and the DAGs find it without any other change.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable

from training.models.base import BaselineFactory, Model

_MODELS: dict[str, type[Model]] = {}
_BASELINES: dict[str, BaselineFactory] = {}
DEFAULT_MODEL = "two_tower"


def register_model(cls: type[Model]) -> type[Model]:
    _MODELS[cls.name] = cls
    return cls


def register_baseline(name: str) -> Callable[[BaselineFactory], BaselineFactory]:
    def wrap(factory: BaselineFactory) -> BaselineFactory:
        _BASELINES[name] = factory
        return factory

    return wrap


def discover() -> None:
    """Import every module of this package once (each registers itself)."""
    for info in pkgutil.iter_modules(__path__):
        if info.name != "base":
            importlib.import_module(f"{__name__}.{info.name}")


def model(name: str = DEFAULT_MODEL) -> Model:
    discover()
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; registered: {sorted(_MODELS)}")
    return _MODELS[name]()


def model_names() -> list[str]:
    discover()
    return sorted(_MODELS)


def baselines() -> dict[str, BaselineFactory]:
    discover()
    return dict(sorted(_BASELINES.items()))
