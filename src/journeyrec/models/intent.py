"""Purchase intent: per session, the probability that it ends in a purchase.

Target. At position t of a session (the customer has done the events up to and including t),
the label is 1 if a purchase event follows later in the same session, else 0. A model with an
intent head (``intent_weight > 0``) predicts it from its causal hidden state at t, jointly with
the next item; serving asks ``model.purchase_intent(items, features)`` for the live session.

Sessions come from :meth:`journeyrec.data.sequences.SequenceData.session_ids` (the source's
session ids, else a 30-minute inactivity gap).

No leakage. Training labels are computed from the training prefix alone: a position's label is
known when a purchase follows within the prefix (1) or its session ends inside the prefix (0);
positions of sessions cut by the end of the prefix are not trained on. The input of position t
holds events up to t only, never the purchase its label announces.

Evaluation uses held-out sessions: sessions that start at or after the user's training prefix
end (with ``global_time`` splits: every session after the cutoff; with leave-one-out: sessions
starting at the validation or test event). A case is every prefix of such a session that holds
no purchase yet: the question "will this session convert?" is still open there. Prefixes at or
after the session's first purchase are left out: there the session has converted already, and
"another purchase follows" (multi-item checkouts, often at the same second) is a different
question whose easy negatives would flatter the AUC. AUC over all cases
(:func:`journeyrec.evaluation.intent.evaluate_intent`).

Baseline. Every report shows the head beside :class:`SessionLogit`, a logistic regression on
counts read from the same prefix (event types and channel of the newest event, event-type
counts and length of the session so far, its duration, the gap since the previous event, the
user's earlier sessions and purchases), fitted on the same training labels and scored on the
same held-out cases.
"""

from __future__ import annotations

import numpy as np

from journeyrec.data.schema import CHANNELS, EVENT_TYPES
from journeyrec.data.sequences import SequenceData, Split

__all__ = [
    "UNKNOWN",
    "NEGATIVE",
    "POSITIVE",
    "intent_labels",
    "heldout_intent_cases",
    "session_features",
    "SESSION_FEATURES",
    "SessionLogit",
    "group_ids",
]

UNKNOWN, NEGATIVE, POSITIVE = 0, 1, 2
_PURCHASE = EVENT_TYPES.index("purchase") + 1
# column names of :func:`session_features`, in order
SESSION_FEATURES: tuple[str, ...] = (
    *(f"is_{e}" for e in EVENT_TYPES),
    *(f"channel_{c}" for c in CHANNELS),
    *(f"log_n_{e}" for e in EVENT_TYPES),
    "log_length",
    "log_duration_s",
    "log_gap_s",
    "log_earlier_sessions",
    "log_earlier_purchases",
)


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


def group_ids(data: SequenceData) -> np.ndarray:
    """Per position: the id of its (user, session) group."""
    return _groups(data)[1]


def _group_start(gid: np.ndarray) -> np.ndarray:
    """Per position: the first position of its session group."""
    if len(gid) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.r_[0, np.nonzero(np.diff(gid))[0] + 1][gid]


def _count_before(flag: np.ndarray) -> np.ndarray:
    """``c[i]`` = number of True in ``flag[:i]`` (length n + 1): range counts by subtraction."""
    return np.r_[0, np.cumsum(flag, dtype=np.int64)]


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


