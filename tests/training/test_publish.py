"""Publication: TF Serving layout with increasing versions, manifest and report in each, a
no-op for a run already published, and nothing visible from a publication that crashed or
was killed mid-copy (the previous version stays the newest, the next one succeeds)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from training import publish as pub
from training import release

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
TOWERS = ("anchor_tower", "user_tower")  # the two-tower model's artifacts, in rename order


def fake_export(root: Path, files_per_tower: int = 4) -> Path:
    """An export folder shaped like the two-tower model's (contents are not read here)."""
    for tower in TOWERS:
        (root / tower / "variables").mkdir(parents=True)
        (root / tower / "saved_model.pb").write_bytes(os.urandom(64))
        for i in range(files_per_tower):
            (root / tower / "variables" / f"part-{i}").write_bytes(os.urandom(1024))
    (root / "anchor_tower" / "anchor_embeddings.parquet").write_bytes(b"PAR1")
    return root


def artifacts(export: Path) -> dict[str, Path]:
    return {t: export / t for t in TOWERS}


@pytest.fixture()
def export(tmp_path):
    return fake_export(tmp_path / "export")


@pytest.fixture()
def report(tmp_path):
    path = tmp_path / "report.html"
    path.write_text("<html>report</html>")
    return path


def _publish(models: Path, export: Path, run_id: str, report: Path | None = None):
    return pub.publish(models, artifacts(export), run_id, {"metrics": {"auc": 0.7}},
                       published_at="2026-01-08T04:00:00+00:00", report_html=report)


def _visible(models: Path) -> dict[str, list[str]]:
    return {t: sorted(p.name for p in (models / t).iterdir()) for t in TOWERS
            if (models / t).is_dir()}


def test_versions_increase_from_1_with_manifest_and_report(tmp_path, export, report):
    models = tmp_path / "models"
    assert pub.latest_version(models) is None
    first = _publish(models, export, "run-a", report)
    second = _publish(models, export, "run-b", report)
    assert (first.version, first.created, second.version) == (1, True, 2)
    assert pub.latest_version(models) == 2
    assert _visible(models) == {"anchor_tower": ["1", "2"], "user_tower": ["1", "2"]}
    for tower in TOWERS:
        folder = models / tower / "2"
        manifest = json.loads((folder / "manifest.json").read_text())
        assert manifest["version"] == 2 and manifest["run_id"] == "run-b"
        assert manifest["published_at"] == "2026-01-08T04:00:00+00:00"
        assert manifest["metrics"] == {"auc": 0.7}
        assert manifest["code_version"]  # this checkout is a git repository
        assert manifest["artifacts"] == list(TOWERS)
        assert (folder / "report.html").read_text() == "<html>report</html>"
        assert (folder / "saved_model.pb").read_bytes() == \
            (export / tower / "saved_model.pb").read_bytes()
    assert (models / "anchor_tower" / "2" / "anchor_embeddings.parquet").is_file()
    assert not (models / "user_tower" / "2" / "anchor_embeddings.parquet").exists()


def test_publishing_the_same_run_again_is_a_no_op(tmp_path, export):
    models = tmp_path / "models"
    _publish(models, export, "run-a")
    before = (models / "user_tower" / "1" / "manifest.json").read_text()
    again = _publish(models, export, "run-a")
    assert (again.version, again.created) == (1, False)
    assert _visible(models) == {"anchor_tower": ["1"], "user_tower": ["1"]}
    assert (models / "user_tower" / "1" / "manifest.json").read_text() == before


def test_a_crash_mid_copy_leaves_no_visible_version(tmp_path, export, monkeypatch):
    models = tmp_path / "models"
    _publish(models, export, "run-a")
    real_copy, copied = pub._copy_file, []

    def copy_then_crash(src, dst):
        if len(copied) == 3:  # half-way through the first tower
            raise OSError("disk full")
        real_copy(src, dst)
        copied.append(dst)

    monkeypatch.setattr(pub, "_copy_file", copy_then_crash)
    with pytest.raises(OSError, match="disk full"):
        _publish(models, export, "run-b")
    assert copied  # it did stop half-way
    assert pub.latest_version(models) == 1
    assert _visible(models) == {"anchor_tower": ["1"], "user_tower": ["1"]}
    assert len(list(models.glob(".staging-*"))) == 1  # hidden: TF Serving skips dot folders

    monkeypatch.setattr(pub, "_copy_file", real_copy)
    assert _publish(models, export, "run-b").version == 2
    assert not list(models.glob(".staging-*"))  # the next publication cleaned up


