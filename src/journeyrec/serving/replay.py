"""Offline replay of the served pipeline: what each business rule costs or gains, as a number.

``scripts/evaluate.py ... mode=served`` (:func:`run_replay`) replays the held-out cases of a
prepared split through :meth:`journeyrec.serving.recommender.Recommender.recommend`, one request
per case (the customer's events before the target, the target's time as "now", consent, the
``served.context`` page), under several rule configurations, and scores each list with the
metric functions of offline evaluation (:mod:`journeyrec.evaluation.metrics`,
:mod:`journeyrec.evaluation.beyond_accuracy`, :mod:`journeyrec.evaluation.statistics`): HR / NDCG /
MRR@K (the target's position in the served list; a target not listed is a miss), catalogue
coverage, intra-list diversity, novelty, average popularity, Gini, and the own-brand share of the
lists, with 95% bootstrap intervals over cases and, per configuration, the paired difference of
NDCG@K to ``raw``.

Configurations (:func:`configurations`), from ``served.rules`` (the rules under test):

* ``raw``: :meth:`RulesConfig.raw`, the model's top-k as the index returns it: nothing excluded,
  so its figures are the model-only evaluation's ``<split>/...`` (nothing-excluded protocol);
* one rule group switched on over ``raw``, with its settings from ``served.rules``:
  ``seen_excluded`` (``exclude_seen``: the seen-excluded protocol, its figures are the model-only
  ``<split>_seen_excluded/...``), ``in_stock``, ``boosts``, ``diversity`` (MMR), ``exploration``,
  ``repeat_policy`` (durables bought recently out, consumables due back in), ``complements``;
* ``all``: ``served.rules`` as they are (seen items excluded unless the rules say otherwise).

Each row names its protocol: "seen excluded" when the configuration excludes the customer's
items, else "nothing excluded". A rule whose catalogue attribute is missing (Beauty has no own
brand, categories or stock) has no effect, and its row equals the one it builds on.

Exploration is random and remembers exposure: before each configuration the Recommender's
exploration state is reset (:meth:`Recommender.reset_exploration`) with ``served.seed``, so every
configuration starts alike and a rerun gives the same figures.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from tqdm.auto import tqdm

from journeyrec.bundle.format import read_bundle
from journeyrec.data.schema import CHANNELS, EVENT_TYPES
from journeyrec.data.sequences import EvalCases, SequenceData
from journeyrec.errors import ConfigError
from journeyrec.evaluation.beyond_accuracy import beyond_accuracy, mean_item_value
from journeyrec.evaluation.config import EvaluateConfig
from journeyrec.evaluation.metrics import per_case_metrics
from journeyrec.evaluation.offline import ItemStats, align_items
from journeyrec.evaluation.pipeline import _output_dir, resolve_data, resolve_model
from journeyrec.evaluation.rank_kernel import MISS_RANK
from journeyrec.evaluation.statistics import bootstrap_intervals, paired_comparison
from journeyrec.io import atomic_write_json
from journeyrec.serving.recommender import Recommender
from journeyrec.serving.request import Context, Event, RecommendRequest
from journeyrec.serving.settings import RulesConfig, rules_from_mapping
from journeyrec.tracking import tracking_uri

__all__ = ["RULE_GROUPS", "configurations", "protocol_of", "replay_lists", "score_lists", "replay", "run_replay"]

log = logging.getLogger(__name__)

# the RulesConfig fields each configuration switches on over raw (from the rules under test)
RULE_GROUPS: dict[str, tuple[str, ...]] = {
    "raw": (),
    "seen_excluded": ("exclude_seen",),
    "in_stock": ("in_stock_only",),
    "boosts": ("boosts",),
    "diversity": ("diversity_lambda", "diversity_attribute"),
    "exploration": ("epsilon", "explore_trending_share"),
    "repeat_policy": (
        "repeat_policy",
        "durable_window_days",
        "due_fraction",
        "default_interval_days",
        "replenish_weight",
    ),
    "complements": ("complement_weight", "complements_per_anchor"),
    "all": tuple(f.name for f in dataclasses.fields(RulesConfig)),
}
_ALWAYS = ("overfetch", "prefilter_below", "seed")  # retrieval and randomness: as in the rules under test


def configurations(rules: RulesConfig, names: Sequence[str]) -> dict[str, RulesConfig]:
    """``{name: RulesConfig}`` for each name of :data:`RULE_GROUPS` (module docstring)."""
    unknown = [n for n in names if n not in RULE_GROUPS]
    if unknown:
        raise ConfigError(f"served.configurations: unknown {unknown}; known: {list(RULE_GROUPS)}")
    raw = RulesConfig.raw()
    return {n: dataclasses.replace(raw, **{f: getattr(rules, f) for f in (*RULE_GROUPS[n], *_ALWAYS)}) for n in names}


def protocol_of(rules: RulesConfig) -> str:
    return "seen excluded" if rules.exclude_seen else "nothing excluded"


def _events(data: SequenceData, user: int, end: int) -> list[Event]:
    lo = int(data.offsets[user])
    ids, et, ch, ts = data.items[lo:end], data.event_types[lo:end], data.channels[lo:end], data.timestamps[lo:end]
    names = data.item_ids
    return [
        Event(str(names[i - 1]), EVENT_TYPES[e - 1], CHANNELS[c - 1], int(t))
        for i, e, c, t in zip(ids.tolist(), et.tolist(), ch.tolist(), ts.tolist())
    ]


def replay_lists(
    rec: Recommender,
    data: SequenceData,
    cases: EvalCases,
    rules: RulesConfig,
    k: int,
    context: str = "home",
    seed: int | None = 0,
    progress: bool = True,
    desc: str = "",
) -> np.ndarray:
    """int64 [n_cases, k] internal ids of each served list (0 = an unfilled slot); ``data`` in the
    Recommender's item ids (:func:`journeyrec.evaluation.offline.align_items`)."""
    rec.reset_exploration(seed)
    out = np.zeros((len(cases), k), dtype=np.int64)
    ctx = Context(context)
    index_of = rec.internal_id
    it = zip(cases.users.tolist(), cases.ends.tolist())
    for j, (u, end) in enumerate(
        tqdm(it, total=len(cases), desc=desc or "replay", disable=not progress, mininterval=2)
    ):
        ts = data.timestamps
        now = int(max(ts[end], ts[end - 1])) if end > data.offsets[u] else int(ts[end])
        request = RecommendRequest(events=_events(data, u, end), k=k, context=ctx, now_ms=now)
        listed = [index_of(r.item_id) or 0 for r in rec.recommend(request, rules).items]
        out[j, : len(listed)] = listed
    return out


