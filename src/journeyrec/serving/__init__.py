"""Serving: the thin inference path over a bundle (no Lightning, no MLflow)."""

from journeyrec.serving.recommender import Recommendation, Recommender, RecommendResult

__all__ = ["Recommender", "Recommendation", "RecommendResult"]
