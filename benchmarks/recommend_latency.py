"""In-process latency of Recommender.recommend() on a bundle (run it under the CPU lock):

    flock /tmp/journeyrec-cpu.lock python -m benchmarks recommend-latency --bundle PATH [--events 50] [--k 20]
        [--filters '{"tags": ["17", "4"]}'] [--rules '{"epsilon": 0.1, ...}'] [--requests 2000] [--save]

Each request has ``--events`` random catalogue items (``harness.random_sessions``: views with some
carts and purchases and real timestamps), ``k``, the filters and every rule on (defaults below: exclusion of seen items,
repeat-purchase policy, complements, a boost, MMR diversity, 10% exploration). Baselines measured
in the same run on the same requests: the model alone (encode + top-k, no rules) and the full
pipeline with the model run eagerly (not traced). Reports percentiles and ratios; ``--stages``
adds the median time of each pipeline step (a separate, timed pass). One OpenBLAS thread, as a
serving process has (``benchmarks/__main__.py`` sets it before NumPy loads).
"""

from __future__ import annotations

import argparse
import functools
import json
import time
from pathlib import Path

import faiss
import numpy as np
import torch

from benchmarks.harness import random_sessions
from journeyrec.serving import recommender as recommender_module
from journeyrec.serving.recommender import Recommender
from journeyrec.serving.request import Event, RecommendRequest
from journeyrec.serving.settings import RulesConfig, rules_from_mapping

__all__ = [
    "DEFAULT_RULES",
    "STAGES",
    "add_arguments",
    "main",
    "make_requests",
    "measure",
    "stage_attrs",
    "stage_medians",
]

DEFAULT_RULES = {
    "epsilon": 0.1,
    "diversity_lambda": 0.7,
    "boosts": [{"attribute": "own_brand", "value": True, "weight": 0.1}],
    "seed": 0,
}


def make_requests(
    rec: Recommender, n: int, events: int, k: int, filters: dict, seed: int = 0
) -> list[RecommendRequest]:
    """``harness.random_sessions`` over the bundle's items, as in-process requests."""
    item_ids = [str(i) for i in rec.item_ids[: rec.n_items]]
    return [
        RecommendRequest(
            events=[Event(e["item_id"], e["event_type"], e["channel"], e["timestamp"]) for e in session],
            k=k,
            filters=filters,
            now_ms=now,
        )
        for session, now in random_sessions(item_ids, n, events, seed)
    ]


def measure(rec, requests: list, rules, warmup: int = 50) -> dict:
    for r in requests[:warmup]:
        rec.recommend(r, rules)
    times = np.empty(len(requests))
    short = 0
    for j, r in enumerate(requests):
        t = time.perf_counter()
        res = rec.recommend(r, rules)
        times[j] = time.perf_counter() - t
        short += len(res.items) < r.k
    ms = times * 1000
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p95_ms": round(float(np.percentile(ms, 95)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "mean_ms": round(float(ms.mean()), 3),
        "requests": len(requests),
        "answers_shorter_than_k": int(short),
    }


# the pipeline's steps, timed by --stages: (owner, attribute) -> label. The owner "rec" is the
# Recommender instance, the others its parts by attribute name, and "module" the recommender
# module, whose functions (imported from rules.py and exploration.py) _personal calls by name
STAGES = {
    ("event_parser", "parse"): "parse events",
    ("encoder", "encode"): "encode (model forward)",
    ("rec", "_base_mask"): "filter mask",
    ("policy", "decide"): "repeat policy",
    ("retriever", "search"): "search",
    ("module", "session_complements"): "complements",
    ("module", "mmr_scores"): "diversity (MMR)",
    ("module", "exploration_slots"): "exploration slots",
    ("module", "random_picks"): "exploration picks",
    ("rec", "_similar_reasons"): "reasons",
}


def stage_attrs(rules) -> dict:
    """STAGES with the exploration picks of the configured mode (the bandit's or the random ones)."""
    if getattr(rules, "exploration", "random") != "bandit":
        return dict(STAGES)
    random_picks = ("module", "random_picks")
    return {(("module", "bandit_picks") if key == random_picks else key): label for key, label in STAGES.items()}


def stage_medians(rec, requests: list, rules) -> dict:
    """Median milliseconds of each pipeline step over ``requests`` (timers wrapped around the
    steps for this pass only, then removed; the wrapping adds a little to every step)."""
    owners = {
        "rec": rec,
        "event_parser": rec.event_parser,
        "encoder": rec.encoder,
        "policy": rec.policy,
        "retriever": rec.retriever,
        "module": recommender_module,
    }
    times: dict[str, list[float]] = {label: [] for label in STAGES.values()}
    saved = []
    for (owner, attr), label in stage_attrs(rules).items():
        obj = owners[owner]
        fn = getattr(obj, attr)
        saved.append((obj, attr, obj.__dict__.get(attr) if owner != "module" else fn))

        def timed(*a, _fn=fn, _out=times[label], **kw):
            t = time.perf_counter()
            try:
                return _fn(*a, **kw)
            finally:
                _out.append(time.perf_counter() - t)

        setattr(obj, attr, functools.wraps(fn)(timed))
    try:
        measure(rec, requests, rules)
    finally:
        for obj, attr, old in saved:
            if old is None:
                delattr(obj, attr)  # back to the class's method
            else:
                setattr(obj, attr, old)
    return {label: round(float(np.median(v)) * 1000, 3) if v else None for label, v in times.items()}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bundle", type=Path, required=True)
    p.add_argument("--events", type=int, default=50)
    p.add_argument("--k", type=int, default=20)
    p.add_argument("--filters", default="{}")
    p.add_argument("--rules", default=json.dumps(DEFAULT_RULES), help="RulesConfig overrides (JSON)")
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--stages", action="store_true", help="also report the median time of each pipeline step (one more pass)"
    )


def main(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[dict]:
    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    rules = rules_from_mapping(json.loads(args.rules))
    rec = Recommender.load(args.bundle, rules=rules)
    eager = Recommender.load(args.bundle, rules=rules, trace=False)
    filters = json.loads(args.filters)
    requests = make_requests(rec, args.requests, args.events, args.k, filters)
    eligible = int(np.count_nonzero(rec.attrs.mask(filters) & rec.stock_ok))
    full = measure(rec, requests, rules)
    model_only = measure(
        rec, [r.__class__(events=r.events, k=r.k, now_ms=r.now_ms) for r in requests], RulesConfig.raw()
    )
    untraced = measure(eager, requests[: max(200, args.requests // 4)], rules)
    report = {
        "benchmark": "recommend-latency",
        "bundle": str(args.bundle),
        "items": rec.n_items,
        "index": rec.manifest["index"]["factory"],
        "traced": rec.encoder.traced is not None,
        "threads": args.threads,
        "events": args.events,
        "k": args.k,
        "filters": filters,
        "eligible_items": eligible,
        "rules": json.loads(args.rules),
        "full_pipeline": full,
        "baseline_model_only_no_rules": model_only,
        "baseline_full_pipeline_eager_model": untraced,
        "ratio_full_vs_model_only_p50": round(full["p50_ms"] / model_only["p50_ms"], 2),
        "ratio_eager_vs_traced_p50": round(untraced["p50_ms"] / full["p50_ms"], 2),
    }
    if args.stages:
        report["stages_median_ms"] = stage_medians(rec, requests, rules)
    return [report]
