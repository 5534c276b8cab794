"""What reading the journey adds: the same SASRec trained with more and more of the journey, on
the same prepared data, scored on the next purchase and the next cart.

Arms (each adds to the one before, except that (e) is (d) with a different objective):

  (a) item ids only                 model.features=[]
  (b) + event type                  [event_type]
  (c) + channel                     [event_type, channel]
  (d) + time gap                    [event_type, channel, time_gap]
  (e) views and carts as context    (d) + loss.event_type_weights: every target that is not a
                                    purchase weighs 0, so views and carts are only read, never
                                    predicted

Every arm trains with each seed on one prepared store (prepared once, so every arm sees the same
events, split and subsample), early-stopped on validation NDCG@10 with nothing excluded, and is
scored on the test split: next purchase = test cases whose target is a purchase, next cart =
those whose target is a cart (``segments/test/target_event`` of training's metrics.json; a data
set without such events reports its next item). Both protocols are reported; nothing excluded is
the one to read here, since a purchase usually repeats an item viewed or carted before it (a miss
by construction under seen-excluded). Per case the metric is averaged over the seeds, so an
interval (95% bootstrap over cases, ``evaluation.statistics``) is about the cases and not one seed's
luck, and each arm is compared with the one before and with (a) case by case
(``paired_comparison``: paired bootstrap interval and sign-flip p-value).

    python -m benchmarks journey-ablation --data demo --seeds 0 1 2 --write
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from journeyrec.data.prepare import load_prepared
from journeyrec.data.schema import EVENT_TYPES, ITEM_EVENT_TYPES
from journeyrec.evaluation.metrics import per_case_metrics
from journeyrec.evaluation.statistics import bootstrap_intervals, paired_comparison

__all__ = ["ARMS", "DATASETS", "run", "summarise_arms", "arm_overrides"]

ROOT = Path(__file__).resolve().parents[1]
ALL_FEATURES = ["event_type", "channel", "time_gap"]
# what each arm changes, as scripts/train.py overrides
ARMS: dict[str, dict[str, Any]] = {
    "a_item_ids": {"features": []},
    "b_event_type": {"features": ["event_type"]},
    "c_channel": {"features": ["event_type", "channel"]},
    "d_time_gap": {"features": ALL_FEATURES},
    "e_context_only": {
        "features": ALL_FEATURES,
        "event_type_weights": {e: 0.0 for e in ITEM_EVENT_TYPES if e != "purchase"},
    },
}
# per data set: its config and the settings that keep one arm to a few minutes on 2 cores
DATASETS: dict[str, list[str]] = {
    "demo": ["experiment=demo", "data.options.n_customers=6000"],  # the quickstart's SASRec: 8 epochs, patience 3
    # 84,793 items, most seen once: a full softmax over them costs minutes per epoch on one core,
    # the sampled softmax (logQ-corrected) seconds; validation peaks within a few epochs
    "taobao": [
        "data=taobao",
        "model.max_len=20",
        "loss=sampled_softmax",
        "loss.n_negatives=256",
        "trainer.max_epochs=6",
        "trainer.patience=2",
    ],
    "yoochoose": ["data=yoochoose", "model.max_len=20", "trainer.max_epochs=10", "trainer.patience=3"],
}
COMMON = [
    "logger=none",
    "export.enabled=false",
    "trainer.progress_bar=false",
    "show_samples=0",
    "trainer.monitor=valid/ndcg@10",
    "eval.bootstrap=200",
]
TARGETS = ("purchase", "cart")
KS = (10,)


def arm_overrides(arm: str) -> list[str]:
    spec = ARMS[arm]
    out = [f"model.features=[{','.join(spec['features'])}]"]
    for name, w in spec.get("event_type_weights", {}).items():
        out.append(f"+loss.event_type_weights.{name}={w}")
    return out


def _python() -> str:
    return sys.executable


def _run(args: list[str], log: Path, threads: int) -> None:
    env = dict(
        os.environ,
        PYTHONUNBUFFERED="1",
        OMP_NUM_THREADS=str(threads),
        MKL_NUM_THREADS=str(threads),
        PYTHONPATH=os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
    )
    with open(log, "w") as fh:
        proc = subprocess.run([_python(), *args], cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT)
    if proc.returncode:
        tail = log.read_text()[-3000:]
        raise RuntimeError(f"{' '.join(args[:2])} failed (exit {proc.returncode}); log {log}:\n{tail}")


def prepare_once(data: str, workdir: Path, threads: int, extra: Sequence[str] = ()) -> Path:
    """The one prepared store every arm of ``data`` trains on (``data.*`` overrides in ``extra``
    shape it; the arms then read it as it is)."""
    store = workdir / "prepared"
    if not (store / "prepared.json").is_file():
        data_args = [a for a in [*DATASETS[data], *extra] if a.lstrip("+").startswith("data")]
        if DATASETS[data][0].startswith("experiment="):  # the experiment's data group, spelled out for prepare
            data_args = [f"data={data}"] + data_args
        _run(
            [
                "scripts/prepare_data.py",
                *data_args,
                "logger=none",
                f"output_dir={workdir}",
                "hydra.run.dir=" + str(workdir / "hydra"),
            ],
            workdir / "prepare.log",
            threads,
        )
    return store


def train_arm(
    data: str, arm: str, seed: int, store: Path, workdir: Path, threads: int, extra: Sequence[str] = ()
) -> Path:
    """One training run (skipped when its metrics.json exists); returns its run directory."""
    out = workdir / f"{arm}-seed{seed}"
    if not (out / "metrics.json").is_file():
        args = [
            "scripts/train.py",
            *DATASETS[data],
            *COMMON,
            *arm_overrides(arm),
            f"seed={seed}",
            f"data.prepared={store}",
            f"trainer.num_threads={threads}",
            f"hydra.run.dir={out}",
            *extra,
        ]
        t0 = time.perf_counter()
        _run(args, workdir / f"{arm}-seed{seed}.log", threads)
        (out / "wall_seconds").write_text(f"{time.perf_counter() - t0:.1f}\n")
    return out


def _test_ranks(run_dir: Path) -> dict[str, np.ndarray]:
    t = pq.read_table(run_dir / "per_case.parquet").to_pandas()
    t = t[t.split == "test"].sort_values("case")
    return {"all": t.rank_all.to_numpy(), "seen_excluded": t.rank_seen_excluded.to_numpy()}


def summarise_arms(
    ranks: dict[str, list[dict[str, np.ndarray]]], target_type: np.ndarray, n_boot: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """Per target kind, protocol and arm: the seed-averaged per-case metrics' mean with its 95%
    interval, each seed's mean, and the paired comparison with the arm before and with the first.

    ``ranks[arm]`` holds one ``{protocol: ranks}`` per seed, all on the same test cases in the
    same order; ``target_type`` names each case's target event type."""
    arms = list(ranks)
    kinds = {f"next_{t}": target_type == t for t in TARGETS if (target_type == t).any()}
    kinds["next_item"] = np.ones(len(target_type), dtype=bool)
    out: dict[str, Any] = {}
    for kind, sel in kinds.items():
        block: dict[str, Any] = {"cases": int(sel.sum())}
        for protocol in ("all", "seen_excluded"):
            per_arm = {}
            for arm in arms:
                seeds = [per_case_metrics(r[protocol][sel], KS) for r in ranks[arm]]
                per_arm[arm] = {m: np.mean([s[m] for s in seeds], axis=0) for m in seeds[0]}
                per_arm[arm]["_seeds"] = {m: [round(float(s[m].mean()), 5) for s in seeds] for m in seeds[0]}
            rows = {}
            for i, arm in enumerate(arms):
                row: dict[str, Any] = {}
                metrics = [m for m in per_arm[arm] if m != "_seeds" and m.split("@")[0] in ("ndcg", "hr")]
                ci = bootstrap_intervals({m: per_arm[arm][m] for m in metrics}, n_boot, seed=seed)
                for m in metrics:
                    row[m] = round(float(per_arm[arm][m].mean()), 5)
                    row[f"{m}_ci95"] = [round(ci[m][0], 5), round(ci[m][1], 5)]
                    row[f"{m}_per_seed"] = per_arm[arm]["_seeds"][m]
                    for ref_name, ref in (
                        ("vs_previous", arms[i - 1] if i else None),
                        ("vs_a", arms[0] if i else None),
                    ):
                        if ref is None or (ref_name == "vs_a" and i == 1):
                            continue
                        pc = paired_comparison(
                            m, per_arm[ref][m], per_arm[arm][m], n_boot=n_boot, n_perm=n_boot, seed=seed
                        )
                        row[f"{m}_{ref_name}"] = {
                            "against": ref,
                            "diff": round(pc.diff, 5),
                            "ci95": [round(pc.ci_low, 5), round(pc.ci_high, 5)],
                            "p_value": round(pc.p_value, 4),
                        }
                rows[arm] = row
            block[protocol] = rows
        out[kind] = block
    return out


