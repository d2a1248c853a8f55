"""Orchestration of the pipeline: one file per workflow, plus shared wiring in common.py."""
