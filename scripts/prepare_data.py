"""Prepare a dataset: python scripts/prepare_data.py data=NAME [data.path=...]  (see configs/prepare.yaml).

Writes the prepared store (arrays, Parquet, dataset card) to <output dir>/prepared and logs the
card to MLflow; train on it with: python scripts/train.py data=NAME data.prepared=<that dir>.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig

from journeyrec.config import register_configs

register_configs()
log = logging.getLogger("prepare_data")


@hydra.main(version_base="1.3", config_path="../configs", config_name="prepare")
def main(cfg: DictConfig) -> None:
    from journeyrec.data.prepare import prepare_store

    if cfg.output_dir:
        out = Path(cfg.output_dir)
    else:
        from hydra.core.hydra_config import HydraConfig

        out = Path(HydraConfig.get().runtime.output_dir)
    store = out / "prepared"
    prepare_store(cfg.data, store)  # logs the card's summary (console and the run's log file)
    print(f"prepared store: {store}  (card: {store / 'dataset_card.md'})")
    if cfg.logger.mlflow:
        from journeyrec.training.data_card import log_prepare_run

        run_id = log_prepare_run(cfg, store)
        print(f"mlflow run    : {run_id}")
    log.info("prepared %s into %s", cfg.data.name, store)


if __name__ == "__main__":
    main()
