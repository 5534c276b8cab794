"""The demo shop's generator: generation time against an earlier version of the generator (read
from git, timed in the same run, interleaved), and the statistics of the journeys it makes: event
and channel mix, cart abandonment and recovery, and the prepared leave-one-out split's target
types and repeated targets (what ``data=demo`` trains and tests on).

    python -m benchmarks demo-shop --baseline ba2a47b --write
"""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import torch

from benchmarks.interleaved import interleaved_medians
from journeyrec.bundle.stats import learn_stats
from journeyrec.data import synthetic
from journeyrec.data.prepare import prepare
from journeyrec.data.schema import EVENT_TYPES
from journeyrec.data.sequences import repeated_targets

__all__ = ["run", "baseline_generator"]

ROOT = Path(__file__).resolve().parents[1]


def baseline_generator(commit: str) -> types.ModuleType:
    """``journeyrec.data.synthetic`` as it was at ``commit`` (a module of its own): a commit from
    before the generator became a package, when it was the one file read here."""
    source = subprocess.run(
        ["git", "show", f"{commit}:src/journeyrec/data/synthetic.py"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    module = types.ModuleType(f"synthetic_{commit}")
    sys.modules[module.__name__] = module  # dataclasses look their module up while the class is built
    exec(compile(source, f"{commit}:synthetic.py", "exec"), module.__dict__)
    return module


def _counts(col) -> dict[str, int]:
    return {str(r["values"]): int(r["counts"]) for r in pc.value_counts(col).to_pylist()}


def run(baseline: str | None = "ba2a47b", customers: int = 3000, rounds: int = 5, threads: int = 1) -> dict:
    torch.set_num_threads(threads)
    cfg = synthetic.DemoShopConfig(n_customers=customers)
    variants = {"now": lambda: synthetic.generate(cfg)}
    if baseline:
        old = baseline_generator(baseline)
        variants[f"at {baseline}"] = lambda: old.generate(old.DemoShopConfig(n_customers=customers))
    median = interleaved_medians(variants, rounds)  # the warm-up round builds each catalogue once
    shop = synthetic.generate(cfg)
    ev, carts = shop.events, shop.carts.to_pandas()
    abandoned = carts[carts.abandoned]
    value_high = carts.cart_value > carts.cart_value.median()
    out: dict = {
        "customers": customers,
        "generate_seconds": {name: round(s, 3) for name, s in median.items()},
        "events": ev.num_rows,
        "events_by_type": _counts(ev.column("event_type")),
        "events_by_channel": _counts(ev.column("channel")),
        "sessions": int(pc.count_distinct(ev.column("session_id")).as_py()),
        "cart_sessions": len(carts),
        "abandonment_rate": round(float(carts.abandoned.mean()), 4),
        "mean_p_abandon": round(float(carts.p_abandon.mean()), 4),
        "abandonment_rate_by_channel": {
            k: round(float(v), 4) for k, v in carts.groupby("channel").abandoned.mean().items()
        },
        "abandonment_rate_cart_value_above_median": round(float(carts[value_high].abandoned.mean()), 4),
        "abandonment_rate_cart_value_below_median": round(float(carts[~value_high].abandoned.mean()), 4),
        "recovered_share_of_abandoned": round(float(abandoned.recovered.mean()), 4) if len(abandoned) else 0.0,
    }
    if baseline:
        out["generate_ratio_now_vs_baseline"] = round(median["now"] / median[f"at {baseline}"], 2)
    prepared = prepare(
        {"name": "demo", "options": {"n_customers": customers}, "dedup_consecutive": True, "allow_demo_key": True}
    )
    seqs, split = prepared.sequences, prepared.split
    st = prepared.stats  # what the dataset card shows (README's table of data sources)
    out["dataset_card"] = {
        k: st.get(k)
        for k in (
            "rows_read",
            "quarantined",
            "duplicates_removed",
            "opted_out_rows",
            "users_kept",
            "items",
            "sessions",
            "events_by_type",
        )
    }
    declared = dict(
        zip(shop.catalog.column("category").to_pylist(), shop.catalog.column("repurchase_class").to_pylist())
    )
    rows = learn_stats(seqs).category_table()
    durable = [r for r in rows if declared.get(r["category"]) == "durable"]
    out["durable_categories_learned_durable"] = (
        f"{sum(r['learned_class'] == 'durable' for r in durable)} of {len(durable)}"
    )
    out["max_repurchase_rate_durable"] = round(max(r["repurchase_rate"] for r in durable), 4)
    out["min_repurchase_rate_consumable"] = round(
        min(r["repurchase_rate"] for r in rows if declared.get(r["category"]) == "consumable"), 4
    )
    names = np.asarray(["padding", *EVENT_TYPES], dtype=object)
    for role in ("valid", "test"):
        cases = getattr(split, role)
        types_ = names[seqs.event_types[cases.ends]]
        rep = repeated_targets(seqs, cases)
        out[f"{role}_cases"] = len(cases)
        out[f"{role}_repeat_target_share"] = round(float(rep.mean()), 4)
        out[f"{role}_targets_by_type"] = {str(t): int((types_ == t).sum()) for t in np.unique(types_)}
        out[f"{role}_repeat_share_by_target_type"] = {
            str(t): round(float(rep[types_ == t].mean()), 4) for t in np.unique(types_)
        }
    return {"benchmark": "demo-shop", "threads": threads, "rounds": rounds, **out}