def test_a_killed_publisher_leaves_no_visible_version(tmp_path, export):
    """SIGKILL (no cleanup code runs) while the copy is under way."""
    models = tmp_path / "models"
    _publish(models, export, "run-a")
    fake_export(tmp_path / "big", files_per_tower=200)
    code = f"""
import time
from pathlib import Path
from training import publish as pub
real = pub._copy_file
def slow(src, dst):
    real(src, dst)
    time.sleep(0.01)
pub._copy_file = slow
big = Path({str(tmp_path / 'big')!r})
pub.publish(Path({str(models)!r}), {{t: big / t for t in {TOWERS!r}}}, "run-b", {{}}, "now")
"""
    child = subprocess.Popen([sys.executable, "-c", code], cwd=REPO)
    try:
        deadline = time.monotonic() + 60
        while not list(models.glob(".staging-*/*/variables/part-1*")):
            assert child.poll() is None and time.monotonic() < deadline, "copy never started"
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    assert pub.latest_version(models) == 1
    assert _visible(models) == {"anchor_tower": ["1"], "user_tower": ["1"]}
    assert _publish(models, export, "run-b").version == 2  # the lock died with the process


def test_half_renamed_or_manifest_less_versions_do_not_count(tmp_path, export):
    models = tmp_path / "models"
    _publish(models, export, "run-a")
    # a crash between the two tower renames: only the anchor tower has version 2
    (models / "anchor_tower" / "2").mkdir()
    (models / "anchor_tower" / "2" / "manifest.json").write_text("{}")
    # a version folder without its manifest (copied in by hand, say)
    for tower in TOWERS:
        (models / tower / "3").mkdir()
    assert pub.latest_version(models) == 1
    result = _publish(models, export, "run-b")
    assert result.version == 4  # numbers that may have been seen are never reused
    assert _visible(models) == {"anchor_tower": ["1", "4"], "user_tower": ["1", "4"]}


def test_a_version_view_points_at_the_published_artifacts(tmp_path, export):
    models = tmp_path / "models"
    _publish(models, export, "run-a")
    view = pub.version_view(models, 1, tmp_path / "view")
    assert (view / "user_tower" / "saved_model.pb").read_bytes() == \
        (models / "user_tower" / "1" / "saved_model.pb").read_bytes()
    assert (view / "anchor_tower").resolve() == (models / "anchor_tower" / "1").resolve()
    assert sorted(p.name for p in view.iterdir()) == sorted(TOWERS)


def test_any_artifact_list_publishes_and_counts(tmp_path):
    """Publication knows no towers: a model with one artifact folder publishes the same way."""
    folder = tmp_path / "factors"
    folder.mkdir()
    (folder / "items.npy").write_bytes(b"x")
    result = pub.publish(tmp_path / "models", {"als": folder}, "run-x", {}, "now")
    assert result.version == 1 and pub.latest_version(tmp_path / "models") == 1
    assert pub.read_manifest(tmp_path / "models", 1)["artifacts"] == ["als"]
    with pytest.raises(FileNotFoundError, match="artifact 'missing'"):
        pub.publish(tmp_path / "models", {"missing": tmp_path / "nope"}, "run-y", {}, "now")


def test_a_run_whose_model_gate_failed_is_not_published(tmp_path, export, monkeypatch):
    models = tmp_path / "models"
    failed = {"gate": "model_gate", "passed": False, "failed": ["auc"]}
    with pytest.raises(ValueError, match="model gate did not pass.*auc"):
        release.publish_run(models, "two_tower", export, "run-a", {}, "now", None, failed)
    with pytest.raises(ValueError, match="did not pass"):
        release.publish_run(models, "two_tower", export, "run-a", {}, "now", None, None)
    assert pub.latest_version(models) is None
    forced = release.publish_run(models, "two_tower", export, "run-a", {}, "now", None,
                                 failed, force_reason="hotfix approved by on-call")
    assert forced.version == 1
    assert pub.read_manifest(models, 1)["forced"] == "hotfix approved by on-call"
    passed = {"gate": "model_gate", "passed": True, "failed": []}
    assert release.publish_run(models, "two_tower", export, "run-b", {}, "now", None,
                               passed).version == 2
