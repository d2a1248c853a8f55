"""Atomic file writes: readers see the old file or the whole new one, never half of it."""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO


@contextmanager
def atomic_open(path: Path | str, durable: bool = False) -> Iterator[BinaryIO]:
    """A binary handle on a temp file beside `path`, renamed over `path` on success.

    `durable` flushes the file to disk before the rename (publication needs it: a crash
    must not leave a renamed but empty file). On any error the temp file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; readers may run as another user
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path | str, text: str, durable: bool = False) -> Path:
    with atomic_open(path, durable) as handle:
        handle.write(text.encode("utf-8"))
    return Path(path)


def strict_json(value: Any) -> Any:
    """`value` with every NaN or infinite float replaced by None: strict JSON has no NaN."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    return value


def atomic_write_json(path: Path | str, value: Any, durable: bool = False) -> Path:
    """Strict JSON (NaN -> null), indented; other objects are written with str()."""
    text = json.dumps(strict_json(value), indent=2, default=str, allow_nan=False)
    return atomic_write_text(path, text, durable)
