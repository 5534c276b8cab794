"""Training speed and quality against RecTools' SASRec, measured in one run on one machine.

Both sides train a SASRec of the same shape (max_len, d_model, blocks, heads) with the same batch
size, loss (softmax cross-entropy) and number of epochs on the same S3-Rec file under the same
leave-one-out split. Each side otherwise runs its own settings: the peer the reference settings
of its runner (dropout 0.2, Adam lr 1e-3, constant), journeyrec those of ``OURS`` (recorded in
the result). The
peer runs in its own virtual environment (``.cache/peer-venv``; RecTools pins numpy<2 and an older
Lightning) through ``peer_rectools.py``, which dumps its session and item vectors after every
epoch; journeyrec runs ``scripts/train.py`` with early stopping off. Both sides' metrics come
from journeyrec's metric functions (``evaluation.rank_kernel``, ``evaluation.metrics``) on score
matrices, so the comparison uses one yardstick.

Time to quality: the quality bar is 95% of the best validation seen-excluded NDCG@10 the peer
reaches in this run; each side's time is its cumulative *training* time (evaluation excluded
on both sides) at the first epoch whose validation NDCG@10 reaches the bar.

Final quality: test NDCG@10 of both (the peer at its best validation epoch, journeyrec at its
best checkpoint), and their difference case by case on the same test cases with a 95% paired
bootstrap interval, which says whether a gap is larger than the noise of one test split.
``--compare-only`` recomputes all of it from a finished workdir without training.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from journeyrec.data.prepare import prepare
from journeyrec.data.privacy import pseudonymise, resolve_key
from journeyrec.data.sequences import EvalCases, SequenceData, history_pairs
from journeyrec.evaluation.metrics import per_case_metrics, summarise
from journeyrec.evaluation.rank_kernel import exclusion_mask, target_ranks
from journeyrec.evaluation.statistics import paired_comparison
from journeyrec.io import atomic_write_json

__all__ = ["ensure_peer_venv", "ours_overrides", "run", "train", "compare", "paired_test_metrics"]

ROOT = Path(__file__).resolve().parents[1]
PEER_PINS = ("torch==2.13.0", "rectools[torch]==0.19.0")
SHARED = dict(max_len=50, d_model=64, n_blocks=2, n_heads=2, batch_size=128, loss="softmax")
PEER = dict(dropout=0.2, lr=1e-3, lr_schedule="constant")
# journeyrec's side (Hydra overrides): feed-forward width 1 x d with ReLU (the peer's block width),
# a higher learning rate with cosine decay over the run, dropout 0.3, the learned repeat bias (one
# logit offset for items already in the sequence), relative positions (a learned attention bias
# per distance instead of position embeddings), an exponential moving average of the weights
# (reaches the bar sooner) and a contrastive term between two dropout views of each session.
# Every setting was chosen on Beauty's validation split; the trials and their figures are on the
# docs site (Performance, "How the settings were chosen") and their history in CHANGELOG.md.
OURS = {
    "model.dropout": 0.3,
    "optim.lr": 3e-3,
    "optim.lr_schedule": "cosine",
    "model.ffn_mult": 1,
    "model.activation": "relu",
    "model.repeat_bias": True,
    "model.positions": "relative",
    "trainer.ema_decay": 0.99,
    "loss.contrastive_weight": 0.3,
}


def ours_overrides(data: str, epochs: int) -> list[str]:
    """journeyrec's side as ``scripts/train.py`` overrides: the shared shape, ``OURS``, a fixed
    number of epochs (early stopping off) and nothing written but the run directory."""
    return [
        "experiment=beauty_sasrec",
        f"data.path={data}",
        f"trainer.max_epochs={epochs}",
        f"trainer.min_epochs={epochs}",
        f"trainer.patience={epochs + 1}",
        *(f"model.{k}={v}" for k, v in SHARED.items() if k not in ("batch_size", "loss")),
        f"loss={SHARED['loss']}",
        *(f"{k}={v}" for k, v in OURS.items()),
        f"data.batch_size={SHARED['batch_size']}",
        "logger=none",
        "export.enabled=false",
        "trainer.progress_bar=false",
    ]


def ensure_peer_venv(path: Path) -> Path:
    """The peer's interpreter, creating its virtual environment on first use (needs the package index)."""
    python = path / "bin" / "python"
    if python.exists() and subprocess.run([str(python), "-c", "import rectools"], capture_output=True).returncode == 0:
        return python
    print(f"creating the peer environment in {path} ({', '.join(PEER_PINS)}) ...", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *PEER_PINS], check=True)
    return python


