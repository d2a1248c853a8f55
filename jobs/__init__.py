"""Spark jobs: one module per table it builds (parse args, read, transform, write)."""
