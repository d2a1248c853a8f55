"""Publish a blessed model: `<models_root>/<tower>/<version>/` for each tower (the layout TF
Serving watches), integer versions from 1, each with manifest.json and report.html.

A version appears atomically: every file is staged under a hidden folder of the models root
(same file system), flushed to disk, then each tower folder is renamed into place, and a
version counts only when every tower has it with its manifest (`latest_version`). A crash
or kill mid-copy leaves only a hidden staging folder, which the next publication removes;
a crash between the tower renames leaves one tower ahead, which the next publication
withdraws. Version numbers are never reused. Publishing a run already published is a no-op.
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

log = logging.getLogger(__name__)

TOWERS = ("anchor_tower", "user_tower")  # renamed in this order: anchors index first
MANIFEST = "manifest.json"
REPORT = "report.html"
HIDDEN = "."  # staging and withdrawn folders start with a dot: ignored by TF Serving
_MARK = f"{HIDDEN}last_version"  # the highest number a tower folder ever showed


@dataclass(frozen=True)
class Publication:
    version: int
    created: bool  # False: the run was already published as `version`
    paths: dict[str, Path]


def _versions_of(tower_dir: Path) -> set[int]:
    if not tower_dir.is_dir():
        return set()
    return {int(p.name) for p in tower_dir.iterdir() if p.name.isdigit() and p.is_dir()}


def complete_versions(models_root: Path) -> list[int]:
    """Versions every tower has, each with its manifest; staging folders never count."""
    root = Path(models_root)
    common = set.intersection(*(_versions_of(root / t) for t in TOWERS))
    return sorted(v for v in common if all((root / t / str(v) / MANIFEST).is_file()
                                           for t in TOWERS))


def latest_version(models_root: Path) -> int | None:
    """The newest complete version, or None when nothing was published."""
    versions = complete_versions(models_root)
    return versions[-1] if versions else None


def read_manifest(models_root: Path, version: int, tower: str = "user_tower") -> dict:
    return json.loads((Path(models_root) / tower / str(version) / MANIFEST).read_text())


def find_run(models_root: Path, run_id: str) -> int | None:
    """The complete version published from `run_id`, if any."""
    for version in complete_versions(models_root):
        if read_manifest(models_root, version).get("run_id") == run_id:
            return version
    return None


@contextlib.contextmanager
def champion_view(models_root: Path, version: int, into: Path) -> Iterator[Path]:
    """A folder with user_tower/ and anchor_tower/ of a published version (symlinks), the
    shape training.evaluate's `model_dir` takes."""
    view = Path(into) / f"champion-v{version}"
    view.mkdir(parents=True, exist_ok=True)
    for tower in TOWERS:
        link = view / tower
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to((Path(models_root) / tower / str(version)).resolve(),
                        target_is_directory=True)
    yield view


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


def _write_file(path: Path, text: str) -> None:
    with open(path, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


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
    incomplete = {t: sorted(_versions_of(models_root / t) - complete) for t in TOWERS}
    highest = max((v for vs in incomplete.values() for v in vs), default=0)
    if highest > _recorded(models_root):  # keep withdrawn numbers out of reuse
        _record_version(models_root, highest)
    for tower, versions in incomplete.items():
        for version in versions:
            log.warning("withdrawing incomplete version %s/%s", tower, version)
            _withdraw(models_root / tower / str(version))


def _next_version(models_root: Path) -> int:
    """One above every number a tower folder holds or ever held: a withdrawn half-renamed
    version may have been loaded by TF Serving, so its number is never reused."""
    used = set().union(*(_versions_of(models_root / t) for t in TOWERS))
    return max(max(used, default=0), _recorded(models_root)) + 1


def _recorded(models_root: Path) -> int:
    mark = models_root / _MARK
    return int(mark.read_text()) if mark.is_file() else 0


def _record_version(models_root: Path, version: int) -> None:
    tmp = models_root / f"{_MARK}.tmp"
    _write_file(tmp, str(version))
    os.replace(tmp, models_root / _MARK)


def publish(models_root: Path, export_dir: Path, run_id: str, manifest: Mapping[str, Any],
            published_at: str, report_html: Path | None = None) -> Publication:
    """Publish the towers of `export_dir` (user_tower/, anchor_tower/ SavedModels; also
    anchor_embeddings.parquet beside the anchor tower) as the next version.

    Args:
      manifest: run facts to record (source table versions, config, metrics, gate reports);
        version, run_id, published_at and code_version are added here.
      published_at: the publication time, recorded only (never used to pick data).
    """
    root = Path(models_root)
    root.mkdir(parents=True, exist_ok=True)
    with _publish_lock(root):
        _clean_up(root)
        existing = find_run(root, run_id)
        if existing is not None:
            log.info("run %s is already published as version %d: nothing to do", run_id,
                     existing)
            return Publication(existing, False, {t: root / t / str(existing) for t in TOWERS})
        version = _next_version(root)
        full = {**manifest, "version": version, "run_id": run_id,
                "published_at": published_at, "code_version": code_version(),
                "towers": list(TOWERS)}
        staging = root / f"{HIDDEN}staging-{version}-{uuid.uuid4().hex[:8]}"
        staging.mkdir()
        for tower in TOWERS:
            _stage_tower(export_dir, staging / tower, tower, full, report_html)
        _fsync_dir(staging)
        _record_version(root, version)  # from here on the number may become visible
        for tower in TOWERS:  # each rename is atomic; the version counts once all are done
            (root / tower).mkdir(exist_ok=True)
            os.rename(staging / tower, root / tower / str(version))
            _fsync_dir(root / tower)
        staging.rmdir()
        log.info("published run %s as version %d under %s", run_id, version, root)
        return Publication(version, True, {t: root / t / str(version) for t in TOWERS})


def _stage_tower(export_dir: Path, target: Path, tower: str, manifest: Mapping[str, Any],
                 report_html: Path | None) -> None:
    source = Path(export_dir) / tower
    if not (source / "saved_model.pb").is_file():
        raise FileNotFoundError(f"no SavedModel to publish at {source}")
    _copy_tree(source, target)
    if tower == "anchor_tower" and (Path(export_dir) / "anchor_embeddings.parquet").is_file():
        _copy_file(Path(export_dir) / "anchor_embeddings.parquet",
                   target / "anchor_embeddings.parquet")
    if report_html is not None:
        _copy_file(Path(report_html), target / REPORT)
    _write_file(target / MANIFEST, json.dumps(manifest, indent=2, default=str))  # last
    _fsync_dir(target)
