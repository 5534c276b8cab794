"""Top-k per customer of the journey store, for newsletters and parcel inserts, into Parquet:

    python scripts/batch_recommend.py bundle=PATH customers=all context=newsletter k=10
    python scripts/batch_recommend.py bundle=PATH store=redis store.url=redis://host:6379/0 \\
        customers=ids.txt out=news.parquet

See configs/batch_recommend.yaml and journeyrec.serving.batch.
"""

from __future__ import annotations

import json
import os

# one thread per process, NumPy's OpenBLAS included (set before NumPy loads), as the service runs
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import hydra
from omegaconf import DictConfig

from journeyrec.cli import user_errors
from journeyrec.config import BatchRecommendConfig, register_configs
from journeyrec.typed import to_typed

register_configs()


@hydra.main(version_base="1.3", config_path="../configs", config_name="batch_recommend")
@user_errors
def main(cfg: DictConfig) -> None:
    config = to_typed(BatchRecommendConfig, cfg)  # a bad key fails here, before anything loads
    from hydra.core.hydra_config import HydraConfig

    from journeyrec.serving.batch import run_batch  # torch and FAISS load only after the config is valid

    print(json.dumps(run_batch(config, config.output_dir or HydraConfig.get().runtime.output_dir)))


if __name__ == "__main__":
    main()
