"""Benchmarks: each prints ratios measured within one run (never timed test assertions)."""
