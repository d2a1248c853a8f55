"""Settings: defaults < file < environment < flags, and one-line errors naming the field
and where its value came from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from features.settings import Settings, load_settings

pytestmark = pytest.mark.unit


def test_defaults_resolve_under_the_working_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = load_settings(env={})
    assert (settings.window_days, settings.last_k) == (7, 10)
    assert settings.lake_root == tmp_path.resolve() / "lake"


def test_each_source_overrides_the_one_before(tmp_path):
    config = tmp_path / "pipeline.toml"
    config.write_text('lake_root = "/data/file-lake"\nwindow_days = 14\nlast_k = 20\n'
                      'models_root = "/data/file-models"\n')
    env = {"LAKE_ROOT": "/data/env-lake", "FEATURE_WINDOW_DAYS": "21"}
    settings = load_settings(config, env, window_days=28, lake_root=None)
    assert settings.models_root == Path("/data/file-models")  # file over default
    assert settings.last_k == 20  # file
    assert settings.lake_root == Path("/data/env-lake")  # env over file; a None flag is unset
    assert settings.window_days == 28  # flag over env
    assert load_settings(config, env).window_days == 21


def test_the_file_can_come_from_the_environment(tmp_path):
    config = tmp_path / "pipeline.json"
    config.write_text(json.dumps({"last_k": 3}))
    assert load_settings(env={"PIPELINE_CONFIG": str(config)}).last_k == 3


@pytest.mark.parametrize("env, flags, message", [
    ({"FEATURE_WINDOW_DAYS": "week"}, {},
     "setting window_days (from $FEATURE_WINDOW_DAYS): Input should be a valid integer"),
    ({}, {"last_k": 0}, "setting last_k (from flag): Input should be greater than or equal"),
    ({"LAKE_ROOT": "/"}, {}, "setting lake_root (from $LAKE_ROOT): Value error, a root "
                             "folder may not be the file system root, got '/'"),
    ({}, {"runs_root": "  "}, "setting runs_root (from flag): Value error, a root folder "
                              "may not be empty"),
])
def test_bad_values_name_the_field_and_the_source(env, flags, message):
    with pytest.raises(ValueError) as error:
        load_settings(env=env, **flags)
    assert str(error.value).startswith(message)
    assert "\n" not in str(error.value)


def test_bad_files_are_one_line_errors(tmp_path):
    with pytest.raises(ValueError, match="settings file .*missing.toml does not exist"):
        load_settings(tmp_path / "missing.toml", env={})
    broken = tmp_path / "broken.toml"
    broken.write_text("lake_root = \n")
    with pytest.raises(ValueError, match="settings file .*broken.toml is not valid"):
        load_settings(broken, env={})
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps({"lake": "/x"}))
    with pytest.raises(ValueError, match=r"setting lake \(from file .*unknown.json\): Extra"):
        load_settings(unknown, env={})


def test_settings_are_frozen():
    with pytest.raises(ValueError):
        Settings().last_k = 3


def test_file_uris_are_local_roots(tmp_path):
    settings = load_settings(env={"LAKE_ROOT": f"file://{tmp_path}/lake"},
                             landing_root=f"file://localhost{tmp_path}/land%20ing",
                             models_root=f"file://{tmp_path}/a/../models")
    assert settings.lake_root == tmp_path.resolve() / "lake"
    assert settings.landing_root == tmp_path.resolve() / "land ing"
    assert settings.models_root == tmp_path.resolve() / "models"  # resolved like a path


@pytest.mark.parametrize("root, message", [
    ("file:///", "may not be the file system root"),
    ("file://other-host/data/lake", "absolute folder on this machine"),
    ("file:lake", "absolute folder on this machine"),
    ("file:///data/lake?x=1", "may not have a query"),
    ("s3a://bucket/lake", "object-store roots such as 's3a://bucket/lake' are not supported"),
    ("gs://bucket/lake", "object-store roots"),
    ("abfss://c@account.dfs.core.windows.net/lake", "object-store roots"),
    ("http://host/lake", "a root is a folder or a file:// URI"),
])
def test_bad_root_uris_are_one_line_errors(root, message):
    with pytest.raises(ValueError) as error:
        load_settings(env={}, lake_root=root)
    assert str(error.value).startswith("setting lake_root (from flag): Value error, ")
    assert message in str(error.value)
    assert "\n" not in str(error.value)
