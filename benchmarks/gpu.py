"""The GPU path, measured in one command on a CUDA machine (``benchmarks/gpu.sh``).

1. The recommended configuration (``experiment=s3rec_best``) trained on Beauty four ways:
   float32 and bf16-mixed, each eager and with ``trainer.compile=true``. Per arm: training
   sequences per second and median epoch time (training only; ``curve.json``), the training time
   until validation seen-excluded NDCG@10 first reaches the quality bar, peak GPU memory
   (``torch.cuda.max_memory_allocated``), and the test figures of ``metrics.json`` (NDCG@10 and
   HR@10 under both protocols, with their 95% intervals), so that they can be set beside the CPU
   run's; the arms are also compared with the float32 eager arm case by case (paired interval),
   which is what "equal within noise" means here.
2. One training step (forward, backward, optimiser) of the same SASRec at 1M items: full softmax
   (the chunked cross-entropy over every item) against sampled softmax (logQ-corrected, the step
   gathers only the rows it reads), milliseconds per step and peak memory.

Each arm runs in its own process with a time limit, so one slow arm (a long compilation) cannot
eat the whole device budget, and every finished arm is written to the result file at once.
The defaults fit a 15-minute device budget on one H100: the whole runs within ``--budget``
seconds (690 s), each arm at most ``--max-epochs`` epochs (20: the CPU run of this configuration
early-stops at 17 on Beauty) plus the configuration's refit, in an equal share of the budget left;
an arm that runs out of time still reports the epochs it finished (throughput, time to the bar).

``--dry-run`` runs the same code on the CPU at tiny sizes (a generated S3-Rec-format file of a
few hundred users, one epoch and one refit epoch per arm, bf16 autocast and torch.compile on the
CPU, 2,000 items for the step timing): what the test suite runs, so the script is known to work
before a GPU is lent.

    python -m benchmarks gpu --write            # on the GPU machine (benchmarks/gpu.sh)
    python -m benchmarks gpu --dry-run          # anywhere
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = ["ARMS", "run", "run_arm", "softmax_steps", "tiny_s3rec_file", "summarise_arm"]

ROOT = Path(__file__).resolve().parents[1]
BEAUTY = "../shared/data/amazon/Beauty.txt"
ARMS: dict[str, list[str]] = {
    "fp32": ["trainer.precision=32-true"],
    "bf16-mixed": ["trainer.precision=bf16-mixed"],
    "fp32+compile": ["trainer.precision=32-true", "trainer.compile=true"],
    "bf16-mixed+compile": ["trainer.precision=bf16-mixed", "trainer.compile=true"],
}
BAR_SHARE = 0.95  # the quality bar: this share of the reference arm's best validation NDCG@10
MONITOR = "valid_seen_excluded/ndcg@10"
TEST_KEYS = ("test_seen_excluded/ndcg@10", "test_seen_excluded/hr@10", "test/ndcg@10", "test/hr@10")


def tiny_s3rec_file(path: Path, users: int = 300, items: int = 400, seed: int = 0) -> Path:
    """A small file in the S3-Rec format (``user item item ...`` per line, no repeats per user)
    whose sequences walk through item neighbourhoods, so that a model has something to learn,
    with its ``<name>_item2attributes.json`` (a neighbourhood tag per item, as s3rec_best reads)."""
    rng = np.random.default_rng(seed)
    lines = []
    for u in range(1, users + 1):
        length = int(rng.integers(5, 16))
        start = int(rng.integers(1, items + 1))
        seq = []
        for k in range(length):
            item = (start + 3 * k + int(rng.integers(0, 3))) % items + 1
            if item not in seq:
                seq.append(item)
        lines.append(" ".join(str(x) for x in [u, *seq]))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    tags = {str(i): [1 + (i - 1) // 10, 100 + i % 7] for i in range(1, items + 1)}
    path.with_name(f"{path.stem}_item2attributes.json").write_text(json.dumps(tags))
    return path


def _arm_overrides(arm: str, store: str, out: Path, max_epochs: int, dry_run: bool, extra: Sequence[str]) -> list[str]:
    accelerator = "cpu" if dry_run else "gpu"
    base = [
        "experiment=s3rec_best",
        f"data.prepared={store}",
        f"trainer.accelerator={accelerator}",
        "trainer.devices=1",
        f"trainer.max_epochs={max_epochs}",
        "logger=none",
        "export.enabled=false",
        "trainer.progress_bar=false",
        "show_samples=0",
        f"output_dir={out}",
    ]
    if dry_run:
        base += [
            "model.d_model=16",
            "trainer.refit_epochs=1",
            "trainer.num_threads=1",
            "eval.bootstrap=50",
            "data.batch_size=64",
        ]
    return [*base, *ARMS[arm], *extra]


def run_arm(
    arm: str, store: str, out: Path, max_epochs: int, dry_run: bool, extra: Sequence[str] = ()
) -> dict[str, Any]:
    """Train one arm on the prepared ``store`` in this process and return its figures
    (``arm.json`` in ``out`` too)."""
    import torch

    from journeyrec.config import compose_cli
    from journeyrec.io import atomic_write_json
    from journeyrec.training.run import train

    cuda = torch.cuda.is_available() and not dry_run
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    cfg = compose_cli(str(ROOT / "configs"), "train", _arm_overrides(arm, store, out, max_epochs, dry_run, extra))
    t0 = time.perf_counter()
    result = train(cfg)
    wall = time.perf_counter() - t0
    curve = json.loads((out / "curve.json").read_text())

    figures = summarise_arm(curve, result.metrics, train_sequences(store))
    figures.update(
        arm=arm,
        overrides=ARMS[arm],
        wall_seconds=round(wall, 1),
        peak_gpu_memory_mib=round(torch.cuda.max_memory_allocated() / 2**20, 1) if cuda else None,
        device=torch.cuda.get_device_name(0) if cuda else "cpu (dry run)",
    )
    atomic_write_json(out / "arm.json", figures)
    return figures


def train_sequences(store: str | Path) -> int:
    """Training sequences per epoch: users whose training prefix has a target (2+ items)."""
    from journeyrec.data.prepare import load_prepared

    prepared = load_prepared(store, mmap=True)
    return int((prepared.split.train_ends - prepared.sequences.offsets[:-1] >= 2).sum())


def summarise_arm(curve: list[dict[str, float]], metrics: dict[str, float], n_train_sequences: int) -> dict[str, Any]:
    """Throughput and quality of one arm from its epoch curve and metrics.json."""
    epochs = [row["epoch_seconds"] for row in curve]
    # the first epoch holds one-off costs (compilation, allocator and cuDNN warm-up): left out of
    # the median when there are later ones
    steady = epochs[1:] if len(epochs) > 1 else epochs
    median = statistics.median(steady) if steady else float("nan")
    out: dict[str, Any] = {
        "epochs": len(curve),
        "n_train_sequences": n_train_sequences,
        "epoch_seconds_median": round(median, 3),
        "first_epoch_seconds": round(epochs[0], 3) if epochs else None,
        "sequences_per_second": round(n_train_sequences / median, 1) if median > 0 else None,
        "train_seconds": round(curve[-1]["train_seconds"], 1) if curve else None,
        "best_valid": max((row.get(MONITOR, float("-inf")) for row in curve), default=None),
        "curve": [{k: (round(v, 5) if isinstance(v, float) else v) for k, v in row.items()} for row in curve],
        "refit_seconds": round(metrics["refit_seconds"], 1) if "refit_seconds" in metrics else None,
    }
    for key in TEST_KEYS:
        out[key] = metrics.get(key)
        out[f"{key}_ci95"] = [metrics.get(f"{key}_ci95_low"), metrics.get(f"{key}_ci95_high")]
    return out


def time_to_bar(curve: list[dict[str, float]], bar: float) -> float | None:
    """Training seconds at the end of the first epoch whose validation figure reaches ``bar``."""
    for row in curve:
        if row.get(MONITOR, float("-inf")) >= bar:
            return round(row["train_seconds"], 1)
    return None


def softmax_steps(
    items: int, device: str, steps: int = 20, batch: int = 128, max_len: int = 50, dim: int = 128, negatives: int = 256
) -> dict[str, Any]:
    """ms per training step (forward + backward + Adam) of a SASRec with ``items`` items under the
    full softmax and the sampled softmax, timed after two warm-up steps, with peak memory."""
    import warnings

    import torch

    from journeyrec.models.config import LossConfig
    from journeyrec.models.sasrec import SASRec
    from journeyrec.training.module import RecModule

    warnings.filterwarnings("ignore", message=".*self.log.*")  # no Trainer: the logged loss goes nowhere

    out: dict[str, Any] = {"items": items, "batch": batch, "max_len": max_len, "d_model": dim, "steps": steps}
    gen = torch.Generator().manual_seed(0)
    seq = torch.randint(1, items + 1, (batch, max_len + 1), generator=gen)
    batch_cpu = {"items": seq[:, :-1], "targets": seq[:, 1:], "target_index": torch.arange(batch * max_len)}
    for loss, cfg in (
        ("softmax", LossConfig(name="softmax")),
        ("sampled_softmax", LossConfig(name="sampled_softmax", n_negatives=negatives)),
    ):
        torch.manual_seed(0)
        model = SASRec(items, d_model=dim, n_blocks=2, n_heads=2, max_len=max_len, dropout=0.2)
        module = RecModule(model, cfg, item_counts=np.ones(items + 1)).to(device)
        opt = module.configure_optimizers()
        opt = opt["optimizer"] if isinstance(opt, dict) else opt
        b = {k: v.to(device) for k, v in batch_cpu.items()}
        if device.startswith("cuda"):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        times = []
        for i in range(steps + 2):
            t0 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            module.training_step(b, i).backward()
            opt.step()
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            if i >= 2:
                times.append(time.perf_counter() - t0)
        out[loss] = {
            "ms_per_step": round(1e3 * statistics.median(times), 2),
            "peak_memory_mib": round(torch.cuda.max_memory_allocated() / 2**20, 1)
            if device.startswith("cuda")
            else None,
        }
        del module, opt, model
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    # three significant figures, so a ratio far below 1 (a small table on a loaded CPU) keeps its precision
    out["full_over_sampled"] = float(f"{out['softmax']['ms_per_step'] / out['sampled_softmax']['ms_per_step']:.3g}")
    return out


def _child(args: list[str], timeout: float, log: Path) -> tuple[int, float]:
    """``python ARGS`` (a script path, or this module's child commands when ``args[0]`` is one of
    them) in a child process, killed after ``timeout`` seconds (exit status 124 then)."""
    env = dict(
        os.environ,
        PYTHONUNBUFFERED="1",
        PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH", "")]),
    )
    cmd = [sys.executable, *(args if args[0].endswith(".py") else ["-m", "benchmarks.gpu", *args])]
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        try:
            rc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT, timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            rc = 124
    return rc, time.perf_counter() - t0


def run(
    workdir: str | Path,
    dry_run: bool = False,
    data: str | None = None,
    max_epochs: int = 20,
    budget_s: float = 690.0,
    softmax_items: int = 1_000_000,
    bar: float | None = None,
    cpu_metrics: str | None = None,
    arms: Sequence[str] | None = None,
    extra: Sequence[str] = (),
    on_update: Any = None,
    softmax_reserve_s: float = 100.0,
) -> dict[str, Any]:
    """Every arm, each in a child process, then the softmax steps; returns the result (and hands
    each partial result to ``on_update`` as it grows). ``budget_s`` bounds the whole: each arm may
    use an equal share of what is left after ``softmax_reserve_s``, so time an arm does not use
    goes to the next ones."""
    import torch

    wd = Path(workdir)
    wd.mkdir(parents=True, exist_ok=True)
    if dry_run:  # torch.compile on a busy CPU takes minutes where a GPU machine takes seconds
        data = str(tiny_s3rec_file(wd / "tiny" / "Tiny.txt"))
        max_epochs, softmax_items, budget_s = 1, 2000, max(budget_s, 1500.0)
    data = data or BEAUTY
    if not dry_run and not torch.cuda.is_available():
        raise RuntimeError("no CUDA device: run on a GPU machine, or use --dry-run to check the script on the CPU")
    t_start = time.perf_counter()
    result: dict[str, Any] = {
        "benchmark": "gpu",
        "dry_run": dry_run,
        "data": data,
        "max_epochs": max_epochs,
        "budget_s": budget_s,
        "arms": {},
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
    }
    store = wd / "data" / "prepared"  # prepared once: every arm reads the same store
    if not (store / "prepared.json").is_file():
        cmd = [
            "scripts/prepare_data.py",
            "data=s3rec",
            f"data.path={data}",
            "logger=none",
            f"output_dir={store.parent}",
            f"hydra.run.dir={store.parent / 'hydra'}",
        ]
        rc, seconds = _child(cmd, budget_s / 4, wd / "prepare.log")
        if rc:
            raise RuntimeError(f"preparing {data} failed (exit {rc}): see {wd / 'prepare.log'}")
        result["prepare_seconds"] = round(seconds, 1)
    n_train = train_sequences(store)
    todo = list(arms or ARMS)
    for i, arm in enumerate(todo):
        name = arm.replace("+", "_")
        out = wd / name
        args = [
            "arm",
            arm,
            "--store",
            str(store),
            "--out",
            str(out),
            "--max-epochs",
            str(max_epochs),
            *(["--dry-run"] if dry_run else []),
            *[f"--override={o}" for o in extra],
        ]
        share = (budget_s - softmax_reserve_s - (time.perf_counter() - t_start)) / (len(todo) - i)
        rc, seconds = _child(args, max(share, 30.0), wd / f"{name}.log")
        if rc == 0 and (out / "arm.json").is_file():
            result["arms"][arm] = json.loads((out / "arm.json").read_text())
        else:
            fig: dict[str, Any] = {
                "arm": arm,
                "failed": f"timeout after {seconds:.0f} s" if rc == 124 else f"exit {rc}",
                "log_tail": (wd / f"{name}.log").read_text()[-2000:],
            }
            if (out / "curve.json").is_file():  # the epochs it finished still say how fast it trains
                fig.update(summarise_arm(json.loads((out / "curve.json").read_text()), {}, n_train))
            result["arms"][arm] = fig
        if on_update:
            on_update(result)
    done = {k: v for k, v in result["arms"].items() if "failed" not in v}
    reference = done.get("fp32") or next(iter(done.values()), None)
    if reference is not None or bar is not None:
        bar_value = bar if bar is not None else BAR_SHARE * float(reference["best_valid"])
        result["quality_bar"] = {
            "valid_seen_excluded_ndcg@10": round(bar_value, 5),
            "from": "--bar" if bar is not None else f"{BAR_SHARE} x the fp32 arm's best validation",
        }
        for fig in result["arms"].values():
            if fig.get("curve"):
                fig["time_to_bar_seconds"] = time_to_bar(fig["curve"], bar_value)
        _paired_with_reference(result, wd)
    if cpu_metrics:
        cpu = json.loads(Path(cpu_metrics).read_text())
        result["cpu_reference"] = {"path": cpu_metrics, **{k: cpu.get(k) for k in TEST_KEYS}}
        for fig in done.values():
            lo, hi = fig["test_seen_excluded/ndcg@10_ci95"]
            c = cpu.get("test_seen_excluded/ndcg@10")
            fig["cpu_test_seen_excluded_ndcg@10_within_ci"] = None if c is None or lo is None else bool(lo <= c <= hi)
    if on_update:
        on_update(result)
    path = wd / "softmax.json"
    left = max(budget_s - (time.perf_counter() - t_start), softmax_reserve_s / 2)
    rc, seconds = _child(
        ["softmax", "--items", str(softmax_items), "--out", str(path), *(["--dry-run"] if dry_run else [])],
        left,
        wd / "softmax.log",
    )
    result["softmax_steps"] = (
        json.loads(path.read_text())
        if rc == 0 and path.is_file()
        else {"failed": "timeout" if rc == 124 else f"exit {rc}", "log_tail": (wd / "softmax.log").read_text()[-2000:]}
    )
    result["total_seconds"] = round(time.perf_counter() - t_start, 1)
    if on_update:
        on_update(result)
    return result


def _paired_with_reference(result: dict[str, Any], wd: Path) -> None:
    """Test NDCG@10 (seen excluded) of every arm against the fp32 arm on the same cases."""
    import pyarrow.parquet as pq

    from journeyrec.evaluation.metrics import per_case_metrics
    from journeyrec.evaluation.statistics import paired_comparison

    def ranks(arm: str) -> np.ndarray | None:
        p = wd / arm.replace("+", "_") / "per_case.parquet"
        if not p.is_file():
            return None
        t = pq.read_table(p).to_pandas()
        return t[t.split == "test"].sort_values("case").rank_seen_excluded.to_numpy()

    ref = ranks("fp32")
    if ref is None:
        return
    a = per_case_metrics(ref, [10])["ndcg@10"]
    for arm, fig in result["arms"].items():
        r = ranks(arm)
        if arm == "fp32" or r is None or "failed" in fig:
            continue
        pc = paired_comparison("ndcg@10", a, per_case_metrics(r, [10])["ndcg@10"], n_boot=2000, n_perm=2000)
        fig["test_seen_excluded_ndcg@10_minus_fp32"] = {
            "diff": round(pc.diff, 5),
            "ci95": [round(pc.ci_low, 5), round(pc.ci_high, 5)],
            "p_value": round(pc.p_value, 4),
        }


def _main(argv: list[str] | None = None) -> None:
    """Child entry points: ``arm NAME ...`` and ``softmax ...`` (see :func:`run`)."""
    import argparse

    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="what", required=True)
    p = sub.add_parser("arm")
    p.add_argument("name", choices=list(ARMS))
    p.add_argument("--store", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--max-epochs", type=int, required=True)
    p.add_argument("--dry-run", action="store_true")
    p.add_argument("--override", action="append", default=[])
    p = sub.add_parser("softmax")
    p.add_argument("--items", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--dry-run", action="store_true")
    a = ap.parse_args(argv)
    if a.what == "arm":
        run_arm(a.name, a.store, Path(a.out), a.max_epochs, a.dry_run, a.override)
    else:
        import torch

        from journeyrec.io import atomic_write_json

        device = "cpu" if a.dry_run or not torch.cuda.is_available() else "cuda"
        res = softmax_steps(a.items, device, steps=3 if a.dry_run else 20, batch=16 if a.dry_run else 128)
        res["device"] = torch.cuda.get_device_name(0) if device == "cuda" else "cpu (dry run)"
        atomic_write_json(Path(a.out), res)


if __name__ == "__main__":
    _main()
