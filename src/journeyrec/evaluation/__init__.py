"""Offline evaluation: full-ranking metrics (metrics.py) and the loop that applies a model (ranking.py)."""
