"""Purchase-intent evaluation: AUC of a model's intent head on held-out sessions, beside the
count baseline :class:`journeyrec.models.intent.SessionLogit` scored on the same cases (the
labels and cases are defined in :mod:`journeyrec.models.intent`)."""

from __future__ import annotations

import numpy as np
import torch

from journeyrec.data.sequences import SequenceData, Split, gather_windows
from journeyrec.evaluation.statistics import roc_auc
from journeyrec.models.intent import SessionLogit, group_ids, heldout_intent_cases, session_features
from journeyrec.models.protocol import IntentModel

__all__ = ["evaluate_intent", "intent_probabilities"]


@torch.no_grad()
def intent_probabilities(
    model: IntentModel, data: SequenceData, users: np.ndarray, ends: np.ndarray, batch_size: int = 1024
) -> np.ndarray:
    """``model.purchase_intent`` of the prefixes ``(users, ends)`` (float64 [B]), windows cut as training cuts them."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    probs = []
    feats = tuple(getattr(model, "feature_names", ()))
    for lo in range(0, len(users), batch_size):
        w = gather_windows(data, users[lo : lo + batch_size], ends[lo : lo + batch_size], model.max_len, feats)
        batch = {k: torch.from_numpy(v).to(device) for k, v in w.items()}
        items = batch.pop("items")
        probs.append(model.purchase_intent(items, batch).float().cpu().numpy())
    model.train(was_training)
    return np.concatenate(probs).astype(np.float64) if probs else np.zeros(0)


def evaluate_intent(
    model: IntentModel,
    data: SequenceData,
    split: Split,
    which: str = "test",
    batch_size: int = 1024,
    baseline: SessionLogit | None = None,
) -> dict[str, float]:
    """AUC of ``model.purchase_intent`` on the held-out sessions of ``which``:
    ``{which}_intent/auc``, ``/n_cases``, ``/positive_rate``, ``/n_sessions``, and with a fitted
    ``baseline`` its AUC on the same cases, ``/baseline_auc``."""
    users, ends, labels = heldout_intent_cases(data, split, which)
    p = intent_probabilities(model, data, users, ends, batch_size)
    gid = group_ids(data)
    key = f"{which}_intent"
    out = {
        f"{key}/auc": roc_auc(p, labels),
        f"{key}/n_cases": float(len(labels)),
        f"{key}/n_sessions": float(len(np.unique(gid[ends - 1]))) if len(ends) else 0.0,
        f"{key}/positive_rate": float(labels.mean()) if len(labels) else float("nan"),
    }
    if baseline is not None:
        out[f"{key}/baseline_auc"] = (
            roc_auc(baseline.predict(session_features(data, ends)), labels) if len(ends) else float("nan")
        )
    return out
