"""The MLflow pyfunc flavour of a bundle: what ``mlflow.pyfunc.load_model("models:/<name>/<v>")``
returns for a bundle registered with :func:`journeyrec.tracking.register_bundle`. It answers with
the same :class:`~journeyrec.serving.recommender.Recommender` and rules as the HTTP service.
MLflow calls :func:`_load_pyfunc` with the registered bundle directory."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Iterator, Mapping

import pandas as pd

from journeyrec.serving.recommender import Recommender
from journeyrec.serving.request import RecommendRequest

__all__ = ["RecommenderPyfunc"]

_DEFAULT_K = RecommendRequest().k  # the service's default list length


class RecommenderPyfunc:
    """What ``mlflow.pyfunc.load_model`` returns for a registered journeyrec bundle.

    ``predict(df, params={"k": 10, "exclude_history": True})`` takes a DataFrame of sessions,
    either one row per session with a list column ``item_ids`` (oldest first; optional list
    columns ``event_types``, ``channels``, ``timestamps_ms`` and a ``session_id``), or one row per
    event with ``session_id`` and ``item_id`` (optional ``event_type``, ``channel``, ``timestamp``;
    rows in time order, or sorted by ``timestamp`` when present). It returns one row per
    recommendation: ``session_id``, ``rank`` (1-based), ``item_id``, ``score``. Answers are those
    of ``journeyrec.serving.Recommender`` with the bundle's rules, as the HTTP service gives them:
    a missing (or None) parameter takes the service's default (``k``: ``RecommendRequest``'s;
    ``exclude_history``: the rules' ``exclude_seen``); ``exclude_history`` set overrides whether
    the session's own items may come back.
    """

    def __init__(self, recommender: Any) -> None:
        self.recommender = recommender

    def predict(self, model_input: Any, params: Mapping[str, Any] | None = None) -> Any:
        params = {name: value for name, value in (params or {}).items() if value is not None}
        k = int(params.get("k", _DEFAULT_K))
        df = pd.DataFrame(model_input)
        sessions = list(self._sessions(df))
        rows = []
        rules = self.recommender.rules  # the bundle's serving rules, as the HTTP service applies them
        if "exclude_history" in params:
            rules = dataclasses.replace(rules, exclude_seen=bool(params["exclude_history"]))
        for sid, items, etypes, channels, ts in sessions:
            request = RecommendRequest.from_items(items, k=k, event_types=etypes, channels=channels, timestamps_ms=ts)
            res = self.recommender.recommend(request, rules)
            rows += [
                {"session_id": sid, "rank": r + 1, "item_id": rec.item_id, "score": rec.score}
                for r, rec in enumerate(res.items)
            ]
        return pd.DataFrame(rows, columns=["session_id", "rank", "item_id", "score"])

    @staticmethod
    def _sessions(df: Any) -> Iterator[tuple[str, list[str], Any, Any, Any]]:
        def opt(row: Any, col: str) -> Any:
            v = row.get(col) if col in row else None
            return None if v is None or (isinstance(v, float) and v != v) else list(v)

        if "item_ids" in df.columns:
            for i, row in df.iterrows():
                sid = str(row["session_id"]) if "session_id" in df.columns else str(i)
                ts = opt(row, "timestamps_ms")
                yield sid, [str(x) for x in row["item_ids"]], opt(row, "event_types"), opt(row, "channels"), ts
        elif {"session_id", "item_id"} <= set(df.columns):
            if "timestamp" in df.columns:
                df = df.assign(_ts=_to_ms(df["timestamp"])).sort_values(["_ts"], kind="stable")
            for sid, g in df.groupby("session_id", sort=False):
                yield (
                    str(sid),
                    g["item_id"].astype(str).tolist(),
                    g["event_type"].tolist() if "event_type" in g else None,
                    g["channel"].tolist() if "channel" in g else None,
                    g["_ts"].tolist() if "_ts" in g else None,
                )
        else:
            raise ValueError(
                "input needs a list column 'item_ids' (one row per session) or columns 'session_id' and "
                f"'item_id' (one row per event); got {list(df.columns)}"
            )


def _to_ms(col: Any) -> Any:
    """Timestamps (datetimes, or numbers already in epoch milliseconds) as int64 epoch milliseconds."""
    if pd.api.types.is_datetime64_any_dtype(col):
        return (pd.to_datetime(col, utc=True) - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)
    return col.astype("int64")


def _load_pyfunc(data_path: str) -> RecommenderPyfunc:
    """MLflow pyfunc loader: ``data_path`` is the registered bundle directory."""
    p = Path(data_path)
    if not (p / "manifest.json").is_file():  # MLflow may hand over the parent of the copied directory
        inner = [d for d in p.iterdir() if (d / "manifest.json").is_file()] if p.is_dir() else []
        if len(inner) == 1:
            p = inner[0]
    return RecommenderPyfunc(Recommender.load(p))
