"""Structured configs: the typed schema behind every Hydra YAML file in ``configs/``.

Registering these dataclasses in Hydra's ConfigStore makes composition strict: an unknown key
or a value of the wrong type fails at start-up, naming the key and the expected type, before
any data is read. YAML files select a schema through their defaults list (``- schema``).
This module imports only Hydra/OmegaConf, so CLIs can validate configs without torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from journeyrec.bundle.settings import StatsConfig
from journeyrec.serving.settings import ContextConfig, ExperimentConfig, LimitsConfig, RulesConfig, StoreConfig

__all__ = [
    "DataConfig",
    "ModelConfig",
    "SASRecConfig",
    "BERT4RecConfig",
    "GRU4RecConfig",
    "TwoTowerConfig",
    "TrainerConfig",
    "LoggerConfig",
    "EvalConfig",
    "ExportConfig",
    "TrainConfig",
    "EvaluateConfig",
    "SegmentConfig",
    "ExportJobConfig",
    "ServeConfig",
    "BatchRecommendConfig",
    "PrepareConfig",
    "register_configs",
    "compose_cli",
]


@dataclass
class DataConfig:
    name: str = MISSING  # reader: demo | events | s3rec | taobao | yoochoose | movielens | diginetica | retailrocket | rees46 | otto
    path: Optional[str] = None  # the input file, or the directory holding the dataset's files under their published names
    options: Dict[str, Any] = field(default_factory=dict)  # reader-specific, validated by the reader
    prepared: Optional[str] = None  # an existing prepared store (scripts/prepare_data.py): training reads it, not the source
    split: str = "leave_one_out"  # leave_one_out | global_time | last_session
    valid_fraction: float = 0.1  # global_time only
    test_fraction: float = 0.1  # global_time only
    # leave_one_out only: leave each user's newest N items out first. 1 turns the validation targets
    # into test targets, to tune what trains on validation targets (trainer.refit_epochs) on them
    drop_newest: int = 0
    dedup: bool = True  # drop exact duplicate events (same user, session, item, type, channel, timestamp)
    dedup_consecutive: bool = False  # collapse consecutive events on the same item into one position
    session_gap_minutes: float = 30.0  # inactivity gap that starts a new session when the source has no session ids
    min_user_events: int = 1  # k-core filtering: users need >= this many item events ...
    min_item_events: int = 1  # ... and items >= this many (repeated until both hold); 1 = off
    retention_days: Optional[float] = None  # drop events older than this many days before the newest event
    max_bad_fraction: float = 0.01  # fail when more than this share of the rows read is quarantined
    consent_path: Optional[str] = None  # consent table (user_id, opted_out) as CSV / Parquet
    hmac_key_file: Optional[str] = None  # file holding the pseudonymisation key (else env JOURNEYREC_HMAC_KEY)
    allow_demo_key: bool = False  # accept the public demo key: only for public benchmark data and the demo shop
    store_events: bool = True  # write the cleaned canonical events (events.parquet) into the prepared store
    batch_size: int = 128
    eval_batch_size: int = 512
    num_workers: int = 0
    bucket_by_length: bool = True  # batch users of similar length (less padding, same samples per epoch)


@dataclass
class ModelConfig:
    """What every model config shares: inputs, objective, optimiser. Which inputs a model reads
    and which loss trains it are configuration, not code."""

    name: str = MISSING
    max_len: int = 50
    features: List[str] = field(default_factory=list)  # per position: event_type | channel | time_gap
    attributes: List[str] = field(default_factory=list)  # item: category | brand | price | size | colour | repurchase_class | tags
    id_dropout: float = 0.0  # training-time probability of hiding an item's id embedding (attribute-only vectors)
    sparse_item_grad: bool = False  # sampled losses: sparse id-embedding gradient + SparseAdam (not with ddp / clipping)
    loss: str = "softmax"  # softmax | sampled_softmax | bce | gbce
    negatives: str = "uniform"  # uniform | popularity | in_batch | mixed (sampled losses only)
    n_negatives: int = 1  # sampled negatives (per batch for sampled_softmax, per position for bce / gbce)
    logq: bool = True  # sampled_softmax: subtract log expected count of each candidate
    pop_alpha: float = 0.75  # popularity negatives ~ (count + 1) ** pop_alpha
    label_smoothing: float = 0.0  # softmax only
    exclude_seen: bool = False  # softmax only: each position's softmax leaves out the user's earlier items
    gbce_t: float = 0.75  # gbce calibration parameter t
    temperature: float = 1.0  # logits = session . item / temperature
    event_type_weights: Dict[str, float] = field(default_factory=dict)  # e.g. {purchase: 3.0}; others 1
    intent_weight: float = 0.0  # > 0: train a purchase-intent head jointly, loss weight (causal models)
    contrastive_weight: float = 0.0  # > 0: InfoNCE between two dropout views of each session (extra forward pass)
    contrastive_temperature: float = 0.2
    lr: float = 1e-3
    weight_decay: float = 0.0
    lr_schedule: str = "constant"  # constant | cosine (over trainer.max_epochs)
    warmup_steps: int = 0


@dataclass
class SASRecConfig(ModelConfig):
    name: str = "sasrec"
    d_model: int = 64
    n_blocks: int = 2
    n_heads: int = 2
    dropout: float = 0.2
    ffn_mult: int = 4  # feed-forward width = ffn_mult * d_model
    activation: str = "gelu"  # gelu | relu
    repeat_bias: bool = False  # softmax only: fit one logit offset for items already in the sequence (stop-gradient)
    positions: str = "from_end"  # from_end (newest event = last position) | from_start (first item = 0) | relative (attention bias by distance)


@dataclass
class BERT4RecConfig(ModelConfig):
    name: str = "bert4rec"
    d_model: int = 64
    n_blocks: int = 2
    n_heads: int = 2
    dropout: float = 0.2
    mask_prob: float = 0.2  # share of positions replaced by [MASK] in training


@dataclass
class GRU4RecConfig(ModelConfig):
    name: str = "gru4rec"
    d_model: int = 64
    n_layers: int = 1
    dropout: float = 0.2


@dataclass
class TwoTowerConfig(ModelConfig):
    name: str = "two_tower"
    d_model: int = 64
    n_blocks: int = 2
    n_heads: int = 2
    dropout: float = 0.2
    normalize: bool = True  # cosine similarity (both towers L2-normalised); scale with temperature


@dataclass
class TrainerConfig:
    max_epochs: int = 50
    min_epochs: int = 1
    patience: int = 5  # early stopping: epochs without improvement of `monitor`
    monitor: str = "valid_seen_excluded/ndcg@10"
    accelerator: str = "cpu"
    devices: Any = 1  # per node: an int, a list of device ids, or "auto"
    num_nodes: int = 1  # machines (multi-node DDP: launch the same command on each node, see configs/trainer/ddp.yaml)
    strategy: str = "auto"  # Lightning strategy: auto | ddp (trainer=ddp); data.batch_size stays the GLOBAL batch
    precision: str = "32-true"  # 32-true | bf16-mixed (autocast) | 16-mixed (CUDA)
    compile: bool = False  # torch.compile the model (worth it on GPU; the first steps pay the compile time)
    num_threads: int = 0  # torch intra-op threads; 0 = torch's default (all cores)
    deterministic: bool = False
    gradient_clip_val: Optional[float] = None
    # exponential moving average of the weights (Lightning's WeightAveraging callback), used for
    # validation, checkpoints and export; 0 = off. Horizon ~ 1 / (1 - decay) optimiser steps
    ema_decay: float = 0.0
    check_val_every_n_epoch: int = 1
    progress_bar: bool = True
    # after early stopping picked the best epoch on validation: train on from that epoch for this
    # many more epochs with each user's validation targets added to the training prefixes, then
    # test. Validation figures stay those of the picked epoch (the refit has seen their targets).
    # 0 = off. Single-process fits only.
    refit_epochs: int = 0


@dataclass
class LoggerConfig:
    mlflow: bool = True
    tracking_uri: Optional[str] = None  # None: $MLFLOW_TRACKING_URI, else sqlite file in the working directory
    experiment_name: Optional[str] = None  # None: derived from the dataset
    run_name: Optional[str] = None


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
class ExportConfig:
    enabled: bool = True
    index: str = "Flat"  # FAISS factory string (Flat, HNSW32, IVF1024,PQ16x4fs, ...)
    target_recall: float = 0.95  # the search-time parameter is tuned to reach this recall@10 vs exact search
    n_queries: int = 2000  # held-out validation session vectors used to tune (half) and measure (half) the index
    stats: StatsConfig = field(default_factory=StatsConfig)  # how rule statistics are learned


@dataclass
class TrainConfig:
    data: Any = MISSING
    model: Any = MISSING
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    seed: int = 42
    ckpt_path: Optional[str] = None  # "last" resumes from the run directory's last checkpoint
    output_dir: Optional[str] = None  # None: Hydra's run directory
    show_samples: int = 0  # print recommendations for this many test customers at the end


@dataclass
class EvaluateConfig:
    """scripts/evaluate.py: a trained model (bundle path or MLflow run id) on a prepared split."""

    bundle: Optional[str] = None  # bundle directory (training's <output>/bundle)
    run_id: Optional[str] = None  # or an MLflow training run: its bundle artifact is downloaded
    prepared: Optional[str] = None  # a saved prepared directory (training's <output>/prepared)
    data: Any = None  # or a data config (data=s3rec data.path=...); default: the bundle's training config
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
    data: Any = None
    k: int = 8  # number of segments
    niter: int = 25  # k-means iterations
    spherical: bool = True  # cluster directions (cosine), as the model scores by dot product
    seed: int = 0
    top: int = 5  # categories / brands listed per segment
    batch_size: int = 1024
    num_threads: int = 0
    output_dir: Optional[str] = None


@dataclass
class ExportJobConfig:
    """scripts/export_index.py: (re-)export the bundle of a finished training run."""

    run: str = MISSING  # training run directory (config.yaml, prepared/, checkpoints/)
    out: Optional[str] = None  # default: <run>/bundle
    checkpoint: str = "best"  # best | last | a path to a .ckpt file
    log_mlflow: bool = True  # log the bundle to the run's MLflow run (if the run has one)
    export: ExportConfig = field(default_factory=ExportConfig)


@dataclass
class ServeConfig:
    """scripts/serve.py: the HTTP service over a bundle."""

    bundle: str = MISSING  # bundle directory
    host: str = "127.0.0.1"
    port: int = 8000
    threads: int = 1  # torch / FAISS threads per process (requests are single queries)
    log_level: str = "info"
    hmac_key_file: Optional[str] = None  # file holding the pseudonymisation key (else env JOURNEYREC_HMAC_KEY)
    allow_demo_key: Optional[bool] = None  # None: as the bundle's training data config (public data allows it)
    rules: RulesConfig = field(default_factory=RulesConfig)
    contexts: Dict[str, ContextConfig] = field(default_factory=dict)  # context type -> its settings and rule overrides
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    ab: Optional[ExperimentConfig] = None  # an A/B experiment (configs/ab/*.yaml), none by default
    store: Optional[StoreConfig] = None  # the journey store (configs/store/*.yaml); None: stateless


@dataclass
class BatchRecommendConfig:
    """scripts/batch_recommend.py: top-k per customer of the journey store into a Parquet file."""

    bundle: str = MISSING
    store: StoreConfig = field(default_factory=StoreConfig)
    customers: str = "all"  # "all" (every customer in the store, as pseudonyms) or a file of customer ids, one per line
    context: str = "newsletter"
    k: int = 10
    out: Optional[str] = None  # default: <output_dir>/recommendations.parquet
    output_dir: Optional[str] = None  # None: Hydra's run directory
    threads: int = 1
    hmac_key_file: Optional[str] = None
    allow_demo_key: Optional[bool] = None
    rules: RulesConfig = field(default_factory=RulesConfig)
    contexts: Dict[str, ContextConfig] = field(default_factory=dict)
    progress: bool = True


def compose_cli(config_dir: str, config_name: str, overrides: List[str]) -> Any:
    """Compose ``<config_dir>/<config_name>.yaml`` with ``key=value`` overrides, without Hydra's
    run directory or logging set-up (for the server and other commands that write no run)."""
    from hydra import compose, initialize_config_dir

    register_configs()
    with initialize_config_dir(config_dir=str(Path(config_dir).resolve()), version_base="1.3"):
        return compose(config_name=config_name, overrides=list(overrides))


@dataclass
class PrepareConfig:
    """``scripts/prepare_data.py``: read a source, write a prepared store and its dataset card."""

    data: Any = MISSING
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    output_dir: Optional[str] = None  # None: Hydra's run directory; the store is <output_dir>/prepared


def register_configs() -> None:
    """Register the schemas with Hydra (idempotent); call before ``hydra.main`` composes."""
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)
    cs.store(name="evaluate_schema", node=EvaluateConfig)
    cs.store(name="segment_schema", node=SegmentConfig)
    cs.store(name="prepare_schema", node=PrepareConfig)
    cs.store(group="data", name="schema", node=DataConfig)
    cs.store(group="model", name="sasrec_schema", node=SASRecConfig)
    cs.store(group="model", name="bert4rec_schema", node=BERT4RecConfig)
    cs.store(group="model", name="gru4rec_schema", node=GRU4RecConfig)
    cs.store(group="model", name="two_tower_schema", node=TwoTowerConfig)
    cs.store(group="trainer", name="schema", node=TrainerConfig)
    cs.store(group="logger", name="schema", node=LoggerConfig)
    cs.store(group="export", name="schema", node=ExportConfig)
    cs.store(name="export_index_schema", node=ExportJobConfig)
    cs.store(name="serve_schema", node=ServeConfig)
    cs.store(name="batch_recommend_schema", node=BatchRecommendConfig)
    cs.store(group="store", name="schema", node=StoreConfig)
    cs.store(group="ab", name="schema", node=ExperimentConfig)
