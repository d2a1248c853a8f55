"""The trainer and the engine-free core import without pyspark (and the core without
TensorFlow): a child process blocks those imports and loads every module."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]

BLOCKER = """
import importlib, pkgutil, sys

class Blocked:
    def __init__(self, names):
        self.names = names
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.names:
            raise ImportError("blocked import of " + name)
        return None

sys.meta_path.insert(0, Blocked({blocked!r}))
loaded = []
for package in {packages!r}:
    root = importlib.import_module(package)
    for info in pkgutil.walk_packages(root.__path__, package + "."):
        importlib.import_module(info.name)
        loaded.append(info.name)
print(len(loaded))
"""


def _import_all(packages: list[str], blocked: list[str]) -> int:
    code = textwrap.dedent(BLOCKER.format(blocked=blocked, packages=packages))
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return int(done.stdout.strip().splitlines()[-1])


def test_the_core_imports_neither_pyspark_nor_tensorflow():
    assert _import_all(["features"], ["pyspark", "tensorflow", "keras", "pysail"]) >= 8


def test_training_imports_without_pyspark_or_jobs():
    assert _import_all(["training"], ["pyspark", "pysail", "jobs"]) >= 20


def test_the_block_is_real():
    code = textwrap.dedent(BLOCKER.format(blocked=["pyspark"], packages=[]))
    done = subprocess.run([sys.executable, "-c", code + "\nimport pyspark\n"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "blocked import of pyspark" in done.stderr
