"""One system (a model or a baseline) on the cases of a prepared split: every number a report needs.

:func:`evaluate_system` is what training (after fit) and ``scripts/evaluate.py`` both call, on top
of :func:`journeyrec.evaluation.ranking.evaluate`, so their metrics.json keys and values agree.
For each split and protocol it gives

* accuracy from full-ranking target ranks (``test/ndcg@10``, ``test_seen_excluded/hr@20``, ...);
* beyond accuracy from the top-max(K) lists (coverage, diversity, novelty, arp, gini);
* 95% bootstrap intervals ``<key>_ci95_low`` / ``<key>_ci95_high`` for every case-mean metric;
* breakdowns ``segments/<split>[_seen_excluded]/<segmenter>/<label>/<metric>`` (with intervals);
* the per-case ranks (with segment labels), the raw material of paired comparisons.

It also records the settings every number depends on (:func:`eval_settings`), so whether history
items were excluded, how ties rank and whether negatives were sampled travels with the metrics.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from journeyrec.data.prepare import PreparedData
from journeyrec.data.sequences import EvalCases, SequenceData, Split, repeated_targets
from journeyrec.evaluation.beyond_accuracy import beyond_accuracy
from journeyrec.evaluation.config import EvalConfig
from journeyrec.evaluation.metrics import per_case_metrics, ranking_metrics, segment_metrics, summarise
from journeyrec.evaluation.rank_kernel import MISS_RANK, PROTOCOLS
from journeyrec.evaluation.ranking import evaluate
from journeyrec.evaluation.statistics import bootstrap_intervals, ci_keys
from journeyrec.models.baselines import training_counts
from journeyrec.models.protocol import RankingModel

__all__ = [
    "ItemStats",
    "SystemEvaluation",
    "evaluate_system",
    "align_items",
    "eval_settings",
    "protocol_prefix",
    "per_case_table",
    "SPLITS",
]

SPLITS: tuple[str, ...] = ("valid", "test")


def protocol_prefix(split: str, protocol: str) -> str:
    """``test/`` for the all-items protocol, ``test_seen_excluded/`` otherwise (metrics.json keys)."""
    return f"{split}/" if protocol == "all" else f"{split}_{protocol}/"


@dataclass
class ItemStats:
    """What beyond-accuracy metrics need about items, in the model's id space.

    ``counts``: training interaction count per id 0..N (popularity, novelty);
    ``attributes``: padded attribute codes [N + 1, T] (-1 = none) for diversity: the category when
    the catalogue has categories, else the tags, else None; ``attribute_kind`` says which.
    """

    counts: np.ndarray
    attributes: np.ndarray | None
    attribute_kind: str

    @classmethod
    def from_data(cls, data: SequenceData, train_ends: np.ndarray, catalog: pa.Table | None = None) -> ItemStats:
        counts = training_counts(data, train_ends)
        cat = catalog if catalog is not None else data.catalog
        attrs, kind = _attributes(cat, data.n_items)
        return cls(counts, attrs, kind)


def _encode(values: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, int]:
    """Dictionary codes (-1 = null) and the number of distinct values."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    enc = pc.dictionary_encode(values)
    codes = pc.fill_null(enc.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    return codes, len(enc.dictionary)


def _attributes(catalog: pa.Table | None, n_items: int) -> tuple[np.ndarray | None, str]:
    """Padded attribute codes [N + 1, T] (-1 = none; row 0 = padding) and which attribute."""
    if catalog is None or catalog.num_rows != n_items:
        return None, "none"
    if "category" in catalog.column_names and catalog.column("category").null_count < catalog.num_rows:
        codes, _ = _encode(catalog.column("category"))
        return np.r_[-1, codes][:, None], "category"
    if "tags" in catalog.column_names:
        tags = catalog.column("tags").combine_chunks()
        lens = pc.fill_null(pc.list_value_length(tags), 0).to_numpy(zero_copy_only=False).astype(np.int64)
        if lens.sum() > 0:
            codes, _ = _encode(pc.list_flatten(tags))
            rows = np.repeat(np.arange(1, n_items + 1), lens)
            keep = codes >= 0
            rows, codes = rows[keep], codes[keep]
            pairs = np.unique(np.stack([rows, codes], axis=1), axis=0)  # an item's tag counts once
            rows, codes = pairs[:, 0], pairs[:, 1]
            width = np.bincount(rows, minlength=n_items + 1)
            out = np.full((n_items + 1, int(width.max())), -1, dtype=np.int64)
            slot = np.arange(len(rows)) - np.repeat(np.cumsum(width) - width, width)
            out[rows, slot] = codes
            return out, "tags"
    return None, "none"


def align_items(
    prepared: PreparedData, item_ids: np.ndarray, catalog: pa.Table | None = None
) -> tuple[PreparedData, dict[str, np.ndarray]]:
    """Re-express prepared data in a model's item id space (``item_ids``: the bundle's order).

    Needed when data is prepared again (or from another file) for a trained model: internal ids
    are positions in a sorted id list and shift when the item set differs. Events on items the
    model does not know are dropped from inputs (as serving drops them); a case whose *target* is
    unknown keeps a placeholder target and is returned in the mask, to be scored as a miss
    (the model cannot recommend it). With identical id lists the data is returned unchanged.

    Returns (aligned data, ``{split: bool mask of cases with an unknown target}``).
    """
    seqs, split = prepared.sequences, prepared.split
    model_ids = np.asarray([str(x) for x in item_ids], dtype=object)
    if len(model_ids) == seqs.n_items and all(a == str(b) for a, b in zip(model_ids, seqs.item_ids)):
        if catalog is not None and catalog.num_rows == seqs.n_items:
            seqs = SequenceData(
                seqs.item_ids,
                seqs.user_ids,
                seqs.offsets,
                seqs.items,
                seqs.event_types,
                seqs.channels,
                seqs.timestamps,
                catalog,
                seqs.sessions,
            )
            prepared = PreparedData(seqs, split, prepared.source, prepared.stats, prepared.extras)
        return prepared, {name: np.zeros(len(getattr(split, name)), dtype=bool) for name in SPLITS}
    index = {x: i + 1 for i, x in enumerate(model_ids)}
    mapping = np.asarray([0] + [index.get(str(x), 0) for x in seqs.item_ids], dtype=np.int64)
    new_items = mapping[seqs.items]
    keep = new_items > 0
    before = np.concatenate([[0], np.cumsum(keep)]).astype(np.int64)  # kept positions before p
    sessions = seqs.sessions[keep] if seqs.sessions is not None else None
    if sessions is None:  # keep the original visits: gaps computed before dropping events
        sessions = seqs.session_ids()[keep]
    aligned = SequenceData(
        item_ids=model_ids,
        user_ids=seqs.user_ids,
        offsets=before[seqs.offsets],
        items=new_items[keep].astype(np.int32),
        event_types=seqs.event_types[keep],
        channels=seqs.channels[keep],
        timestamps=seqs.timestamps[keep],
        catalog=catalog if catalog is not None else pa.table({"item_id": pa.array(model_ids.tolist(), pa.string())}),
        sessions=sessions,
    )
    unknown = {}
    cases = {}
    for name in SPLITS:
        c = getattr(split, name)
        t = mapping[c.targets]
        unknown[name] = t == 0
        cases[name] = EvalCases(c.users, before[c.ends], np.where(t == 0, 1, t).astype(np.int64))
    new_split = Split(split.kind, before[split.train_ends], cases["valid"], cases["test"], dict(split.info))
    stats = dict(prepared.stats, items_unknown_to_model=int((mapping[1:] == 0).sum()))
    return PreparedData(aligned, new_split, prepared.source, stats, prepared.extras), unknown


@dataclass
class SystemEvaluation:
    """Metrics (flat, un-prefixed keys like ``test/ndcg@10``) and per-case results of one system."""

    name: str
    metrics: dict[str, float]
    ranks: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # split -> protocol -> ranks
    topk: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # split -> protocol -> [n, K]
    sampled: dict[str, np.ndarray] = field(default_factory=dict)  # split -> sampled-protocol ranks

    def merge(self, other: SystemEvaluation) -> None:
        """Take in ``other``'s splits (one system evaluated split by split, e.g. around a refit)."""
        self.metrics.update(other.metrics)
        self.ranks.update(other.ranks)
        self.topk.update(other.topk)
        self.sampled.update(other.sampled)


def eval_settings(cfg: EvalConfig, n_items: int, attribute_kind: str) -> dict[str, Any]:
    """The settings behind every number (stored with metrics, printed in reports)."""
    sampled = cfg.sampled_negatives
    return {
        "ranking": "full: every catalogue item is a candidate",
        "n_items": int(n_items),
        "protocols": {
            "all": "nothing excluded (keys <split>/...)",
            "seen_excluded": (
                "every item the user had before the target is excluded; a target that repeats one of them is "
                "a miss, as in S3-Rec's evaluation code (keys <split>_seen_excluded/...; their share: "
                "<split>/repeat_target_share)"
            ),
        },
        "tie_policy": "rank = number of candidates with a strictly higher score; tie_rate reports cases with ties",
        "sampled_negatives": sampled,
        "sampled_protocol": (
            f"ALSO reported, labelled: keys <split>_sampled{sampled}/..., {sampled} negatives drawn uniformly "
            "from items the user had not seen"
        )
        if sampled
        else "none (full ranking only)",
        "bootstrap_resamples": cfg.bootstrap,
        "interval": "95% percentile bootstrap over cases; coverage and gini have none (set-level statistics)",
        "diversity_attribute": attribute_kind,
        "novelty": "mean -log2 p(i), p from training counts with add-one smoothing",
        "ks": list(cfg.ks),
    }


def evaluate_system(
    model: RankingModel,
    prepared: PreparedData,
    cfg: EvalConfig | None = None,
    stats: ItemStats | None = None,
    segments: Mapping[str, Mapping[str, np.ndarray]] | None = None,
    unknown_targets: Mapping[str, np.ndarray] | None = None,
    splits: Sequence[str] = SPLITS,
    name: str | None = None,
    batch_size: int = 512,
    progress: bool = False,
) -> SystemEvaluation:
    """Evaluate ``model`` on ``splits`` of ``prepared`` (see the module docstring).

    Args:
        cfg: evaluation settings (ks, bootstrap, seed, sampled_negatives, beyond_accuracy);
            the defaults of :class:`EvalConfig` when None.
        stats: item counts / attributes (computed from ``prepared`` when None).
        segments: ``{split: {segmenter: labels}}`` for breakdowns (none when None).
        unknown_targets: ``{split: mask}`` of cases whose target the model cannot know
            (:func:`align_items`); they are scored as misses (rank ``MISS_RANK``).
    """
    cfg = cfg or EvalConfig()
    ks = list(cfg.ks)
    n_boot, seed, sampled_n, with_beyond = cfg.bootstrap, cfg.seed, cfg.sampled_negatives, cfg.beyond_accuracy
    seqs = prepared.sequences
    if stats is None and with_beyond:
        stats = ItemStats.from_data(seqs, prepared.split.train_ends)
    name = name or getattr(model, "hparams", {}).get("name", type(model).__name__)
    result = SystemEvaluation(name=name, metrics={})
    for split in splits:
        cases: EvalCases = getattr(prepared.split, split)
        res = evaluate(
            model,
            seqs,
            cases,
            split,
            ks,
            batch_size,
            progress,
            topk=max(ks) if with_beyond else 0,
            sampled_negatives=sampled_n,
            seed=seed,
        )
        ranks = dict(res.ranks)
        sampled = res.sampled
        miss = None if unknown_targets is None else np.asarray(unknown_targets.get(split, []), dtype=bool)
        if miss is not None and miss.any():
            for p in ranks:
                ranks[p] = np.where(miss, MISS_RANK, ranks[p])
            if sampled is not None:
                sampled = np.where(miss, MISS_RANK, sampled)
        m = summarise(ranks, ks, split)
        m[f"{split}/tie_rate"] = res.metrics[f"{split}/tie_rate"]
        m[f"{split}/n_cases"] = float(len(cases))
        m[f"{split}/repeat_target_share"] = res.metrics[f"{split}/repeat_target_share"]
        if miss is not None and miss.any():  # an unknown target's placeholder id repeats nothing
            m[f"{split}/repeat_target_share"] = float((repeated_targets(seqs, cases) & ~miss).mean())
        if miss is not None:
            m[f"{split}/unknown_target_rate"] = float(miss.mean()) if len(miss) else 0.0
        per_all: dict[str, np.ndarray] = {}
        for protocol in PROTOCOLS:
            pfx = protocol_prefix(split, protocol)
            per = per_case_metrics(ranks[protocol], ks)
            for k in ks:
                per[f"recall@{k}"], per[f"map@{k}"] = per[f"hr@{k}"], per[f"mrr@{k}"]
            per_all.update({pfx + key: v for key, v in per.items()})
            if with_beyond and stats is not None:
                agg, ba = beyond_accuracy(res.topk[protocol], ks, stats.counts, stats.attributes, pfx)
                m.update(agg)
                per_all.update(ba)
            for segmenter, labels in ((segments or {}).get(split) or {}).items():
                for label, sm in segment_metrics(ranks[protocol], labels, ks).items():
                    base = f"segments/{pfx}{segmenter}/{label}/"
                    m.update({base + key: v for key, v in sm.items()})
                    if n_boot > 0:
                        sel = np.asarray(labels, dtype=object) == label
                        sub = per_case_metrics(ranks[protocol][sel], ks)
                        for key, (lo, hi) in bootstrap_intervals(sub, n_boot, seed=seed).items():
                            m[ci_keys(base + key)[0]], m[ci_keys(base + key)[1]] = lo, hi
        if sampled is not None:
            pfx = f"{split}_sampled{sampled_n}/"
            m.update(ranking_metrics(sampled, ks, pfx))
            per = per_case_metrics(sampled, ks)
            per_all.update({pfx + key: v for key, v in per.items()})
            result.sampled[split] = sampled
        if n_boot > 0 and len(cases):
            for key, (lo, hi) in bootstrap_intervals(per_all, n_boot, seed=seed).items():
                m[ci_keys(key)[0]], m[ci_keys(key)[1]] = lo, hi
        result.metrics.update(m)
        result.ranks[split] = ranks
        if with_beyond:
            result.topk[split] = res.topk
    return result


def per_case_table(
    evaluation: SystemEvaluation,
    prepared: PreparedData,
    segments: Mapping[str, Mapping[str, np.ndarray]] | None = None,
    role: str = "model",
) -> pa.Table:
    """Per-case ranks of one system as an Arrow table (one row per split x case): the artifact
    ``scripts/compare_runs.py`` pairs across runs by (split, user_id, target_item_id)."""
    seqs = prepared.sequences
    parts = []
    for split, ranks in evaluation.ranks.items():
        cases: EvalCases = getattr(prepared.split, split)
        n = len(cases)
        cols: dict[str, Any] = {
            "model": pa.array([evaluation.name] * n, pa.string()),
            "role": pa.array([role] * n, pa.string()),
            "split": pa.array([split] * n, pa.string()),
            "case": pa.array(np.arange(n, dtype=np.int32)),
            "user_id": pa.array([str(u) for u in seqs.user_ids[cases.users]], pa.string()),
            "target_item_id": pa.array([str(i) for i in seqs.item_ids[cases.targets - 1]], pa.string()),
            "rank_all": pa.array(ranks["all"].astype(np.int64)),
            "rank_seen_excluded": pa.array(ranks["seen_excluded"].astype(np.int64)),
        }
        if split in evaluation.sampled:
            cols["rank_sampled"] = pa.array(evaluation.sampled[split].astype(np.int64))
        for segmenter, labels in ((segments or {}).get(split) or {}).items():
            cols[f"seg_{segmenter}"] = pa.array([str(x) for x in labels], pa.string())
        parts.append(pa.table(cols))
    if not parts:
        return pa.table({})
    return pa.concat_tables(parts, promote_options="default")
