"""Arguments every job shares, with validation that fails early and clearly."""

from __future__ import annotations

import argparse
import logging

from features.days import parse_day
from jobs.engine import ENGINES


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
