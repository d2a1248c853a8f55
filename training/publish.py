"""Publish a blessed model: `<models_root>/<artifact>/<version>/` for each artifact the
model lists (for the two-tower model, one SavedModel per tower: the layout TF Serving
watches), integer versions from 1, each with manifest.json and report.html.

A version appears atomically: every file is staged under a hidden folder of the models root
(same file system), flushed to disk, then each artifact folder is renamed into place, and a
version counts only when every artifact its manifest lists has it with its manifest
(`latest_version`). A crash or kill mid-copy leaves only a hidden staging folder, which the
next publication removes; a crash between the renames leaves one artifact ahead, which the
next publication withdraws. Version numbers are never reused. Publishing a run already
published is a no-op.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from features.files import atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
REPORT = "report.html"
HIDDEN = "."  # staging and withdrawn folders start with a dot: ignored by TF Serving
_MARK = f"{HIDDEN}last_version"  # the highest number ever shown


@dataclass(frozen=True)
class Publication:
    version: int
    created: bool  # False: the run was already published as `version`
    paths: dict[str, Path]


def _versions_of(folder: Path) -> set[int]:
    if not folder.is_dir():
        return set()
    return {int(p.name) for p in folder.iterdir() if p.name.isdigit() and p.is_dir()}


def artifact_folders(models_root: Path) -> list[Path]:
    """The artifact folders of the models root (hidden staging folders excluded)."""
    root = Path(models_root)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(HIDDEN))


def _listed_artifacts(models_root: Path, version: int) -> list[str] | None:
    """The artifacts a version's manifest lists, from any artifact folder that has it."""
    for folder in artifact_folders(models_root):
        path = folder / str(version) / MANIFEST
        if path.is_file():
            try:
                return list(json.loads(path.read_text())["artifacts"])
            except (ValueError, KeyError, TypeError):
                return None
    return None


def complete_versions(models_root: Path) -> list[int]:
    """Versions that every artifact listed in their manifest has, each with its manifest;
    staging folders never count."""
    root = Path(models_root)
    candidates = set().union(*(_versions_of(f) for f in artifact_folders(root)))
    complete = []
    for version in sorted(candidates):
        listed = _listed_artifacts(root, version)
        if listed and all((root / a / str(version) / MANIFEST).is_file() for a in listed):
            complete.append(version)
    return complete


def latest_version(models_root: Path) -> int | None:
    """The newest complete version, or None when nothing was published."""
    versions = complete_versions(models_root)
    return versions[-1] if versions else None


def read_manifest(models_root: Path, version: int) -> dict:
    """The manifest of a complete version."""
    first = _listed_artifacts(models_root, version)
    if not first:
        raise FileNotFoundError(f"no complete version {version} under {models_root}")
    return json.loads((Path(models_root) / first[0] / str(version) / MANIFEST).read_text())


def find_run(models_root: Path, run_id: str) -> int | None:
    """The complete version published from `run_id`, if any."""
    for version in complete_versions(models_root):
        if read_manifest(models_root, version).get("run_id") == run_id:
            return version
    return None


def version_view(models_root: Path, version: int, into: Path) -> Path:
    """A folder laid out like the model's export, its artifacts symlinked to a published
    version: what `Model.load` takes."""
    view = Path(into) / f"version-{version}"
    view.mkdir(parents=True, exist_ok=True)
    for artifact in read_manifest(models_root, version)["artifacts"]:
        link = view / artifact
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to((Path(models_root) / artifact / str(version)).resolve(),
                        target_is_directory=True)
    return view


def code_version(repo: Path | None = None) -> str | None:
    """The git commit of the code (with "+dirty" for uncommitted changes), if known."""
    repo = repo or Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], text=True,
                                capture_output=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain"], text=True,
                               capture_output=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")


# --- file system primitives -------------------------------------------------------------

def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy_file(src: Path, dst: Path) -> None:
    """Copy one file and flush it to disk (tests replace this to crash mid-copy)."""
    shutil.copy2(src, dst)
    with open(dst, "rb+") as handle:
        os.fsync(handle.fileno())


def _copy_tree(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True)
    for path in sorted(src.rglob("*")):
        target = dst / path.relative_to(src)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            _copy_file(path, target)
    for folder in sorted({p for p in dst.rglob("*") if p.is_dir()} | {dst}, reverse=True):
        _fsync_dir(folder)


