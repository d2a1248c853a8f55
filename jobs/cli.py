"""Arguments every job shares, with validation that fails early and clearly."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from typing import Any

from features.days import parse_day
from jobs.engine import ENGINES, spark_session
from jobs.lake import Lake, lake_root


def iso_day(text: str) -> str:
    """argparse type for a `YYYY-MM-DD` day."""
    try:
        parse_day(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def int_in(low: int, high: int):
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


def job_parser(description: str) -> argparse.ArgumentParser:
    """A parser with the lake, engine and logging options of every job."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--lake", help="lake root folder (default: $LAKE_ROOT or ./lake)")
    parser.add_argument("--engine", choices=ENGINES,
                        help="sail (embedded, default), connect (needs --remote) or jvm")
    parser.add_argument("--remote", help="Spark Connect URL, e.g. sc://host:15002 "
                                         "(default: $SPARK_REMOTE)")
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    return parser


def setup_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def run_job(name: str, args: argparse.Namespace, work: Callable[[Lake], Any]) -> int:
    """Open the lake on the chosen engine and run `work`; print its result as JSON unless it
    is None. A missing input or an invalid request is exit code 2 with a one-line error."""
    setup_logging(args.log_level)
    lake = Lake(lake_root(args.lake), spark_session(args.engine, args.remote))
    try:
        result = work(lake)
    except (FileNotFoundError, ValueError) as error:
        print(f"{name}: {error}", file=sys.stderr)
        return 2
    if result is not None:
        print(json.dumps(result, indent=2))
    return 0