def _ranks(topk: np.ndarray, targets: np.ndarray) -> np.ndarray:
    hit = topk == targets[:, None]
    return np.where(hit.any(axis=1), hit.argmax(axis=1), MISS_RANK).astype(np.int64)


def score_lists(
    topk: np.ndarray, targets: np.ndarray, ks: Sequence[int], stats: ItemStats, own_brand: np.ndarray | None
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Aggregates and per-case arrays of one configuration's lists (keys ``ndcg@10``, ``coverage@10``, ...)."""
    ranks = _ranks(topk, targets)
    per = per_case_metrics(ranks, ks)
    agg, ba = beyond_accuracy(topk, ks, stats.counts, stats.attributes)
    per.update(ba)
    if own_brand is not None:
        for k in ks:
            per[f"own_brand@{k}"] = mean_item_value(topk[:, :k], own_brand)
    for key, v in per.items():
        agg[key] = float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")
    return agg, per


def replay(
    rec: Recommender,
    data: SequenceData,
    cases: EvalCases,
    configs: Mapping[str, RulesConfig],
    ks: Sequence[int],
    stats: ItemStats,
    n_boot: int = 1000,
    seed: int = 0,
    context: str = "home",
    progress: bool = True,
    unknown_targets: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    """One row per configuration: protocol, every metric (``{"value", "ci95"}`` where a case mean),
    requests per second, and the paired NDCG@K difference to ``raw`` when ``raw`` is replayed."""
    ks = sorted(int(k) for k in ks)
    k_max = ks[-1]
    own = rec.attrs.bools("own_brand")
    own_brand = (own == 1).astype(np.float64) if (own >= 0).any() else None
    targets = np.where(unknown_targets, -1, cases.targets) if unknown_targets is not None else cases.targets
    rows: list[dict[str, Any]] = []
    per_by: dict[str, dict[str, np.ndarray]] = {}
    for name, rules in configs.items():
        t0 = time.perf_counter()
        topk = replay_lists(rec, data, cases, rules, k_max, context, seed, progress, desc=f"replay {name}")
        seconds = time.perf_counter() - t0
        agg, per = score_lists(topk, targets, ks, stats, own_brand)
        per_by[name] = per
        ci = bootstrap_intervals(per, n_boot, seed=seed) if n_boot > 0 else {}
        row: dict[str, Any] = {"configuration": name, "protocol": protocol_of(rules), "cases": int(len(cases))}
        for key, value in agg.items():
            row[key] = {"value": value, "ci95": list(ci[key])} if key in ci else value
        row["requests_per_s"] = round(len(cases) / seconds, 1) if seconds > 0 else None
        row["rules"] = (
            {f: v for f, v in dataclasses.asdict(rules).items() if f in RULE_GROUPS[name]}
            if name != "all"
            else "served.rules"
        )
        rows.append(row)
    if "raw" in per_by and n_boot > 0:
        key = f"ndcg@{ks[0]}"
        for row in rows:
            if row["configuration"] != "raw":
                r = paired_comparison(
                    key,
                    per_by["raw"][key],
                    per_by[row["configuration"]][key],
                    n_boot=n_boot,
                    n_perm=max(n_boot, 1000),
                    seed=seed,
                )
                row[f"{key}_minus_raw"] = {"value": r.diff, "ci95": [r.ci_low, r.ci_high]}
                row[f"{key}_minus_raw_p"] = r.p_value
    return rows


def run_replay(cfg: EvaluateConfig) -> list[dict[str, Any]]:
    """``scripts/evaluate.py mode=served``: resolve the bundle and data as the model-only
    evaluation does, replay ``served.split`` under ``served.configurations``, write
    ``served.json`` to the output directory and print a table."""
    served = cfg.served
    if served.split not in ("valid", "test"):
        raise ConfigError(f"served.split={served.split!r}; allowed: valid, test")
    rules = rules_from_mapping(dict(served.rules))
    configs = configurations(rules, list(served.configurations))
    out = _output_dir(cfg)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="journeyrec-replay-") as scratch:
        source = resolve_model(cfg, tracking_uri(cfg.logger.tracking_uri), Path(scratch))
        bundle = read_bundle(source.bundle_dir)
        original, data_desc = resolve_data(cfg, source)
    prepared, unknown = align_items(original, bundle.item_ids, bundle.catalog)
    cases: EvalCases = getattr(prepared.split, served.split)
    miss = unknown[served.split]
    if served.limit:
        pick = np.sort(
            np.random.default_rng(served.seed).choice(len(cases), size=min(served.limit, len(cases)), replace=False)
        )
        cases, miss = cases.subset(pick), miss[pick]
    rec = Recommender.from_bundle(bundle, rules=rules)
    stats = ItemStats.from_data(prepared.sequences, prepared.split.train_ends, bundle.catalog)
    log.info(
        "replaying %d %s cases of %s through Recommender.recommend: %s",
        len(cases),
        served.split,
        data_desc,
        ", ".join(configs),
    )
    rows = replay(
        rec,
        prepared.sequences,
        cases,
        configs,
        list(cfg.eval.ks),
        stats,
        int(cfg.eval.bootstrap),
        int(served.seed),
        served.context,
        bool(cfg.eval.progress),
        miss,
    )
    atomic_write_json(
        out / "served.json",
        {
            "bundle": str(source.bundle_dir),
            "data": data_desc,
            "split": served.split,
            "context": served.context,
            "rules": dataclasses.asdict(rules),
            "rows": rows,
        },
    )
    k = int(sorted(cfg.eval.ks)[0])
    lines = [
        f"{'configuration':<15} {'protocol':<17} {'NDCG@' + str(k):>24} {'HR@' + str(k):>24} {'coverage':>9} "
        f"{'diversity':>9} {'own brand':>9} {'novelty':>8}"
    ]
    for r in rows:
        cells = [_cell(r, f"{key}@{k}") for key in ("ndcg", "hr", "coverage", "diversity", "own_brand", "novelty")]
        lines.append(
            f"{r['configuration']:<15} {r['protocol']:<17} {cells[0]:>24} {cells[1]:>24} {cells[2][:6]:>9} "
            f"{cells[3][:6]:>9} {cells[4][:6]:>9} {cells[5][:6]:>8}"
        )
    print("\n".join(lines))
    print(f"wrote {out / 'served.json'}")
    return rows


def _cell(row: Mapping[str, Any], key: str) -> str:
    v = row.get(key)
    if isinstance(v, dict):
        return f"{v['value']:.4f} [{v['ci95'][0]:.4f}, {v['ci95'][1]:.4f}]"
    return "-" if v is None or v != v else f"{v:.4f}"
