"""Train a model: python scripts/train.py experiment=demo  (see configs/train.yaml)."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from journeyrec.config import register_configs

register_configs()


@hydra.main(version_base="1.3", config_path="../configs", config_name="train")
def main(cfg: DictConfig) -> float:
    # heavy imports only after the config is valid
    from journeyrec.console import show_samples
    from journeyrec.training.run import train

    result = train(cfg)
    if cfg.show_samples and result.bundle_dir is not None:
        show_samples(result.bundle_dir, result.prepared_dir, int(cfg.show_samples))
    return result.metrics.get(str(cfg.trainer.monitor), float("nan"))  # the value an Optuna sweep maximises


if __name__ == "__main__":
    main()
