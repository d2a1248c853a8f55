"""`python -m jobs.simulate`: flags, usage errors before any write, one line per day."""

from __future__ import annotations

import json

import pytest

from jobs.simulate import main

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("bad", [
    ["--start", "2026/01/01"], ["--start", "2026-1-1"], ["--start", "2026-02-30"],
    ["--start", "2026-01-01", "--days", "0"], ["--start", "2026-01-01", "--days", "367"],
    ["--start", "2026-01-01", "--days", "two"], ["--start", "2026-01-01", "--bad-rate", "0.6"],
    ["--start", "2026-01-01", "--bad-rate", "-0.1"], ["--start", "2026-01-01", "--scale", "huge"],
    ["--start", "2026-01-01", "--seed", "-1"], ["--days", "3"],
])
def test_cli_rejects_bad_args(bad, tmp_path, capsys):
    argv = [*bad, "--landing", str(tmp_path)]
    if "--days" not in bad:
        argv += ["--days", "3"]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "error" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_cli_runs_and_reports_each_day(tmp_path, capsys):
    assert main(["--start", "2026-01-01", "--days", "2", "--scale", "tiny",
                 "--landing", str(tmp_path), "--seed", "3"]) == 0
    captured = capsys.readouterr()
    err, out = captured.err.splitlines(), captured.out.splitlines()
    # one progress line per day (stderr), one summary line of the run (stdout)
    assert len(err) == 2 and err[0].startswith("2026-01-01") and "sessions=" in err[0]
    assert len(out) == 1 and "sessions=" in out[0] and "seed 3" in out[0]
    assert json.loads((tmp_path / "_SIMULATION.json").read_text())["params"]["seed"] == 3


def test_cli_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0 and "--bad-rate" in capsys.readouterr().out
