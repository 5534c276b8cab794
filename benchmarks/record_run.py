"""A training run's figures as a result file: runs ``scripts/train.py`` with the given overrides,
times the whole command, and writes ``docs/results/<name>.json`` with every figure of its
``metrics.json`` and its epoch curve, so a docs page can quote a training result with the
command that produced it.

    python -m benchmarks record-run --name demo_cold_start experiment=demo_cold_start
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

__all__ = ["run"]

ROOT = Path(__file__).resolve().parents[1]
QUIET = ["logger=none", "trainer.progress_bar=false"]


def run(name: str, overrides: Sequence[str], threads: int, workdir: str | Path | None = None) -> dict[str, Any]:
    out = Path(workdir or ROOT / ".cache" / "bench" / "runs" / name)
    cmd = [
        sys.executable,
        "scripts/train.py",
        *overrides,
        *QUIET,
        f"trainer.num_threads={threads}",
        f"hydra.run.dir={out}",
    ]
    env = dict(
        os.environ,
        PYTHONUNBUFFERED="1",
        PYTHONPATH=os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
    )
    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f"{name}.log", "w") as log:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise RuntimeError(f"scripts/train.py failed (exit {proc.returncode}); see {out.parent / f'{name}.log'}")
    metrics = json.loads((out / "metrics.json").read_text())
    curve = json.loads((out / "curve.json").read_text()) if (out / "curve.json").is_file() else []
    return {
        "benchmark": "record-run",
        "train_command": "python scripts/train.py " + " ".join([*overrides, *QUIET]),
        "run_dir": str(out),
        "wall_seconds": round(wall, 1),
        "metrics": metrics,
        "curve": curve,
    }
