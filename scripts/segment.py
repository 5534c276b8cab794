"""Dynamic segments: FAISS k-means on the user vectors of a trained model, described in a report;
the assignment feeds metric breakdowns (scripts/evaluate.py eval.segments=.../segments.parquet).

    python scripts/segment.py bundle=outputs/DATE/TIME/bundle k=8
    python scripts/segment.py run_id=<mlflow training run id> k=12

See configs/segment.yaml and journeyrec.evaluation.segmentation.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from journeyrec.cli import user_errors
from journeyrec.config import SegmentConfig, register_configs
from journeyrec.typed import to_typed

register_configs()


@hydra.main(version_base="1.3", config_path="../configs", config_name="segment")
@user_errors
def main(cfg: DictConfig) -> None:
    typed = to_typed(SegmentConfig, cfg)
    from journeyrec.evaluation.segmentation import run_segmentation  # heavy imports after the config is valid

    run_segmentation(typed)


if __name__ == "__main__":
    main()
