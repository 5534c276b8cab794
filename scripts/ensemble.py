"""One serving bundle from several trained on the same catalogue, e.g. seeds of one configuration:

    python scripts/ensemble.py bundles=[outputs/a/bundle,outputs/b/bundle,outputs/c/bundle] out=outputs/ensemble
        [index=HNSW32]

The ensemble scores an item by the mean of the members' scores: one dot product of the
concatenated session and item vectors, so one FAISS index serves it. Its catalogue, rule
statistics and serving settings are the first bundle's; evaluate it with scripts/evaluate.py
bundle=<out> and serve it with scripts/serve.py bundle=<out>. Figures: docs/results_s3rec.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

from journeyrec.cli import user_errors
from journeyrec.config import EnsembleJobConfig, compose_cli
from journeyrec.typed import to_typed

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@user_errors
def main(argv: list[str]) -> None:
    cfg = to_typed(EnsembleJobConfig, compose_cli(CONFIGS, "ensemble", argv))  # a bad key fails before anything loads
    from journeyrec.bundle.ensemble import ensemble_bundle

    print(ensemble_bundle(cfg.bundles, cfg.out, cfg.index))


if __name__ == "__main__":
    main(sys.argv[1:])
