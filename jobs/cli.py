"""Arguments every job shares, with validation that fails early and clearly.

Days are parsed by `features.days.day_arg`; the lake root and feature settings come from
`features.settings.load_settings` (defaults < --config file < environment < flags), the
same as for the trainer and the DAGs.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from features.settings import Settings, load_settings
from jobs.engine import ENGINES, quiet_engine_logs, spark_session
from jobs.lake import Lake

log = logging.getLogger(__name__)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def int_in(low: int, high: int) -> Callable[[str], int]:
    """argparse type for an integer in [low, high]."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is outside [{low}, {high}]")
        return value

    return parse


def float_in(low: float, high: float) -> Callable[[str], float]:
    """argparse type for a finite number in [low, high] (nan and inf are refused)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not (math.isfinite(value) and low <= value <= high):
            raise argparse.ArgumentTypeError(f"{text} is outside [{low:g}, {high:g}]")
        return value

    return parse


def job_parser(description: str) -> argparse.ArgumentParser:
    """A parser with the lake, settings, engine and logging options of every job."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--lake", help="lake root folder (default: $LAKE_ROOT or ./lake)")
    parser.add_argument("--config", help="settings file, TOML or JSON "
                                         "(default: $PIPELINE_CONFIG)")
    parser.add_argument("--engine", choices=ENGINES,
                        help="sail (embedded, default), connect (needs --remote) or jvm")
    parser.add_argument("--remote", help="Spark Connect URL, e.g. sc://host:15002 "
                                         "(default: $SPARK_REMOTE)")
    parser.add_argument("--log-level", type=str.upper, choices=LOG_LEVELS, default="INFO",
                        help="logging level (default INFO). The engines (Sail, py4j, log4j) "
                             "show warnings only; DEBUG brings back their INFO lines, and "
                             "$RUST_LOG, when set, filters Sail's")
    return parser


def setup_logging(level: str) -> None:
    """Our loggers at `level`; the engines quieter (see jobs.engine.quiet_engine_logs)."""
    logging.basicConfig(level=level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    quiet_engine_logs(level)


def rows_summary(counts: Mapping[str, int]) -> str:
    """`table 2,134 rows, other 1 row` in the order given."""
    return ", ".join(f"{table} {n:,} row{'' if n == 1 else 's'}" for table, n in counts.items())


@dataclass(frozen=True)
class Outcome:
    """What a job prints last (one line) and its exit code."""

    line: str
    code: int = 0


def one_line(error: BaseException) -> str:
    """The first line of an error message; the rest goes to the debug log."""
    lines = str(error).strip().splitlines() or [type(error).__name__]
    if len(lines) > 1:
        log.debug("full error: %s", error)
        return f"{lines[0]} (more with --log-level DEBUG)"
    return lines[0]


def run_job(name: str, args: argparse.Namespace,
            work: Callable[[Lake, Settings], str | Outcome | None]) -> int:
    """Open the lake of the settings on the chosen engine, run `work` and print the one-line
    summary it returns. A missing input or an invalid request (settings included) is exit
    code 2 with a one-line error on stderr."""
    setup_logging(args.log_level)
    try:
        settings = load_settings(args.config, lake_root=args.lake)
        lake = Lake(settings.lake_root.resolve(), spark_session(args.engine, args.remote))
        result = work(lake, settings)
    except (FileNotFoundError, ValueError) as error:
        print(f"{name}: {one_line(error)}", file=sys.stderr)
        return 2
    outcome = Outcome(result) if isinstance(result, str) else result
    if outcome is not None:
        print(outcome.line, flush=True)
        return outcome.code
    return 0
