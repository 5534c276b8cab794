"""Purchase intent: per session, the probability that it ends in a purchase.

Target. At position t of a session (the customer has done the events up to and including t),
the label is 1 if a purchase event follows later in the same session, else 0. A model with an
intent head (``intent_weight > 0``) predicts it from its causal hidden state at t, jointly with
the next item; serving asks ``model.purchase_intent(items, features)`` for the live session.

Sessions come from :meth:`journeyrec.data.sequences.SequenceData.session_ids` (the source's
session ids, else a 30-minute inactivity gap).

No leakage. Training labels are computed from the training prefix alone: a position's label is
known when a purchase follows within the prefix (1) or its session ends inside the prefix (0);
positions of sessions cut by the end of the prefix are not trained on. Evaluation uses held-out
sessions: sessions that start at or after the user's training prefix end (with ``global_time``
splits: every session after the cutoff; with leave-one-out: sessions starting at the validation
or test event). Every prefix of such a session is one case; AUC over all cases.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

from journeyrec.data.schema import EVENT_TYPES
from journeyrec.data.sequences import SequenceData, Split, gather_windows
from journeyrec.evaluation.metrics import roc_auc

__all__ = ["UNKNOWN", "NEGATIVE", "POSITIVE", "intent_labels", "heldout_intent_cases", "evaluate_intent"]

UNKNOWN, NEGATIVE, POSITIVE = 0, 1, 2
_PURCHASE = EVENT_TYPES.index("purchase") + 1


def _groups(data: SequenceData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per position: user index, global session group id, and the group's last position."""
    n = data.n_events
    user = np.repeat(np.arange(data.n_users, dtype=np.int64), data.lengths)
    sess = np.asarray(data.session_ids(), dtype=np.int64)
    new = np.ones(n, dtype=bool)
    if n > 1:
        new[1:] = (user[1:] != user[:-1]) | (sess[1:] != sess[:-1])
    gid = np.cumsum(new) - 1
    starts = np.nonzero(new)[0]
    last = np.r_[starts[1:], n] - 1
    return user, gid, last[gid]


def intent_labels(data: SequenceData, limit_ends: np.ndarray | None = None) -> np.ndarray:
    """int8 [n_events] label codes (UNKNOWN / NEGATIVE / POSITIVE) seeing only positions before
    ``limit_ends[user]`` (absolute CSR ends; None = everything); positions at or after it are UNKNOWN."""
    n = data.n_events
    user, gid, group_last = _groups(data)
    pos = np.arange(n, dtype=np.int64)
    limit = data.offsets[1:][user] if limit_ends is None else np.asarray(limit_ends, dtype=np.int64)[user]
    inside = pos < limit
    purchase = (data.event_types == _PURCHASE) & inside
    cum = np.cumsum(purchase)
    later = cum[group_last] - cum  # purchases after t in t's session (within the limit)
    complete = group_last < limit
    labels = np.full(n, UNKNOWN, dtype=np.int8)
    labels[inside & (later > 0)] = POSITIVE
    labels[inside & (later == 0) & complete] = NEGATIVE
    return labels


def heldout_intent_cases(data: SequenceData, split: Split, which: str = "test") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(users, ends, labels) of every prefix of the held-out sessions of ``which``
    (``valid``: sessions starting in [train end, test start); ``test``: starting at or after the
    test start: the time cutoff of a ``global_time`` split, the test event of leave-one-out).
    A case reads the user's events before ``ends`` (exclusive)."""
    user, gid, group_last = _groups(data)
    n = data.n_events
    pos = np.arange(n, dtype=np.int64)
    test_start = data.offsets[1:].copy()
    if "cutoff_test_ms" in split.info:  # time split: every user's events from the cutoff on
        after = np.where(data.timestamps >= split.info["cutoff_test_ms"], pos, n)
        nonempty = data.lengths > 0
        test_start[nonempty] = np.minimum(np.minimum.reduceat(after, data.offsets[:-1][nonempty]), test_start[nonempty])
    else:
        test_start[split.test.users] = split.test.ends
    train_end = split.train_ends
    first_of_group = np.r_[0, np.nonzero(np.diff(gid))[0] + 1]
    group_start = first_of_group[gid]
    lo, hi = (train_end, test_start) if which == "valid" else (test_start, data.offsets[1:])
    if which not in ("valid", "test"):
        raise ValueError(f"which must be 'valid' or 'test', got {which!r}")
    held = (group_start >= lo[user]) & (group_start < hi[user])
    later = np.cumsum(data.event_types == _PURCHASE)
    later = later[group_last] - later
    sel = np.nonzero(held)[0]
    return user[sel], pos[sel] + 1, (later[sel] > 0).astype(np.int8)


@torch.no_grad()
def evaluate_intent(model: nn.Module, data: SequenceData, split: Split, which: str = "test",
                    batch_size: int = 1024) -> dict[str, float]:
    """AUC of ``model.purchase_intent`` on the held-out sessions of ``which``:
    ``{which}_intent/auc``, ``/n_cases``, ``/positive_rate``, ``/n_sessions``."""
    users, ends, labels = heldout_intent_cases(data, split, which)
    was_training = model.training
    model.eval()
    probs = []
    feats = tuple(getattr(model, "feature_names", ()))
    for lo in range(0, len(users), batch_size):
        w = gather_windows(data, users[lo : lo + batch_size], ends[lo : lo + batch_size], model.max_len, feats)
        items = torch.from_numpy(w.pop("items"))
        probs.append(model.purchase_intent(items, {k: torch.from_numpy(v) for k, v in w.items()}).float().numpy())
    model.train(was_training)
    p = np.concatenate(probs) if probs else np.zeros(0)
    _, gid, _ = _groups(data)
    key = f"{which}_intent"
    return {
        f"{key}/auc": roc_auc(p, labels),
        f"{key}/n_cases": float(len(labels)),
        f"{key}/n_sessions": float(len(np.unique(gid[ends - 1]))) if len(ends) else 0.0,
        f"{key}/positive_rate": float(labels.mean()) if len(labels) else float("nan"),
    }
