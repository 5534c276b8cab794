"""Evaluate a trained model without retraining, next to the baselines; write metrics.json,
per-case ranks and report.md/.html with plots; log them as an MLflow evaluation run.

    python scripts/evaluate.py bundle=outputs/DATE/TIME/bundle                 # data: the run's prepared/
    python scripts/evaluate.py bundle=PATH data=s3rec data.path=../shared/data/amazon/Beauty.txt
    python scripts/evaluate.py run_id=<mlflow training run id>                 # bundle from MLflow
    python scripts/evaluate.py bundle=PATH eval.segments=outputs/segments/.../segments.parquet
    python scripts/evaluate.py bundle=PATH eval.sampled_negatives=100          # ALSO sampled metrics, labelled
    python scripts/evaluate.py bundle=PATH mode=served                         # the served pipeline, per rule
                                                                               # (docs/served_replay.md)

See configs/evaluate.yaml and journeyrec.evaluation.pipeline.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from journeyrec.cli import user_errors
from journeyrec.config import EvaluateConfig, register_configs
from journeyrec.errors import ConfigError
from journeyrec.typed import to_typed

register_configs()


@hydra.main(version_base="1.3", config_path="../configs", config_name="evaluate")
@user_errors
def main(cfg: DictConfig) -> None:
    typed = to_typed(EvaluateConfig, cfg)
    if typed.mode == "served":
        from journeyrec.serving.replay import run_replay  # heavy imports only after the config is valid

        run_replay(typed)
        return
    if typed.mode != "model":
        raise ConfigError(
            f"mode={typed.mode!r}; allowed: model (the model alone), served (the served pipeline, per rule)"
        )
    from journeyrec.evaluation.pipeline import run_evaluation

    run_evaluation(typed)


if __name__ == "__main__":
    main()
