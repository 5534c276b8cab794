"""Benchmarks: speed and quality figures, each printed as one JSON line with its ratio against a
baseline measured in the same run (``benchmarks/__main__.py NAME``). Timings live here, never in tests."""