def run(
    data: str,
    seeds: Sequence[int] = (0, 1, 2),
    arms: Sequence[str] | None = None,
    threads: int = 1,
    workdir: str | Path | None = None,
    extra: Sequence[str] = (),
) -> dict[str, Any]:
    if data not in DATASETS:
        raise ValueError(f"--data {data!r}: known data sets {sorted(DATASETS)}")
    arms = list(arms or ARMS)
    unknown = sorted(set(arms) - set(ARMS))
    if unknown:
        raise ValueError(f"unknown arm(s) {unknown}; known: {list(ARMS)}")
    wd = Path(workdir or ROOT / ".cache" / "bench" / "journey-ablation" / data)
    wd.mkdir(parents=True, exist_ok=True)
    store = prepare_once(data, wd, threads, extra)
    prepared = load_prepared(store)
    seqs, test = prepared.sequences, prepared.split.test
    names = np.asarray(["padding", *EVENT_TYPES], dtype=object)
    target_type = names[seqs.event_types[test.ends]]
    ranks: dict[str, list[dict[str, np.ndarray]]] = {a: [] for a in arms}
    runs: dict[str, list[dict[str, Any]]] = {a: [] for a in arms}
    for arm in tqdm(arms, desc=f"journey ablation on {data}", unit="arm"):
        for seed in seeds:
            out = train_arm(data, arm, seed, store, wd, threads, extra)
            r = _test_ranks(out)
            if len(r["all"]) != len(test):
                raise RuntimeError(f"{out}: {len(r['all'])} test cases, the prepared store has {len(test)}")
            ranks[arm].append(r)
            m = json.loads((out / "metrics.json").read_text())
            wall = out / "wall_seconds"
            runs[arm].append(
                {
                    "seed": seed,
                    "epochs": int(m["epochs"]),
                    "best_epoch": int(m["best_epoch"]),
                    "train_seconds": round(m["train_seconds"], 1),
                    "wall_seconds": float(wall.read_text()) if wall.is_file() else None,
                }
            )
    card = json.loads((store / "dataset_card.json").read_text()) if (store / "dataset_card.json").is_file() else {}
    return {
        "benchmark": "journey-ablation",
        "data": data,
        "source": prepared.source,
        "overrides": [*DATASETS[data], *COMMON, *extra],
        "arms": {a: arm_overrides(a) for a in arms},
        "seeds": list(seeds),
        "threads": threads,
        "split": prepared.split.kind,
        "test_cases": len(test),
        "test_targets_by_type": {str(t): int((target_type == t).sum()) for t in np.unique(target_type)},
        "test_repeat_target_share": card.get("split", {}).get("test_repeat_target_share"),
        "events_by_type": card.get("events", {}).get("by_type"),
        "events_by_channel": card.get("events", {}).get("by_channel"),
        "runs": runs,
        "results": summarise_arms(ranks, target_type),
    }