def heldout_intent_cases(
    data: SequenceData, split: Split, which: str = "test"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(users, ends, labels) of every open prefix (no purchase yet) of the held-out sessions of
    ``which`` (``valid``: sessions starting in [train end, test start); ``test``: starting at or
    after the test start: the time cutoff of a ``global_time`` split, the test event of
    leave-one-out). A case reads the user's events before ``ends`` (exclusive); its label is 1
    when the session has a purchase after the case's last event."""
    if which not in ("valid", "test"):
        raise ValueError(f"which must be 'valid' or 'test', got {which!r}")
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
    group_start = _group_start(gid)
    lo, hi = (train_end, test_start) if which == "valid" else (test_start, data.offsets[1:])
    held = (group_start >= lo[user]) & (group_start < hi[user])
    bought = _count_before(data.event_types == _PURCHASE)
    converted = bought[pos + 1] - bought[group_start] > 0  # a purchase at or before t in t's session
    later = bought[group_last + 1] - bought[pos + 1]
    sel = np.nonzero(held & ~converted)[0]
    return user[sel], pos[sel] + 1, (later[sel] > 0).astype(np.int8)


def session_features(data: SequenceData, ends: np.ndarray) -> np.ndarray:
    """float64 [B, F] features of the session prefix ending at ``ends - 1`` (absolute CSR ends),
    read from events up to and including that position only: one-hot event type and channel of
    the newest event; log1p of the session's count of each event type so far, of its length so
    far, of its duration and of the gap since the previous event (seconds); log1p of the user's
    earlier sessions and earlier purchases."""
    ends = np.asarray(ends, dtype=np.int64)
    t = ends - 1
    user, gid, _ = _groups(data)
    start = _group_start(gid)[t]
    first = data.offsets[:-1][user[t]]
    n_types, n_chan = len(EVENT_TYPES), len(CHANNELS)
    cols = [
        np.eye(n_types + 1)[data.event_types[t].astype(np.int64)][:, 1:],
        np.eye(n_chan + 1)[data.channels[t].astype(np.int64)][:, 1:],
    ]
    for code in range(1, n_types + 1):
        c = _count_before(data.event_types == code)
        cols.append(np.log1p(c[t + 1] - c[start])[:, None])
    ts = data.timestamps.astype(np.float64) / 1000.0
    prev = np.where(t > first, t - 1, t)
    cols += [
        np.log1p(t - start + 1)[:, None],
        np.log1p(np.maximum(ts[t] - ts[start], 0))[:, None],
        np.log1p(np.maximum(ts[t] - ts[prev], 0))[:, None],
        np.log1p(gid[t] - gid[first])[:, None],
    ]  # earlier sessions of the user
    bought = _count_before(data.event_types == _PURCHASE)
    cols.append(np.log1p(bought[start] - bought[first])[:, None])
    return np.concatenate(cols, axis=1)


class SessionLogit:
    """The intent baseline: L2-regularised logistic regression on :func:`session_features`,
    fitted by Newton's method (a few dozen features: exact, deterministic, milliseconds).
    Features are standardised on the training positions; constant ones are dropped."""

    def __init__(self, l2: float = 1.0, iterations: int = 50) -> None:
        self.l2, self.iterations = float(l2), int(iterations)
        self.mean: np.ndarray | None = None
        self.scale: np.ndarray | None = None
        self.coef: np.ndarray | None = None

    def params(self) -> dict[str, list]:
        """The fitted model as plain lists (JSON): kept features, standardisation, coefficients."""
        if self.coef is None:
            raise RuntimeError("SessionLogit.params before fit")
        return {name: np.asarray(getattr(self, name)).tolist() for name in ("keep", "mean", "scale", "coef")}

    @classmethod
    def from_params(cls, params: dict[str, list], l2: float = 1.0) -> SessionLogit:
        """The model :meth:`params` describes, ready to predict."""
        model = cls(l2=l2)
        model.keep = np.asarray(params["keep"], dtype=bool)
        for name in ("mean", "scale", "coef"):
            setattr(model, name, np.asarray(params[name], dtype=np.float64))
        return model

    def _design(self, x: np.ndarray) -> np.ndarray:
        z = (x[:, self.keep] - self.mean) / self.scale
        return np.concatenate([np.ones((len(z), 1)), z], axis=1)

    def fit(self, x: np.ndarray, y: np.ndarray) -> SessionLogit:
        y = np.asarray(y, dtype=np.float64)
        if len(y) == 0 or y.min() == y.max():
            raise ValueError("the intent baseline needs training positions of both classes (purchase later / none)")
        std = x.std(axis=0)
        self.keep = std > 0
        self.mean, self.scale = x[:, self.keep].mean(axis=0), std[self.keep]
        a = self._design(x)
        w = np.zeros(a.shape[1])
        w[0] = np.log(y.mean() / (1 - y.mean()))
        reg = np.full(a.shape[1], self.l2)
        reg[0] = 0.0  # the intercept is not shrunk
        for _ in range(self.iterations):
            p = 1.0 / (1.0 + np.exp(-(a @ w)))
            grad = a.T @ (p - y) + reg * w
            hess = (a * (p * (1 - p))[:, None]).T @ a + np.diag(reg) + 1e-9 * np.eye(len(w))
            step = np.linalg.solve(hess, grad)
            w -= step
            if np.abs(step).max() < 1e-8:
                break
        self.coef = w
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        if self.coef is None:
            raise RuntimeError("SessionLogit.predict before fit")
        return 1.0 / (1.0 + np.exp(-(self._design(x) @ self.coef)))

    @classmethod
    def from_training(cls, data: SequenceData, train_ends: np.ndarray, **kwargs) -> SessionLogit:
        """Fitted on the positions the intent head trains on: labels known inside the training
        prefix (:func:`intent_labels`)."""
        labels = intent_labels(data, train_ends)
        known = np.nonzero(labels > 0)[0]
        return cls(**kwargs).fit(session_features(data, known + 1), labels[known] == POSITIVE)