def _withdraw(path: Path) -> None:
    """Hide a folder at once (rename), then delete it."""
    hidden = path.parent / f"{HIDDEN}withdrawn-{path.name}-{uuid.uuid4().hex[:8]}"
    os.rename(path, hidden)
    shutil.rmtree(hidden, ignore_errors=True)


@contextlib.contextmanager
def _publish_lock(models_root: Path) -> Iterator[None]:
    """One publisher at a time; the OS releases the lock of a killed process."""
    with open(models_root / f"{HIDDEN}publish.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _clean_up(models_root: Path) -> None:
    """Remove what failed publications left: staging folders and half-renamed versions."""
    for stale in models_root.glob(f"{HIDDEN}staging-*"):
        log.warning("removing staging folder of an interrupted publication: %s", stale)
        shutil.rmtree(stale, ignore_errors=True)
    complete = set(complete_versions(models_root))
    incomplete = {f: sorted(_versions_of(f) - complete) for f in artifact_folders(models_root)}
    highest = max((v for vs in incomplete.values() for v in vs), default=0)
    if highest > _recorded(models_root):  # keep withdrawn numbers out of reuse
        _record_version(models_root, highest)
    for folder, versions in incomplete.items():
        for version in versions:
            log.warning("withdrawing incomplete version %s/%s", folder.name, version)
            _withdraw(folder / str(version))


def _next_version(models_root: Path) -> int:
    """One above every number an artifact folder holds or ever held: a withdrawn half-renamed
    version may have been loaded by TF Serving, so its number is never reused."""
    used = set().union(*(_versions_of(f) for f in artifact_folders(models_root)))
    return max(max(used, default=0), _recorded(models_root)) + 1


def _recorded(models_root: Path) -> int:
    mark = models_root / _MARK
    return int(mark.read_text()) if mark.is_file() else 0


def _record_version(models_root: Path, version: int) -> None:
    atomic_write_text(models_root / _MARK, str(version), durable=True)


def publish(models_root: Path, artifacts: Mapping[str, Path], run_id: str,
            manifest: Mapping[str, Any], published_at: str,
            report_html: Path | None = None) -> Publication:
    """Publish each artifact folder (name -> folder, e.g. a model's `Model.artifacts`) as the
    next version, renamed into place in the mapping's order.

    Args:
      manifest: run facts to record (source table versions, config, metrics, gate reports);
        version, run_id, published_at, code_version and artifacts are added here.
      published_at: the publication time, recorded only (never used to pick data).
    """
    if not artifacts:
        raise ValueError("nothing to publish: the model listed no artifacts")
    for name, source in artifacts.items():
        if name.startswith(HIDDEN) or "/" in name or not Path(source).is_dir():
            raise FileNotFoundError(f"artifact {name!r}: no folder to publish at {source}")
    root = Path(models_root)
    root.mkdir(parents=True, exist_ok=True)
    with _publish_lock(root):
        _clean_up(root)
        existing = find_run(root, run_id)
        if existing is not None:
            log.info("run %s is already published as version %d: nothing to do", run_id,
                     existing)
            return Publication(existing, False, {a: root / a / str(existing) for a in artifacts})
        version = _next_version(root)
        full = {**manifest, "version": version, "run_id": run_id,
                "published_at": published_at, "code_version": code_version(),
                "artifacts": list(artifacts)}
        staging = root / f"{HIDDEN}staging-{version}-{uuid.uuid4().hex[:8]}"
        staging.mkdir()
        for name, source in artifacts.items():
            _stage(Path(source), staging / name, full, report_html)
        _fsync_dir(staging)
        _record_version(root, version)  # from here on the number may become visible
        for name in artifacts:  # each rename is atomic; the version counts once all are done
            (root / name).mkdir(exist_ok=True)
            os.rename(staging / name, root / name / str(version))
            _fsync_dir(root / name)
        staging.rmdir()
        log.info("published run %s as version %d under %s", run_id, version, root)
        return Publication(version, True, {a: root / a / str(version) for a in artifacts})


def _stage(source: Path, target: Path, manifest: Mapping[str, Any],
           report_html: Path | None) -> None:
    _copy_tree(source, target)
    if report_html is not None:
        _copy_file(Path(report_html), target / REPORT)
    atomic_write_json(target / MANIFEST, manifest, durable=True)  # last
    _fsync_dir(target)