ARM_LABELS = {
    "a_item_ids": "(a) item ids",
    "b_event_type": "(b) + event type",
    "c_channel": "(c) + channel",
    "d_time_gap": "(d) + time gap",
    "e_context_only": "(e) (d), views and carts as context only",
}


def markdown_table(result: dict[str, Any], protocol: str = "all") -> str:
    """The docs table of one result file: per arm and target kind, NDCG@10 and HR@10 [95% CI] and
    the paired NDCG@10 difference to the arm before (p-value)."""
    res = result["results"]
    kinds = [k for k in ("next_purchase", "next_cart", "next_item") if k in res]
    head = (
        "| arm | "
        + " | ".join(
            f"{k.replace('_', ' ')} ({res[k]['cases']:,} cases): NDCG@10 / HR@10 | vs the arm before" for k in kinds
        )
        + " |"
    )
    lines = [head, "|---|" + "---|---|" * len(kinds)]
    for arm in res[kinds[0]][protocol]:
        cells = []
        for k in kinds:
            row = res[k][protocol][arm]
            n, h = row["ndcg@10"], row["hr@10"]
            cells.append(f"{n:.4f} [{row['ndcg@10_ci95'][0]:.4f}, {row['ndcg@10_ci95'][1]:.4f}] / {h:.4f}")
            d = row.get("ndcg@10_vs_previous")
            cells.append(
                f"{d['diff']:+.4f} [{d['ci95'][0]:+.4f}, {d['ci95'][1]:+.4f}], p = {d['p_value']:.3g}" if d else ""
            )
        lines.append(f"| {ARM_LABELS.get(arm, arm)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
