"""Train a model: python scripts/train.py experiment=demo  (see configs/train.yaml)."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from journeyrec.cli import user_errors
from journeyrec.config import register_configs
from journeyrec.training.config import train_config

register_configs()


@hydra.main(version_base="1.3", config_path="../configs", config_name="train")
@user_errors
def main(cfg: DictConfig) -> float:
    typed = train_config(cfg)  # an unknown key (even one added with +) fails here, before anything loads
    # heavy imports only after the config is valid
    from journeyrec.console import show_samples
    from journeyrec.training.run import train

    result = train(typed)
    if typed.show_samples and result.bundle_dir is not None:
        show_samples(result.bundle_dir, result.prepared_dir, typed.show_samples)
    return result.metrics.get(typed.trainer.monitor, float("nan"))  # the value an Optuna sweep maximises


if __name__ == "__main__":
    main()
