"""In-process latency of Recommender.recommend() on a bundle (run it under the CPU lock):

    flock /tmp/journeyrec-cpu.lock python -m benchmarks.recommend_latency --bundle PATH [--events 50] [--k 20]
        [--filters '{"tags": ["17", "4"]}'] [--rules '{"epsilon": 0.1, ...}'] [--requests 2000]

Each request has ``--events`` random catalogue items (views with some carts and purchases and
real timestamps), ``k``, the filters and every rule on (defaults below: exclusion of seen items,
repeat-purchase policy, complements, a boost, MMR diversity, 10% exploration). Baselines measured
in the same run on the same requests: the model alone (encode + top-k, no rules) and the full
pipeline with the model run eagerly (not traced). Prints percentiles and ratios as JSON;
``--stages`` adds the median time of each pipeline step (a separate, timed pass).
"""

from __future__ import annotations

import os

# one thread per serving process, NumPy's OpenBLAS included (set before NumPy loads): its threaded
# matrix-vector products were ~100x slower on this busy 2-core machine than single-threaded ones
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

DEFAULT_RULES = {
    "epsilon": 0.1,
    "diversity_lambda": 0.7,
    "boosts": [{"attribute": "own_brand", "value": True, "weight": 0.1}],
    "seed": 0,
}


def make_requests(rec, n: int, events: int, k: int, filters: dict, seed: int = 0) -> list:
    from journeyrec.serving.request import Event, RecommendRequest

    rng = np.random.default_rng(seed)
    kinds = np.array(["view"] * 6 + ["cart", "purchase"])
    out = []
    for _ in range(n):
        items = rng.integers(0, rec.n_items, size=events)
        ts = 1_770_000_000_000 + np.cumsum(rng.integers(5_000, 3_600_000, size=events))
        ev = [Event(str(rec.item_ids[i]), str(rng.choice(kinds)), "web", int(t)) for i, t in zip(items, ts)]
        out.append(RecommendRequest(events=ev, k=k, filters=filters, now_ms=int(ts[-1]) + 60_000))
    return out


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
    return {"p50_ms": round(float(np.percentile(ms, 50)), 3), "p95_ms": round(float(np.percentile(ms, 95)), 3),
            "p99_ms": round(float(np.percentile(ms, 99)), 3), "mean_ms": round(float(ms.mean()), 3),
            "requests": len(requests), "answers_shorter_than_k": int(short)}


# the pipeline's steps, timed by --stages: (owner, attribute) -> label. The owner "rec" is the
# Recommender instance; "module" the recommender module, whose functions _personal calls by name
STAGES = {
    ("rec", "_parse_events"): "parse events",
    ("encoder", "encode"): "encode (model forward)",
    ("rec", "_base_mask"): "filter mask",
    ("policy", "decide"): "repeat policy",
    ("retriever", "search"): "search",
    ("rec", "_session_complements"): "complements",
    ("module", "mmr_scores"): "diversity (MMR)",
    ("module", "exploration_slots"): "exploration slots",
    ("rec", "_explore"): "exploration picks",
    ("rec", "_similar_reasons"): "reasons",
}


def stage_medians(rec, requests: list, rules) -> dict:
    """Median milliseconds of each pipeline step over ``requests`` (timers wrapped around the
    steps for this pass only, then removed; the wrapping adds a little to every step)."""
    import functools

    from journeyrec.serving import recommender as module

    owners = {"rec": rec, "encoder": rec.encoder, "policy": rec.policy, "retriever": rec.retriever, "module": module}
    times: dict[str, list[float]] = {label: [] for label in STAGES.values()}
    saved = []
    for (owner, attr), label in STAGES.items():
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


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", type=Path, required=True)
    p.add_argument("--events", type=int, default=50)
    p.add_argument("--k", type=int, default=20)
    p.add_argument("--filters", default="{}")
    p.add_argument("--rules", default=json.dumps(DEFAULT_RULES), help="RulesConfig overrides (JSON)")
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--stages", action="store_true", help="also report the median time of each pipeline step (one more pass)")
    args = p.parse_args(argv)

    import faiss
    import torch

    from journeyrec.serving.recommender import Recommender
    from journeyrec.serving.settings import RulesConfig, rules_from_mapping

    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    rules = rules_from_mapping(json.loads(args.rules))
    rec = Recommender.load(args.bundle, rules=rules)
    eager = Recommender.load(args.bundle, rules=rules, trace=False)
    filters = json.loads(args.filters)
    requests = make_requests(rec, args.requests, args.events, args.k, filters)
    eligible = int(np.count_nonzero(rec.attrs.mask(filters) & rec.stock_ok))
    full = measure(rec, requests, rules)
    model_only = measure(rec, [r.__class__(events=r.events, k=r.k, now_ms=r.now_ms) for r in requests], RulesConfig.raw())
    untraced = measure(eager, requests[: max(200, args.requests // 4)], rules)
    report = {
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
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
