"""The arguments every training command shares: the lake and the training set it reads."""

from __future__ import annotations

import argparse


def run_parser(description: str) -> argparse.ArgumentParser:
    """A parser with `--lake` and `--run-id` (alias `--training-set`, required)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--lake", help="lake root (default: $LAKE_ROOT or ./lake)")
    parser.add_argument("--run-id", "--training-set", dest="run_id", required=True,
                        help="training set run id under <lake>/training_sets/")
    return parser
