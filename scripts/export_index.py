"""(Re-)export a training run's serving bundle, e.g. with another FAISS index:

    python scripts/export_index.py run=outputs/2026-11-22/20-00-00 [export=hnsw] [export.index="IVF256,PQ16x4fs,RFlat"]
        [out=PATH] [checkpoint=final|best|last|PATH] [log_mlflow=true]

Reads the run's config.yaml, prepared/ data and checkpoint (final, the default: the weights of the
run's own bundle, refitted when trainer.refit_epochs > 0; best: the epoch early stopping picked,
before any refit); learns the rule statistics; builds the index, tunes its search parameter on
validation session vectors and records recall@K and QPS in the manifest; logs the bundle to the
run's MLflow run (artifact path bundle-<version>).
"""

from __future__ import annotations

import sys
from pathlib import Path

from journeyrec.cli import user_errors
from journeyrec.config import ExportJobConfig, compose_cli
from journeyrec.typed import to_typed

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@user_errors
def main(argv: list[str]) -> None:
    cfg = to_typed(ExportJobConfig, compose_cli(CONFIGS, "export_index", argv))  # a bad key fails before anything loads
    from journeyrec.training.export_run import export_run

    print(export_run(cfg))


if __name__ == "__main__":
    main(sys.argv[1:])
