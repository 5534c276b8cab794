"""The Hydra face of the typed configuration: registers every layer's schema with Hydra's
ConfigStore, so composition is strict (an unknown key or a value of the wrong type fails at
start-up, naming the key, before any data is read), and composes configs for commands that
write no Hydra run directory. The schemas themselves live with the code that reads them:

==================  ==============================================  ==========================
group / job         schema                                          defined in
==================  ==============================================  ==========================
``data``            :class:`~journeyrec.data.config.DataConfig`      data layer
``model``           :class:`~journeyrec.models.config.SASRecConfig` (...)  models layer
``loss``            :class:`~journeyrec.models.config.LossConfig`    models layer
``optim``           :class:`~journeyrec.training.config.OptimConfig`  training layer
``trainer``         :class:`~journeyrec.training.config.TrainerConfig`  training layer
``logger``          :class:`~journeyrec.tracking.LoggerConfig`       tracking
``export``          :class:`~journeyrec.bundle.settings.ExportConfig`  bundle layer
``eval``            :class:`~journeyrec.evaluation.config.EvalConfig`  evaluation layer
train / prepare     ``TrainConfig`` / ``PrepareConfig`` / ``ExportJobConfig``  training layer
ensemble            ``EnsembleJobConfig``                            bundle layer
evaluate / segment  ``EvaluateConfig`` / ``SegmentConfig``           evaluation layer
serve / batch       ``ServeConfig`` / ``BatchRecommendConfig``      serving layer
==================  ==============================================  ==========================

This module imports Hydra, OmegaConf and those plain dataclasses only (no torch), so every
command validates its configuration before the heavy imports.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, List

from hydra.core.config_store import ConfigStore

from journeyrec.bundle.settings import EnsembleJobConfig, ExportConfig, StatsConfig
from journeyrec.data.config import DataConfig
from journeyrec.evaluation.config import EvalConfig, EvaluateConfig, SegmentConfig
from journeyrec.models.config import (
    BERT4RecConfig,
    GRU4RecConfig,
    LossConfig,
    ModelConfig,
    SASRecConfig,
    TwoTowerConfig,
)
from journeyrec.serving.settings import (
    BatchRecommendConfig,
    ContextConfig,
    ExperimentConfig,
    LimitsConfig,
    RulesConfig,
    ServeConfig,
    StoreConfig,
)
from journeyrec.tracking import LoggerConfig
from journeyrec.training.config import ExportJobConfig, OptimConfig, PrepareConfig, TrainConfig, TrainerConfig

__all__ = [
    "DataConfig",
    "ModelConfig",
    "SASRecConfig",
    "BERT4RecConfig",
    "GRU4RecConfig",
    "TwoTowerConfig",
    "LossConfig",
    "OptimConfig",
    "TrainerConfig",
    "LoggerConfig",
    "EvalConfig",
    "ExportConfig",
    "StatsConfig",
    "TrainConfig",
    "EvaluateConfig",
    "SegmentConfig",
    "ExportJobConfig",
    "EnsembleJobConfig",
    "ServeConfig",
    "BatchRecommendConfig",
    "PrepareConfig",
    "RulesConfig",
    "LimitsConfig",
    "ExperimentConfig",
    "ContextConfig",
    "StoreConfig",
    "register_configs",
    "compose_cli",
    "CONFIG_DIR",
]

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"  # the repository's configs/ (editable install)


def register_configs() -> None:
    """Register the schemas with Hydra (idempotent); call before ``hydra.main`` composes."""
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)
    cs.store(name="evaluate_schema", node=EvaluateConfig)
    cs.store(name="segment_schema", node=SegmentConfig)
    cs.store(name="prepare_schema", node=PrepareConfig)
    cs.store(name="export_index_schema", node=ExportJobConfig)
    cs.store(name="ensemble_schema", node=EnsembleJobConfig)
    cs.store(name="serve_schema", node=ServeConfig)
    cs.store(group="data", name="schema", node=DataConfig)
    cs.store(group="model", name="sasrec_schema", node=SASRecConfig)
    cs.store(group="model", name="bert4rec_schema", node=BERT4RecConfig)
    cs.store(group="model", name="gru4rec_schema", node=GRU4RecConfig)
    cs.store(group="model", name="two_tower_schema", node=TwoTowerConfig)
    cs.store(group="loss", name="schema", node=LossConfig)
    cs.store(group="optim", name="schema", node=OptimConfig)
    cs.store(group="trainer", name="schema", node=TrainerConfig)
    cs.store(group="logger", name="schema", node=LoggerConfig)
    cs.store(group="export", name="schema", node=ExportConfig)
    cs.store(name="batch_recommend_schema", node=BatchRecommendConfig)
    cs.store(group="store", name="schema", node=StoreConfig)
    cs.store(group="ab", name="schema", node=ExperimentConfig)


def compose_cli(config_dir: str | Path, config_name: str, overrides: List[str]) -> Any:
    """Compose ``<config_dir>/<config_name>.yaml`` with ``key=value`` overrides, without Hydra's
    run directory or logging set-up (for the server and other commands that write no run)."""
    from hydra import compose, initialize_config_dir

    register_configs()
    with initialize_config_dir(config_dir=str(Path(config_dir).resolve()), version_base="1.3"):
        return compose(config_name=config_name, overrides=list(overrides))
