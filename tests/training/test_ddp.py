"""Data-parallel training (``trainer=ddp``) is the same optimisation as one process.

A real fit with 2 CPU processes (Lightning's DDP launcher, gloo backend) and the same config in
one process, both with global batch 33 (an odd size, so the ranks hold 17 and 16 rows and
different numbers of target positions: the loss must be normalised by the GLOBAL target count
for the runs to agree). Asserted:

* every validation and test metric is equal (abs 1e-6): validation ranks are gathered over the
  ranks and every case counted once, the test split is evaluated by rank 0 on the final weights;
* every weight tensor of ``last.ckpt`` agrees within relative L2 distance 1e-4. Not bit-exact
  because the gradients are summed in a different order (per-rank partial sums, then gloo's
  all-reduce), i.e. float32 rounding of about 1e-7 per step; Adam divides by sqrt(v), so for a
  parameter whose true gradient is ~0 (the key bias: softmax over keys ignores it) that rounding
  noise becomes updates of size ~lr, which is why the key bias drifts most (~2e-5 relative after
  2 epochs, every other tensor <= 5e-6). Normalising by the per-rank count instead gives relative
  distances of 0.003 to 1 (measured when this test was written), so the bound separates.

Dropout is 0: each process draws its own dropout masks (same seed, different rows), so with
dropout the two runs are the same in distribution only. The loss is full softmax: sampled
negatives are drawn per process (see ``journeyrec.training.module``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from journeyrec.data.datasets import EpochBatchSampler

ROOT = Path(__file__).resolve().parents[2]
TINY = [
    "data.options.n_customers=100",
    "model.d_model=16",
    "model.n_blocks=1",
    "model.dropout=0",
    "data.batch_size=33",
    "trainer.max_epochs=2",
    "trainer.min_epochs=2",
    "trainer.patience=10",
    "trainer.num_threads=1",
    "trainer.progress_bar=false",
    "logger=none",
    "export.enabled=false",
    "eval.bootstrap=0",
    "show_samples=0",
]


def _train(out: Path, *extra: str) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    cmd = [
        sys.executable,
        str(ROOT / "scripts" / "train.py"),
        *TINY,
        *extra,
        f"output_dir={out}",
        f"hydra.run.dir={out}",
    ]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    if proc.returncode != 0:
        raise AssertionError(
            f"train.py {' '.join(extra)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )


def test_sampler_ranks_split_the_single_process_batches():
    lengths = np.random.default_rng(0).integers(2, 50, size=101)
    one = list(EpochBatchSampler(lengths, 33, seed=3))
    for epoch in (0, 1):
        single = EpochBatchSampler(lengths, 33, seed=3)
        single.set_epoch(epoch)
        ranks = [EpochBatchSampler(lengths, 33, seed=3, num_replicas=2, rank=r) for r in (0, 1)]
        for r in ranks:
            r.set_epoch(epoch)
        full = list(single)
        parts = [list(r) for r in ranks]
        # the final global batch of 101 % 33 = 2 rows still splits; every step is one global batch
        assert len(parts[0]) == len(parts[1]) == len(full)
        for step, batch in enumerate(full):
            a, b = parts[0][step], parts[1][step]
            assert not set(a) & set(b) and sorted(a + b) == sorted(batch)
            assert abs(len(a) - len(b)) <= 1
    assert one == list(EpochBatchSampler(lengths, 33, seed=3))  # a function of (seed, epoch)
    with pytest.raises(ValueError, match="rank 2 is outside"):
        EpochBatchSampler(lengths, 33, num_replicas=2, rank=2)


@pytest.mark.slow
def test_ddp_two_processes_matches_one_process(tmp_path):
    one, ddp = tmp_path / "one", tmp_path / "ddp"
    _train(one)
    _train(ddp, "trainer=ddp", "trainer.devices=2", "trainer.accelerator=cpu")

    m1, m2 = (json.loads((d / "metrics.json").read_text()) for d in (one, ddp))
    keys = [k for k in m1 if k.startswith(("valid", "test")) and "seconds" not in k]
    assert keys and all(k in m2 for k in keys)
    for k in keys:
        assert m2[k] == pytest.approx(m1[k], abs=1e-6), k
    assert m1["epochs"] == m2["epochs"] == 2

    w1, w2 = (torch.load(d / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"] for d in (one, ddp))
    assert w1.keys() == w2.keys()
    for name, t in w1.items():
        if t.is_floating_point():
            rel = float((w2[name] - t).norm() / t.norm().clamp_min(1e-12))
            assert rel < 1e-4, f"{name}: relative distance {rel:.2e}"
    # the curve is written once (rank 0), with both epochs
    assert [r["epoch"] for r in json.loads((ddp / "curve.json").read_text())] == [1, 2]
