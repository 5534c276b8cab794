"""Structured configs: the typed schema behind every Hydra YAML file in ``configs/``.

Registering these dataclasses in Hydra's ConfigStore makes composition strict: an unknown key
or a value of the wrong type fails at start-up, naming the key and the expected type, before
any data is read. YAML files select a schema through their defaults list (``- schema``).
This module imports only Hydra/OmegaConf, so CLIs can validate configs without torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

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
    "register_configs",
]


@dataclass
class DataConfig:
    name: str = MISSING  # reader: demo | s3rec | events
    path: Optional[str] = None  # the input file (or directory) of the reader
    options: Dict[str, Any] = field(default_factory=dict)  # reader-specific, validated by the reader
    split: str = "leave_one_out"  # leave_one_out | global_time
    valid_fraction: float = 0.1  # global_time only
    test_fraction: float = 0.1  # global_time only
    dedup_consecutive: bool = False  # collapse consecutive events on the same item into one position
    hmac_key: Optional[str] = None  # pseudonymisation key (prefer env JOURNEYREC_HMAC_KEY)
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
    devices: Any = 1
    precision: str = "32-true"
    num_threads: int = 0  # torch intra-op threads; 0 = torch's default (all cores)
    deterministic: bool = False
    gradient_clip_val: Optional[float] = None
    check_val_every_n_epoch: int = 1
    progress_bar: bool = True


@dataclass
class LoggerConfig:
    mlflow: bool = True
    tracking_uri: Optional[str] = None  # None: $MLFLOW_TRACKING_URI, else sqlite file in the working directory
    experiment_name: Optional[str] = None  # None: derived from the dataset
    run_name: Optional[str] = None


@dataclass
class EvalConfig:
    ks: List[int] = field(default_factory=lambda: [10, 20])
    cold_items: float = 0.0  # > 0: hide this share of items from training; report test_cold/... on their test cases
    cold_seed: int = 0  # which items are hidden


@dataclass
class ExportConfig:
    enabled: bool = True
    index: str = "Flat"  # FAISS factory string


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


def register_configs() -> None:
    """Register the schemas with Hydra (idempotent); call before ``hydra.main`` composes."""
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)
    cs.store(group="data", name="schema", node=DataConfig)
    cs.store(group="model", name="sasrec_schema", node=SASRecConfig)
    cs.store(group="model", name="bert4rec_schema", node=BERT4RecConfig)
    cs.store(group="model", name="gru4rec_schema", node=GRU4RecConfig)
    cs.store(group="model", name="two_tower_schema", node=TwoTowerConfig)
    cs.store(group="trainer", name="schema", node=TrainerConfig)
    cs.store(group="logger", name="schema", node=LoggerConfig)
