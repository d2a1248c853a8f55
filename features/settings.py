"""One typed settings object for every entry point: defaults < file < environment < flags.

Jobs, the trainer and the DAGs read their roots and feature settings from here, so an
environment variable means the same thing everywhere and a bad value is one clear error.
The file (`--config` or $PIPELINE_CONFIG) is TOML or JSON with the same field names.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from features.rules import (
    DEFAULT_HISTORY_DAYS,
    DEFAULT_HISTORY_K,
    DEFAULT_LAST_K,
    DEFAULT_WINDOW_DAYS,
)

# Field -> environment variable (the names the README documents).
ENVIRONMENT = {
    "lake_root": "LAKE_ROOT",
    "landing_root": "LANDING_ROOT",
    "models_root": "MODELS_ROOT",
    "runs_root": "TRAINING_RUNS_ROOT",
    "window_days": "FEATURE_WINDOW_DAYS",
    "last_k": "FEATURE_LAST_K",
    "history_days": "FEATURE_HISTORY_DAYS",
    "history_k": "FEATURE_HISTORY_K",
}
CONFIG_ENV = "PIPELINE_CONFIG"

# A root given as a URI: `scheme://...`, or `file:` in any form.
_URI = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.-]*://|file:)", re.IGNORECASE)
OBJECT_STORE_SCHEMES = ("s3", "s3a", "s3n", "gs", "abfs", "abfss", "wasb", "wasbs", "hdfs")


def local_root(value: str | Path) -> str:
    """A root as a local path: `file:///abs/path` (or `file://localhost/...`) is that path;
    a plain path is kept. Any other URI is a one-line ValueError: an object store cannot be
    a root yet, since the day ledger, manifests and staging files are written with local
    file I/O beside the tables (a bucket mounted as a folder works)."""
    text = str(value).strip()
    if not _URI.match(text):
        return text
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme in OBJECT_STORE_SCHEMES:
        raise ValueError(f"object-store roots such as {text!r} are not supported: the day "
                         f"ledger and manifests need a file system; mount the bucket and "
                         f"give its folder")
    if scheme != "file":
        raise ValueError(f"a root is a folder or a file:// URI, got {text!r}")
    if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
        raise ValueError(f"a file:// root must name an absolute folder on this machine "
                         f"(file:///path), got {text!r}")
    if parts.query or parts.fragment:
        raise ValueError(f"a file:// root may not have a query or fragment, got {text!r}")
    return unquote(parts.path)


class Settings(BaseModel):
    """Where the pipeline's data lives and the feature settings shared by its jobs."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    lake_root: Path = Path("./lake")
    landing_root: Path = Path("./landing")
    models_root: Path = Path("./models")
    runs_root: Path = Path("./training_runs")
    window_days: int = Field(DEFAULT_WINDOW_DAYS, ge=1, le=365)  # N: daily-stats days per profile
    last_k: int = Field(DEFAULT_LAST_K, ge=1, le=200)  # anchors kept in a user's recent list
    history_days: int = Field(DEFAULT_HISTORY_DAYS, ge=1, le=730)  # H: a profile's long history
    history_k: int = Field(DEFAULT_HISTORY_K, ge=1, le=200)  # anchors kept in a user's long history

    @field_validator("lake_root", "landing_root", "models_root", "runs_root", mode="before")
    @classmethod
    def _uri(cls, value: Any) -> Any:
        is_uri = isinstance(value, str) and _URI.match(value.strip())
        return local_root(value) if is_uri else value

    @field_validator("lake_root", "landing_root", "models_root", "runs_root")
    @classmethod
    def _root(cls, value: Path) -> Path:
        text = str(value).strip()
        if not text:
            raise ValueError("a root folder may not be empty")
        resolved = Path(text).expanduser().resolve()
        if resolved == Path(resolved.anchor):
            raise ValueError(f"a root folder may not be the file system root, got {text!r}")
        return resolved


def _read_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ValueError(f"settings file {path} does not exist")
    try:
        if path.suffix == ".toml":
            return tomllib.loads(path.read_text())
        return json.loads(path.read_text())
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"settings file {path} is not valid: {error}") from None


def load_settings(config: str | Path | None = None, env: Mapping[str, str] | None = None,
                  **flags: Any) -> Settings:
    """Settings from defaults, then the file, then the environment, then `flags` (None
    flags are ignored). Any bad value is a ValueError naming the field and its source."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    config = config or env.get(CONFIG_ENV)
    if config:
        for key, value in _read_file(Path(config)).items():
            values[key], sources[key] = value, f"file {config}"
    for key, name in ENVIRONMENT.items():
        if env.get(name):
            values[key], sources[key] = env[name], f"${name}"
    for key, value in flags.items():
        if value is not None:
            values[key], sources[key] = value, "flag"
    try:
        return Settings(**values)
    except ValidationError as error:
        first = error.errors()[0]
        key = str(first["loc"][0]) if first["loc"] else "?"
        raise ValueError(f"setting {key} (from {sources.get(key, 'defaults')}): "
                         f"{first['msg']}") from None
