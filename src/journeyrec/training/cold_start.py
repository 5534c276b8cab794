"""Cold-start protocol: hide a share of the items from training, then rank them from attributes.

``hide_items`` picks the hidden items (seeded) and returns a copy of the prepared data whose
training sequences no longer contain them (their events are removed; the item id space and the
catalogue are unchanged, so the hidden items keep their attributes). Validation (early stopping)
runs on the filtered data. ``evaluate_cold`` then ranks, on the *original* sequences, the test
cases whose target is a hidden item — full ranking over all items — for the trained model (whose
``known`` mask marks hidden items, so they are scored by attribute-only vectors) and for two
references on the same cases: global popularity, which has never seen them (they tie at zero
behind every seen item: a floor, not a competitor), and the attribute-aware baseline a shop would
use for a new product, :func:`category_popularity_ranks` (a new item as popular as its category's
average item; reported beside it: as its best seller, and that with the customer's newest category
first).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import numpy as np
import torch

from journeyrec.bundle.stats import category_codes
from journeyrec.data.prepare import PreparedData
from journeyrec.data.sequences import EvalCases, SequenceData, Split
from journeyrec.evaluation.metrics import summarise
from journeyrec.evaluation.rank_kernel import target_ranks
from journeyrec.evaluation.ranking import evaluate
from journeyrec.models.protocol import RankingModel

__all__ = ["hide_items", "training_counts", "evaluate_cold", "category_popularity_ranks", "COLD_BASELINES"]


def training_counts(data: SequenceData, train_ends: np.ndarray) -> np.ndarray:
    """[N + 1] number of training events per item id (row 0 = 0): popularity as training saw it."""
    user = np.repeat(np.arange(data.n_users), data.lengths)
    inside = np.arange(data.n_events) < np.asarray(train_ends)[user]
    return np.bincount(data.items[inside], minlength=data.n_items + 1).astype(np.int64)


def _filter(data: SequenceData, keep: np.ndarray) -> tuple[SequenceData, np.ndarray]:
    """SequenceData with only the ``keep`` positions, and old position -> new position (-1 if dropped)."""
    new_index = np.cumsum(keep) - 1
    user = np.repeat(np.arange(data.n_users), data.lengths)
    counts = np.bincount(user[keep], minlength=data.n_users)
    offsets = np.zeros(data.n_users + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    sessions = data.session_ids()[keep]  # resolved before filtering: gaps must not merge sessions
    out = SequenceData(
        item_ids=data.item_ids,
        user_ids=data.user_ids,
        offsets=offsets,
        items=data.items[keep],
        event_types=data.event_types[keep],
        channels=data.channels[keep],
        timestamps=data.timestamps[keep],
        catalog=data.catalog,
        sessions=sessions,
    )
    return out, np.where(keep, new_index, -1)


def hide_items(prepared: PreparedData, fraction: float, seed: int = 0) -> tuple[PreparedData, np.ndarray]:
    """(training data without the hidden items, boolean [N + 1] hidden mask)."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"eval.cold_items must be in (0, 1), got {fraction}")
    seqs, split = prepared.sequences, prepared.split
    rng = np.random.default_rng(seed)
    n_hidden = int(round(fraction * seqs.n_items))
    hidden = np.zeros(seqs.n_items + 1, dtype=bool)
    hidden[1 + rng.choice(seqs.n_items, size=n_hidden, replace=False)] = True
    filtered, new_pos = _filter(seqs, ~hidden[seqs.items])
    # a user's training prefix ends where the original one did, counted in kept positions
    starts = filtered.offsets[:-1]
    user = np.repeat(np.arange(seqs.n_users), seqs.lengths)
    kept_before = np.bincount(
        user,
        weights=(~hidden[seqs.items]) & (np.arange(seqs.n_events) < split.train_ends[user]),
        minlength=seqs.n_users,
    ).astype(np.int64)
    train_ends = starts + kept_before
    ok = ~hidden[split.valid.targets]
    valid = EvalCases(split.valid.users[ok], new_pos[split.valid.ends[ok]], split.valid.targets[ok])
    ok = ~hidden[split.test.targets]
    test = EvalCases(split.test.users[ok], new_pos[split.test.ends[ok]], split.test.targets[ok])

    # keep only cases whose user still has history before the target
    def nonempty(c: EvalCases) -> EvalCases:
        return c.subset(np.nonzero(c.ends > filtered.offsets[c.users])[0])

    new_split = Split(split.kind, train_ends, nonempty(valid), nonempty(test), dict(split.info, cold_items=n_hidden))
    stats = dict(prepared.stats, cold_items=n_hidden)
    return replace(prepared, sequences=filtered, split=new_split, stats=stats), hidden


