"""Benchmarks: latency harness, model and kernel benchmarks (pytest-benchmark files too)."""
