"""Typed configuration of training (``scripts/train.py``), data preparation and re-export: the
schemas the Hydra YAML in ``configs/`` composes to. ``configs/train.yaml`` picks one option of
each group (data, model, loss, optim, trainer, export, logger); the entry point converts the
composed tree once (:func:`train_config`) and every stage reads these objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from omegaconf import MISSING, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from journeyrec.bundle.settings import ExportConfig
from journeyrec.data.config import DataConfig
from journeyrec.errors import ConfigError
from journeyrec.evaluation.config import EvalConfig
from journeyrec.models.config import MODEL_CONFIGS, LossConfig, ModelConfig, TransitionsConfig
from journeyrec.tracking import LoggerConfig
from journeyrec.typed import to_typed

__all__ = [
    "BEFORE_REFIT",
    "OptimConfig",
    "TrainerConfig",
    "TrainConfig",
    "PrepareConfig",
    "ExportJobConfig",
    "train_config",
]


# metrics.json of a refit run (trainer.refit_epochs): the picked epoch's test figures under this
# prefix, beside "test" for the refitted model's
BEFORE_REFIT = "test_before_refit"


@dataclass
class OptimConfig:
    """How the weights are optimised (``optim=adamw``, ``configs/optim/*.yaml``)."""

    name: str = "adamw"  # AdamW (betas 0.9 / 0.98); with sparse_item_grad, SparseAdam on the id embedding
    lr: float = 1e-3
    weight_decay: float = 0.0  # on weight matrices only (not embeddings, norms or biases)
    lr_schedule: str = "constant"  # constant | cosine (to 0 over trainer.max_epochs, after the warm-up; not the refit)
    warmup_steps: int = 0
    # sampled losses: the id embedding gets a sparse gradient and SparseAdam (not with ddp or clipping)
    sparse_item_grad: bool = False

    def __post_init__(self) -> None:
        if self.name != "adamw":
            raise ValueError(f"optim.name={self.name!r}: only 'adamw' is implemented")
        if self.lr_schedule not in ("constant", "cosine"):
            raise ValueError(f"optim.lr_schedule={self.lr_schedule!r}: use constant or cosine")


@dataclass
class TrainerConfig:
    """How the fit runs (``trainer=default|ddp``): epochs, early stopping, devices, precision."""

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
    # test, at optim.lr without a schedule. Validation figures stay those of the picked epoch
    # (the refit has seen their targets). 0 = off. Single-process fits only.
    refit_epochs: int = 0
    # wall-clock minutes for the data preparation, the fit and the refit, from the start of the run
    # (the final evaluation and export come after): the fit stops at the end of the epoch after
    # which the next epoch and the refit would no longer end in time, the refit trains the whole
    # epochs still left (journeyrec.training.time_budget.TimeBudget); a resumed run (ckpt_path=last)
    # has the whole budget again. None: no budget
    time_budget_minutes: Optional[float] = None


@dataclass
class TrainConfig:
    """Everything one training run reads."""

    data: DataConfig = MISSING
    model: ModelConfig = MISSING
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    transitions: TransitionsConfig = field(default_factory=TransitionsConfig)
    seed: int = 42
    ckpt_path: Optional[str] = None  # "last" resumes from the run directory's last checkpoint
    output_dir: Optional[str] = None  # None: Hydra's run directory
    show_samples: int = 0  # print recommendations for this many test customers at the end


@dataclass
class PrepareConfig:
    """``scripts/prepare_data.py``: read a source, write a prepared store and its dataset card."""

    data: DataConfig = MISSING
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    output_dir: Optional[str] = None  # None: Hydra's run directory; the store is <output_dir>/prepared


@dataclass
class ExportJobConfig:
    """scripts/export_index.py: (re-)export the bundle of a finished training run."""

    run: str = MISSING  # training run directory (config.yaml, prepared/, checkpoints/)
    out: Optional[str] = None  # default: <run>/bundle
    checkpoint: str = "final"  # final (what the run's bundle holds, refit included) | best | last | a .ckpt path
    log_mlflow: bool = True  # log the bundle to the run's MLflow run (if the run has one)
    export: ExportConfig = field(default_factory=ExportConfig)


# run configs written before the model / loss / optim split kept the objective and the optimiser
# under ``model``; a stored config of that layout is read with those keys moved to their groups
_LEGACY_LOSS_KEYS = (
    "loss",  # the loss's name
    "negatives",
    "n_negatives",
    "logq",
    "pop_alpha",
    "label_smoothing",
    "exclude_seen",
    "gbce_t",
    "temperature",
    "event_type_weights",
    "intent_weight",
    "contrastive_weight",
    "contrastive_temperature",
)
_LEGACY_OPTIM_KEYS = ("lr", "weight_decay", "lr_schedule", "warmup_steps", "sparse_item_grad")


def _upgrade_stored(raw: dict[Any, Any]) -> dict[Any, Any]:
    """``raw`` with the loss and optimiser keys of a model section in the earlier layout moved to
    ``loss`` and ``optim`` (values unchanged); any other config is returned as it is."""
    model = raw.get("model")
    if not isinstance(model, dict) or not (set(model) & (set(_LEGACY_LOSS_KEYS) | set(_LEGACY_OPTIM_KEYS))):
        return raw
    if "loss" in raw or "optim" in raw:
        return raw  # the current layout: an unknown key under model is the user's, refused as such
    model = dict(model)
    loss = {("name" if k == "loss" else k): model.pop(k) for k in _LEGACY_LOSS_KEYS if k in model}
    optim = {k: model.pop(k) for k in _LEGACY_OPTIM_KEYS if k in model}
    return {**raw, "model": model, "loss": loss, "optim": {"name": "adamw", **optim}}


def train_config(cfg: Any) -> TrainConfig:
    """A composed training config (DictConfig) or a stored one (a run's ``config.yaml`` read as a
    mapping, in the current layout or the one before the loss / optim groups) as a TrainConfig:
    the model section's schema is chosen by ``model.name``."""
    if isinstance(cfg, TrainConfig):
        return cfg
    if not (hasattr(cfg, "_metadata") and OmegaConf.get_type(cfg) is TrainConfig):
        raw = OmegaConf.to_container(cfg, resolve=True) if hasattr(cfg, "_metadata") else dict(cfg)
        if not isinstance(raw, dict):
            raise ConfigError(f"a training config is a mapping, not {type(raw).__name__}")
        raw = _upgrade_stored(raw)
        name = (raw.get("model") or {}).get("name")
        if name not in MODEL_CONFIGS:
            raise ConfigError(f"model.name={name!r} is not a known model; known: {sorted(MODEL_CONFIGS)}")
        base = OmegaConf.structured(
            TrainConfig(data=DataConfig(name=str((raw.get("data") or {}).get("name"))), model=MODEL_CONFIGS[name]())
        )
        try:
            cfg = OmegaConf.merge(base, raw)
        except OmegaConfBaseException as exc:
            raise ConfigError(f"invalid training config: {str(exc).splitlines()[0]}") from exc
    return to_typed(TrainConfig, cfg)