@torch.no_grad()
def _popularity_ranks(counts: np.ndarray, targets: np.ndarray) -> np.ndarray:
    scores = torch.as_tensor(counts, dtype=torch.float32)[None, :].expand(len(targets), -1)
    return target_ranks(scores, torch.as_tensor(targets))[0].numpy()


COLD_BASELINES = {
    # name: (a new item's popularity = its category's mean | best seller, newest category first)
    "category_popularity": ("mean", False),
    "category_best_seller": ("best", False),
    "session_category": ("best", True),
}


@torch.no_grad()
def category_popularity_ranks(
    data: SequenceData,
    cases: EvalCases,
    hidden: np.ndarray,
    train_counts: np.ndarray,
    cold_as: str = "mean",
    session_category: bool = False,
    batch_size: int = 1024,
) -> np.ndarray:
    """Ranks of ``cases``' targets under attribute-aware popularity: every item ranked by its
    training popularity, an item training never saw (``hidden``) counted as popular as the mean
    (``cold_as="mean"``) or the best-selling (``"best"``) seen item of its category; with
    ``session_category`` the items of the category of the customer's newest item come first.

    ``mean`` is the fair baseline: on cases whose target is a hidden item, ``best`` lifts every
    hidden item to its category's top and wins by the choice of cases (on any other case that
    lift would cost); it is reported beside it, as is the context-aware variant."""
    if cold_as not in ("mean", "best"):
        raise ValueError(f"cold_as={cold_as!r}: mean or best")
    _, cat = category_codes(data.catalog)
    seen = ~hidden.copy()
    seen[0] = False
    n_cat = int(cat.max()) + 1
    if cold_as == "mean":
        total = np.bincount(cat[seen], weights=train_counts[seen], minlength=n_cat)
        per_cat = total / np.maximum(np.bincount(cat[seen], minlength=n_cat), 1)
    else:
        per_cat = np.zeros(n_cat, dtype=np.float64)
        np.maximum.at(per_cat, cat[seen], train_counts[seen].astype(np.float64))
    estimate = np.where(hidden, per_cat[cat], train_counts).astype(np.float64)
    estimate[0] = 0.0
    popularity = torch.as_tensor(estimate / (estimate.max() + 1.0), dtype=torch.float64)
    item_cat = torch.as_tensor(cat, dtype=torch.int64)
    newest = torch.as_tensor(cat[data.items[cases.ends - 1]], dtype=torch.int64)
    out = []
    for lo in range(0, len(cases), batch_size):
        scores = popularity[None, :].expand(len(cases.targets[lo : lo + batch_size]), -1)
        if session_category:
            same = (item_cat[None, :] == newest[lo : lo + batch_size, None]) & (newest[lo : lo + batch_size, None] > 0)
            scores = scores + same.to(torch.float64)
        out.append(target_ranks(scores, torch.as_tensor(cases.targets[lo : lo + batch_size]))[0].numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def evaluate_cold(
    model: RankingModel,
    prepared: PreparedData,
    hidden: np.ndarray,
    train_counts: np.ndarray,
    ks: Sequence[int],
    batch_size: int = 512,
) -> dict[str, float]:
    """Metrics on the original test cases whose target is hidden: ``test_cold/...`` for the model
    (both protocols), ``test_cold_popularity/...`` for training popularity,
    and ``test_cold_<name>/...`` for each of :data:`COLD_BASELINES` (:func:`category_popularity_ranks`)."""
    test = prepared.split.test
    sel = np.nonzero(hidden[test.targets])[0]
    cases = test.subset(sel)
    out = {"test_cold/n_cases": float(len(cases))}
    if not len(cases):
        return out
    res = evaluate(model, prepared.sequences, cases, "test_cold", ks, batch_size)
    out.update({k: v for k, v in res.metrics.items() if k != "test_cold/n_cases"})
    pop = _popularity_ranks(train_counts, cases.targets)
    out.update(
        {
            k.replace("test_cold/", "test_cold_popularity/"): v
            for k, v in summarise({"all": pop}, ks, "test_cold").items()
        }
    )
    for name, (cold_as, context) in COLD_BASELINES.items():
        ranks = category_popularity_ranks(prepared.sequences, cases, hidden, train_counts, cold_as, context)
        out.update(
            {
                k.replace("test_cold/", f"test_cold_{name}/"): v
                for k, v in summarise({"all": ranks}, ks, "test_cold").items()
            }
        )
    return out