def _ranks(
    user_vecs: np.ndarray, item_vecs: np.ndarray, seqs: SequenceData, cases: EvalCases, chunk: int = 1024
) -> dict[str, np.ndarray]:
    """Ranks of the targets under both protocols from user and item vectors (row 0 = padding)."""
    items = torch.from_numpy(item_vecs)
    out: dict[str, list[torch.Tensor]] = {"all": [], "seen_excluded": []}
    for lo in range(0, len(cases), chunk):
        sub = cases.subset(np.arange(lo, min(lo + chunk, len(cases))))
        scores = torch.from_numpy(user_vecs[lo : lo + chunk]) @ items.T
        scores = torch.nan_to_num(scores, nan=-torch.inf)  # items unknown to a model never outrank
        rows, hist = history_pairs(seqs, sub.users, sub.ends)
        excl = exclusion_mask(scores.shape[0], scores.shape[1], torch.from_numpy(rows), torch.from_numpy(hist))
        targets = torch.from_numpy(sub.targets)
        out["all"].append(target_ranks(scores, targets)[0])
        out["seen_excluded"].append(target_ranks(scores, targets, excl)[0])
    return {k: torch.cat(v).numpy() for k, v in out.items()}


def _peer_metrics(peer_dir: Path, seqs: SequenceData, split: Any, key: bytes) -> tuple[list[dict], dict]:
    meta = json.loads((peer_dir / "run.json").read_text())
    user_row = {u: i for i, u in enumerate(seqs.user_ids)}
    peer_users = [user_row[pseudonymise(u, key)] for u in meta["users"]]
    index = seqs.item_index()
    cols = np.asarray([index[i] for i in meta["item_ids"]], dtype=np.int64)
    pos = {u: r for r, u in enumerate(peer_users)}
    dump_rows = {
        name: [pos[int(u)] for u in cases.users] for name, cases in (("valid", split.valid), ("test", split.test))
    }
    curve = []
    per_epoch_test = []
    for epoch, _secs in enumerate(meta["epoch_train_seconds"], start=1):
        dump = np.load(peer_dir / f"epoch{epoch:03d}.npz", allow_pickle=False)
        item_vecs = np.full((seqs.n_items + 1, dump["items"].shape[1]), np.nan, dtype=np.float32)
        item_vecs[cols] = dump["items"]
        row = {"epoch": epoch, "train_seconds": float(np.sum(meta["epoch_train_seconds"][:epoch]))}
        for name, cases in (("valid", split.valid), ("test", split.test)):
            user_vecs = dump[name][dump_rows[name]].astype(np.float32)
            ranks = _ranks(user_vecs, item_vecs, seqs, cases)
            m = summarise(ranks, [10, 20], name)
            if name == "valid":
                row.update({k: v for k, v in m.items() if k.endswith("ndcg@10")})
            else:
                per_epoch_test.append((m, ranks))
        curve.append(row)
    best = int(np.argmax([r["valid_seen_excluded/ndcg@10"] for r in curve]))
    return curve, {
        "best_epoch": best + 1,
        "test": per_epoch_test[best][0],
        "test_ranks": per_epoch_test[best][1],
        "meta": meta,
    }


def _time_to(curve: list[dict], bar: float) -> float | None:
    for row in curve:
        if row["valid_seen_excluded/ndcg@10"] >= bar:
            return float(row["train_seconds"])
    return None


def run(
    data: str,
    epochs: int = 20,
    workdir: str | Path = ".cache/bench/train-vs-peer",
    peer_venv: str | Path = ".cache/peer-venv",
) -> dict:
    """Train both sides and return the comparison (also printed as one JSON line by the CLI)."""
    train(data, epochs, workdir, peer_venv)
    return compare(workdir, data)


def train(
    data: str,
    epochs: int = 20,
    workdir: str | Path = ".cache/bench/train-vs-peer",
    peer_venv: str | Path = ".cache/peer-venv",
) -> None:
    """Train the peer, then journeyrec, into ``workdir`` (``peer/``, ``ours/``, ``walls.json``)."""
    work = Path(workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    python = ensure_peer_venv(Path(peer_venv).resolve())

    t0 = time.perf_counter()
    subprocess.run(
        [
            str(python),
            str(Path(__file__).with_name("peer_rectools.py")),
            "--data",
            data,
            "--out",
            str(work / "peer"),
            "--epochs",
            str(epochs),
            "--max-len",
            str(SHARED["max_len"]),
            "--blocks",
            str(SHARED["n_blocks"]),
            "--heads",
            str(SHARED["n_heads"]),
            "--hidden",
            str(SHARED["d_model"]),
            "--dropout",
            str(PEER["dropout"]),
            "--lr",
            str(PEER["lr"]),
            "--batch-size",
            str(SHARED["batch_size"]),
        ],
        check=True,
    )
    peer_wall = time.perf_counter() - t0

    t0 = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "train.py"),
            *ours_overrides(data, epochs),
            f"hydra.run.dir={work / 'ours'}",
        ],
        check=True,
        cwd=ROOT,
        env=dict(os.environ),
    )
    ours_wall = time.perf_counter() - t0
    atomic_write_json(
        work / "walls.json",
        {
            "peer_wall_s": peer_wall,
            "ours_wall_s": ours_wall,
            "epochs": epochs,
            "ours_config": OURS,
            "peer_config": PEER,
        },
    )


