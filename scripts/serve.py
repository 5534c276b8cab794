"""Serve a bundle over HTTP: python scripts/serve.py bundle=PATH [host=127.0.0.1] [port=8000] [ab=own_brand]
[store=sqlite store.path=...] [store=redis store.url=redis://host:6379/0]
(see configs/serve.yaml and docs/live_store.md; any rule is a key: rules.epsilon=0.1 rules.diversity_lambda=0.8)."""

from __future__ import annotations

import os

# one thread per serving process, NumPy's OpenBLAS included (set before NumPy loads): its threaded
# matrix-vector products were ~100x slower on this busy 2-core machine than single-threaded ones
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import sys
from pathlib import Path

from journeyrec.cli import user_errors
from journeyrec.config import ServeConfig, compose_cli
from journeyrec.typed import to_typed

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@user_errors
def main(argv: list[str]) -> None:
    cfg = to_typed(ServeConfig, compose_cli(CONFIGS, "serve", argv))  # fails here on a bad key, before loading
    from journeyrec.serving.server import run

    run(cfg)


if __name__ == "__main__":
    main(sys.argv[1:])
