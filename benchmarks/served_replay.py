"""The served pipeline replayed offline, per rule configuration: what each business rule costs or
gains in accuracy, coverage, diversity, own-brand share and novelty, with 95% intervals
(:mod:`journeyrec.serving.replay`, the code of ``scripts/evaluate.py mode=served``; the
overrides are that script's).

    python -m benchmarks served-replay bundle=.cache/runs/demo/bundle --save served_replay_demo
    python -m benchmarks served-replay bundle=.cache/runs/beauty/bundle served.limit=5000 --save served_replay_beauty
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import faiss
import torch
from hydra import compose, initialize_config_dir

from journeyrec.config import EvaluateConfig, register_configs
from journeyrec.serving.replay import run_replay
from journeyrec.typed import to_typed

__all__ = ["add_arguments", "main"]

ROOT = Path(__file__).resolve().parents[1]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=int, default=1, help="torch / FAISS threads (serving runs one)")
    p.add_argument(
        "overrides", nargs="+", help="scripts/evaluate.py overrides: bundle=PATH (required), served.*, eval.*"
    )


def main(a: argparse.Namespace, _: argparse.ArgumentParser) -> list[dict[str, Any]]:
    torch.set_num_threads(a.threads)
    faiss.omp_set_num_threads(a.threads)
    register_configs()
    with tempfile.TemporaryDirectory(prefix="served-replay-") as out:
        with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
            cfg = compose("evaluate", overrides=["mode=served", "logger=none", f"output_dir={out}", *a.overrides])
        rows = run_replay(to_typed(EvaluateConfig, cfg))
    return [_rounded(r) for r in rows]


def _rounded(value: Any) -> Any:
    """Figures to 4 decimals for the result file (served.json keeps them exact)."""
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value
