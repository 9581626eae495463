"""Benchmarks: escalate against its peers (run ``python -m benchmarks``)."""
