"""Gate reports: named checks with value, threshold and status, and a verdict over them.

Engine-free, shared by the data gate (`jobs.data_gate`) and the model gate
(`training.model_gate`). A report is plain JSON: the workflow fails a run when `passed` is
false, and the report says which check failed and why.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from features.files import atomic_write_json

PASS, FAIL, SKIP, WARN = "pass", "fail", "skip", "warn"  # warn: flagged, does not fail
ConfigT = TypeVar("ConfigT", bound=BaseModel)


def check(name: str, status: str, value: Any = None, threshold: Any = None,
          note: str = "") -> dict:
    """One line of a gate report."""
    return {"name": name, "status": status, "value": value, "threshold": threshold,
            "note": note}


def _missing(value: float | None) -> bool:
    return value is None or math.isnan(value)


def at_least(name: str, value: float | None, minimum: float, note: str = "") -> dict:
    ok = not _missing(value) and value >= minimum
    return check(name, PASS if ok else FAIL, value, f">= {minimum}", note)


def at_most(name: str, value: float | None, maximum: float, note: str = "") -> dict:
    ok = not _missing(value) and value <= maximum
    return check(name, PASS if ok else FAIL, value, f"<= {maximum}", note)


def gate_report(gate: str, checks: Sequence[dict], **context: Any) -> dict:
    """The report of a gate: passed when no check failed (skipped checks say why; warned
    checks are listed under `warned`, flagged for a person, not failing the gate)."""
    failed = [c["name"] for c in checks if c["status"] == FAIL]
    warned = [c["name"] for c in checks if c["status"] == WARN]
    return {"gate": gate, "passed": not failed, "failed": failed,
            **({"warned": warned} if warned else {}), **context, "checks": list(checks)}


def failure_summary(report: Mapping[str, Any], limit: int = 10) -> str:
    """One line per failed check, for the task log and the exception message."""
    lines = [f"{c['name']}: value {c['value']} not {c['threshold']}"
             + (f" ({c['note']})" if c["note"] else "")
             for c in report["checks"] if c["status"] == FAIL]
    more = f"\n... and {len(lines) - limit} more" if len(lines) > limit else ""
    return (f"{report['gate']} failed {len(lines)} of {len(report['checks'])} checks:\n"
            + "\n".join(lines[:limit]) + more)


def write_report(report: Mapping[str, Any], path: Path) -> Path:
    return atomic_write_json(path, report)


def config_from(cls: type[ConfigT], overrides: Mapping[str, Any] | None = None) -> ConfigT:
    """`cls` (a pydantic model) with `overrides` applied; unknown names, wrong types and
    out-of-range values are one-line ValueErrors."""
    try:
        return cls.model_validate(dict(overrides or {}))
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                             for e in error.errors())
        raise ValueError(f"{cls.__name__}: {problems}") from None
