"""Cart abandonment: fit the candidate models, choose one on validation, compare on test.

Candidates (cases, labels and features: :mod:`journeyrec.models.abandonment`), all fitted on the
same training cases and scored on the same held-out cases:

* ``boosted``: gradient-boosted trees on the session and cart features;
* ``logistic``: a logistic regression on the same features (shows what the trees add over a
  linear model of the same information);
* ``head``: 1 - the sequence model's purchase-intent head, when the model has one.

Baselines: ``logistic_counts``, the intent baseline's logistic regression on count features
(:func:`journeyrec.models.intent.session_features`), and ``cart_age``, how long the cart has been
open, alone (its direction, older = riskier or the reverse, is the one validation prefers).

:func:`choose_model` picks the candidate with the best validation AUC (what an export ships);
:func:`compare` reports every system's AUC on validation and test with 95% intervals from a
bootstrap over sessions (the prefixes of one session are not independent), and the chosen
model's paired AUC difference to each other system on test.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from journeyrec.data.sequences import SequenceData, Split
from journeyrec.evaluation.intent import intent_probabilities
from journeyrec.evaluation.statistics import grouped_auc_resamples, percentile_interval, roc_auc
from journeyrec.models.abandonment import (
    ABANDONMENT_FEATURES,
    CART_AGE,
    AbandonmentModel,
    abandonment_features,
    heldout_abandonment_cases,
    training_design,
)
from journeyrec.models.intent import SESSION_FEATURES, SessionLogit, group_ids
from journeyrec.models.protocol import EmbeddingModel, IntentModel, has_purchase_intent

__all__ = ["CANDIDATES", "BASELINES", "Candidates", "HeldOut", "fit_candidates", "choose_model", "compare", "held_out"]

log = logging.getLogger(__name__)

CANDIDATES: tuple[str, ...] = ("boosted", "logistic", "head")
BASELINES: tuple[str, ...] = ("logistic_counts", "cart_age")
_COUNTS = np.asarray([ABANDONMENT_FEATURES.index(f) for f in SESSION_FEATURES])
_AGE = ABANDONMENT_FEATURES.index(CART_AGE)


@dataclass
class Candidates:
    """Fitted candidate models and baselines (one training design for all)."""

    models: dict[str, AbandonmentModel]  # boosted, logistic (+ head, a marker scored with the sequence model)
    counts: SessionLogit  # the count-feature baseline
    head_model: IntentModel | None  # the sequence model whose intent head is the ``head`` candidate
    age_sign: float = 1.0  # cart_age's direction (set on validation)


@dataclass
class HeldOut:
    """The held-out open-cart prefixes of one split: their features, labels and sessions."""

    users: np.ndarray
    ends: np.ndarray
    labels: np.ndarray
    sessions: np.ndarray  # session group of each case (the bootstrap's unit)
    x: np.ndarray


def held_out(data: SequenceData, split: Split, which: str) -> HeldOut:
    """The open-cart prefixes of the held-out sessions of ``which`` with their features."""
    users, ends, labels = heldout_abandonment_cases(data, split, which)
    return HeldOut(
        users, ends, labels, group_ids(data)[ends - 1] if len(ends) else ends, abandonment_features(data, ends)
    )


def fit_candidates(
    data: SequenceData, train_ends: np.ndarray, model: EmbeddingModel | None = None, seed: int = 0, threads: int = 1
) -> Candidates:
    """Every candidate and baseline fitted on the training cases (trees early-stopped on a
    share of the training customers; the linear models fit all training cases)."""
    x, y, stop = training_design(data, train_ends, seed=seed)
    models = {
        "boosted": AbandonmentModel.fit_boosted(x[~stop], y[~stop], x[stop], y[stop], seed=seed, threads=threads),
        "logistic": AbandonmentModel.fit_logistic(x, y),
    }
    head = model if has_purchase_intent(model) else None
    if head is not None:
        models["head"] = AbandonmentModel.head()
    counts = SessionLogit().fit(x[:, _COUNTS], y)
    return Candidates(models, counts, head)


def _scores(c: Candidates, data: SequenceData, h: HeldOut) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name, m in c.models.items():
        if m.kind == "head":
            assert c.head_model is not None
            out[name] = 1.0 - intent_probabilities(c.head_model, data, h.users, h.ends)
        else:
            out[name] = m.predict(h.x)
    out["logistic_counts"] = c.counts.predict(h.x[:, _COUNTS]) if len(h.x) else np.zeros(0)
    out["cart_age"] = c.age_sign * h.x[:, _AGE]
    return out


def _pick(valid_auc: dict[str, float], names: list[str]) -> str:
    finite = {n: valid_auc[n] for n in names if np.isfinite(valid_auc.get(n, np.nan))}
    if not finite:
        raise ValueError(
            "no abandonment candidate has a validation AUC (the validation split has open carts of one outcome only)"
        )
    return max(finite, key=lambda n: (finite[n], -names.index(n)))  # ties: the earlier (simpler to serve) candidate


def choose_model(
    data: SequenceData, split: Split, model: EmbeddingModel | None = None, seed: int = 0, threads: int = 1
) -> AbandonmentModel:
    """The candidate with the best validation AUC, its ``info`` recording every candidate's;
    ValueError when none beats chance (0.5) on validation."""
    c = fit_candidates(data, split.train_ends, model, seed, threads)
    h = held_out(data, split, "valid")
    scores = _scores(c, data, h)
    valid_auc = {n: roc_auc(scores[n], h.labels) for n in c.models}
    best = _pick(valid_auc, list(c.models))
    if not valid_auc[best] > 0.5:  # a risk at chance would fire the shop's actions at random
        aucs = ", ".join(f"{n} {v:.3f}" for n, v in valid_auc.items())
        raise ValueError(f"no abandonment candidate beats chance on validation (AUC {aucs})")
    chosen = c.models[best]
    chosen.info.update(
        chosen_on="validation AUC",
        validation_auc={n: round(v, 4) for n, v in valid_auc.items()},
        validation_cases=int(len(h.labels)),
        validation_abandon_rate=float(h.labels.mean()),
    )
    log.info("abandonment model: %s (validation AUC %s)", best, ", ".join(f"{n} {v:.3f}" for n, v in valid_auc.items()))
    return chosen


def _interval(values: np.ndarray, point: float) -> dict[str, Any]:
    lo, hi = percentile_interval(values)
    return {"value": round(point, 4), "ci95": [round(lo, 4), round(hi, 4)]}


def compare(
    data: SequenceData,
    split: Split,
    model: EmbeddingModel | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    threads: int = 1,
) -> dict[str, Any]:
    """Every candidate and baseline on validation and test (module docstring): per split the
    cases, sessions and abandonment rate, each system's AUC with its 95% interval (bootstrap over
    sessions), the candidate chosen on validation, and on test its paired AUC difference to
    every other system. The test split is read once, after the choice."""
    c = fit_candidates(data, split.train_ends, model, seed, threads)
    valid = held_out(data, split, "valid")
    scores = _scores(c, data, valid)
    if roc_auc(scores["cart_age"], valid.labels) < 0.5:  # the direction validation prefers
        c.age_sign = -1.0
        scores["cart_age"] = -scores["cart_age"]
    valid_auc = {n: roc_auc(s, valid.labels) for n, s in scores.items()}
    chosen = _pick(valid_auc, list(c.models))
    test = held_out(data, split, "test")
    report: dict[str, Any] = {
        "chosen": chosen,
        "cart_age_direction": "older = riskier" if c.age_sign > 0 else "older = safer",
        "boosted": c.models["boosted"].info,
        "splits": {},
    }
    for which, h in (("valid", valid), ("test", test)):
        s = scores if which == "valid" else _scores(c, data, h)
        boots = grouped_auc_resamples(s, h.labels, h.sessions, n_boot, seed)
        auc = {n: roc_auc(v, h.labels) for n, v in s.items()}
        entry: dict[str, Any] = {
            "cases": int(len(h.labels)),
            "sessions": int(len(np.unique(h.sessions))),
            "abandon_rate": round(float(h.labels.mean()), 4) if len(h.labels) else None,
            "auc": {n: _interval(boots[n], auc[n]) for n in s},
        }
        if which == "test":
            entry["chosen_minus"] = {
                n: _interval(boots[chosen] - boots[n], auc[chosen] - auc[n]) for n in s if n != chosen
            }
        report["splits"][which] = entry
    return report
