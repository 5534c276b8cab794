"""Benchmarks: speed and quality figures, each printed as one JSON line with its ratio against a
baseline measured in the same run (``python -m benchmarks NAME``, ``--save`` to record it under
docs/results/). Timings live here, never in tests. Not installed: run from the repository root."""