def paired_test_metrics(peer_ranks: dict[str, np.ndarray], ours_ranks: dict[str, np.ndarray]) -> dict[str, dict]:
    """Test NDCG@10 of journeyrec minus the peer's, case by case on the same test cases, per
    protocol: the mean difference with its 95% paired bootstrap interval and sign-flip p-value
    (``evaluation.statistics.paired_comparison``), so that a gap can be told from run-to-run noise."""
    out = {}
    for protocol in ("all", "seen_excluded"):
        a = per_case_metrics(peer_ranks[protocol], [10])["ndcg@10"]
        b = per_case_metrics(ours_ranks[protocol], [10])["ndcg@10"]
        r = paired_comparison("ndcg@10", a, b)
        key = "test_ndcg@10" if protocol == "all" else "test_seen_excluded_ndcg@10"
        out[key] = {"ours_minus_peer": r.diff, "ci95": [r.ci_low, r.ci_high], "p_value": r.p_value, "cases": r.n}
    return out


def compare(workdir: str | Path, data: str) -> dict:
    """The comparison from a workdir that :func:`train` filled (also re-runnable on its own:
    ``benchmarks/__main__.py train-vs-peer --compare-only``); writes ``result.json``."""
    work = Path(workdir).resolve()
    peer_dir, ours_dir = work / "peer", work / "ours"
    for needed in (
        work / "walls.json",
        peer_dir / "run.json",
        ours_dir / "curve.json",
        ours_dir / "metrics.json",
        ours_dir / "per_case.parquet",
    ):
        if not needed.exists():
            raise FileNotFoundError(f"{needed} is missing: run the benchmark without --compare-only first")
    walls = json.loads((work / "walls.json").read_text())  # what train() ran: wall times and both sides' settings
    ours_curve = json.loads((ours_dir / "curve.json").read_text())
    ours_metrics = json.loads((ours_dir / "metrics.json").read_text())

    import pandas as pd
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(ours_dir / "config.yaml")
    prepared = prepare(cfg.data)
    peer_curve, peer_best = _peer_metrics(
        peer_dir,
        prepared.sequences,
        prepared.split,
        resolve_key(cfg.data.get("hmac_key_file"), allow_demo_key=bool(cfg.data.get("allow_demo_key", False))),
    )
    cases = pd.read_parquet(
        ours_dir / "per_case.parquet", filters=[("split", "==", "test"), ("role", "==", "model")]
    ).sort_values("case")
    if len(cases) != len(prepared.split.test):
        raise ValueError(
            f"{ours_dir / 'per_case.parquet'} has {len(cases)} test cases, the split {len(prepared.split.test)}"
        )
    ours_ranks = {"all": cases["rank_all"].to_numpy(), "seen_excluded": cases["rank_seen_excluded"].to_numpy()}

    bar = 0.95 * max(r["valid_seen_excluded/ndcg@10"] for r in peer_curve)
    t_peer, t_ours = _time_to(peer_curve, bar), _time_to(ours_curve, bar)
    peer_epoch_s = float(np.mean(peer_best["meta"]["epoch_train_seconds"]))
    ours_epoch_s = float(np.mean([r["epoch_seconds"] for r in ours_curve]))
    n_seq = int(peer_best["meta"]["n_train_sequences"])
    result = {
        "benchmark": "train-vs-peer",
        "data": data,
        "epochs": len(ours_curve),
        "config": SHARED,
        "peer_config": walls["peer_config"],
        "ours_config": walls["ours_config"],
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads()},
        "quality_bar_valid_seen_excluded_ndcg@10": bar,
        "peer_time_to_quality_s": t_peer,
        "ours_time_to_quality_s": t_ours,
        "speedup_time_to_quality": (t_peer / t_ours) if (t_peer and t_ours) else None,
        "peer_seconds_per_epoch": peer_epoch_s,
        "ours_seconds_per_epoch": ours_epoch_s,
        "speedup_per_epoch": peer_epoch_s / ours_epoch_s,
        "peer_sequences_per_s": n_seq / peer_epoch_s,
        "ours_sequences_per_s": n_seq / ours_epoch_s,
        "peer_best_epoch": peer_best["best_epoch"],
        "ours_best_epoch": int(ours_metrics["best_epoch"]),
        "peer_test_ndcg@10": peer_best["test"]["test/ndcg@10"],
        "peer_test_seen_excluded_ndcg@10": peer_best["test"]["test_seen_excluded/ndcg@10"],
        "ours_test_ndcg@10": ours_metrics["test/ndcg@10"],
        "ours_test_seen_excluded_ndcg@10": ours_metrics["test_seen_excluded/ndcg@10"],
        "paired": paired_test_metrics(peer_best["test_ranks"], ours_ranks),
        "peer_wall_s": walls["peer_wall_s"],
        "ours_wall_s": walls["ours_wall_s"],
        "peer_peak_rss_mb": peer_best["meta"]["peak_rss_mb"],
        "peer_versions": peer_best["meta"]["versions"],
        "curves": {"peer": peer_curve, "ours": ours_curve},
    }
    atomic_write_json(work / "result.json", result)
    return result
