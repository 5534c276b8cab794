"""Typed settings of offline evaluation: the metrics every run reports (``eval.*``) and the
jobs of ``scripts/evaluate.py`` and ``scripts/segment.py``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from journeyrec.data.config import DataConfig
from journeyrec.tracking import LoggerConfig

__all__ = ["EvalConfig", "ServedReplayConfig", "EvaluateConfig", "SegmentConfig"]


@dataclass
class EvalConfig:
    ks: List[int] = field(default_factory=lambda: [10, 20])
    bootstrap: int = 1000  # resamples for the 95% intervals (<key>_ci95_low/high); 0 = none
    seed: int = 0  # bootstrap resamples and sampled negatives
    beyond_accuracy: bool = True  # coverage, diversity, novelty, arp, gini at each K
    sampled_negatives: int = 0  # > 0: ALSO sampled metrics under <split>_sampled<n>/...; never the default
    # --- scripts/evaluate.py only (training evaluates the model alone) ---
    baselines: List[str] = field(default_factory=lambda: ["popularity", "recent_popularity", "cooccurrence"])
    recent_window_days: float = 7.0  # recent_popularity: window before the latest training event
    recent_last_per_user: Optional[int] = None  # recent_popularity: each user's last n events instead (no real time)
    cooccurrence_window: int = 3
    cooccurrence_history: int = 3
    length_edges: List[int] = field(default_factory=lambda: [1, 5, 10, 20, 50])  # sequence-length segments
    segments: Optional[str] = None  # segments.parquet (scripts/segment.py): break metrics down by cluster too
    progress: bool = True
    cold_items: float = 0.0  # > 0: hide this share of items from training; report test_cold/... on their test cases
    cold_seed: int = 0  # which items are hidden


@dataclass
class ServedReplayConfig:
    """``mode=served``: the held-out cases replayed through the served pipeline, per rule
    configuration (journeyrec.serving.replay; the names are its RULE_GROUPS)."""

    configurations: List[str] = field(
        default_factory=lambda: [
            "raw",
            "seen_excluded",
            "in_stock",
            "boosts",
            "diversity",
            "exploration",
            "repeat_policy",
            "complements",
            "all",
        ]
    )
    rules: Dict[str, Any] = field(
        default_factory=dict
    )  # the served rules under test (RulesConfig fields; "all" = these)
    context: str = "home"  # the page the requests come from (a context type)
    split: str = "test"
    limit: Optional[int] = None  # replay a random subset of this many cases (quick checks); None = every case
    seed: int = 0  # exploration randomness and the subset


@dataclass
class EvaluateConfig:
    """scripts/evaluate.py: a trained model (bundle path or MLflow run id) on a prepared split."""

    mode: str = (
        "model"  # model: the model alone, full ranking, with baselines; served: replay through Recommender.recommend
    )
    served: ServedReplayConfig = field(default_factory=ServedReplayConfig)
    bundle: Optional[str] = None  # bundle directory (training's <output>/bundle)
    run_id: Optional[str] = None  # or an MLflow training run: its bundle artifact is downloaded
    prepared: Optional[str] = None  # a saved prepared directory (training's <output>/prepared)
    data: Optional[DataConfig] = (
        None  # or a data config (data=s3rec data.path=...); default: the bundle's training config
    )
    splits: List[str] = field(default_factory=lambda: ["valid", "test"])
    batch_size: Optional[int] = None  # default: data.eval_batch_size of the data config used
    num_threads: int = 0
    eval: EvalConfig = field(default_factory=EvalConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    report: bool = True
    output_dir: Optional[str] = None  # None: Hydra's run directory


@dataclass
class SegmentConfig:
    """scripts/segment.py: k-means segments of the user vectors of a trained model."""

    bundle: Optional[str] = None
    run_id: Optional[str] = None
    prepared: Optional[str] = None
    data: Optional[DataConfig] = None
    k: int = 8  # number of segments
    niter: int = 25  # k-means iterations
    spherical: bool = True  # cluster directions (cosine), as the model scores by dot product
    seed: int = 0
    top: int = 5  # categories / brands listed per segment
    batch_size: int = 1024
    num_threads: int = 0
    output_dir: Optional[str] = None
