"""Micro-benchmarks for the hot paths; run ``python -m benchmarks [name ...]``."""
