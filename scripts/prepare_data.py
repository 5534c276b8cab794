"""Prepare a dataset: python scripts/prepare_data.py data=NAME [data.path=...]  (see configs/prepare.yaml).

Writes the prepared store (arrays, Parquet, dataset card) to <output dir>/prepared and logs the
card to MLflow; train on it with: python scripts/train.py data=NAME data.prepared=<that dir>.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from journeyrec.cli import user_errors
from journeyrec.config import PrepareConfig, register_configs
from journeyrec.typed import to_typed

register_configs()


@hydra.main(version_base="1.3", config_path="../configs", config_name="prepare")
@user_errors
def main(cfg: DictConfig) -> None:
    typed = to_typed(PrepareConfig, cfg)
    from journeyrec.data.prepare import prepare_store  # heavy imports after the config is valid

    if typed.output_dir:
        out = Path(typed.output_dir)
    else:
        from hydra.core.hydra_config import HydraConfig

        out = Path(HydraConfig.get().runtime.output_dir)
    store = out / "prepared"
    prepare_store(typed.data, store)  # logs the card's summary (console and the run's log file)
    print(f"prepared store: {store}  (card: {store / 'dataset_card.md'})")
    if typed.logger.mlflow:
        from journeyrec.training.data_card import log_prepare_run

        print(f"mlflow run    : {log_prepare_run(typed, store)}")


if __name__ == "__main__":
    main()
