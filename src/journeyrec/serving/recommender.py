"""Thin inference: load a bundle, encode a session, search the FAISS index.

Imports only torch, FAISS, NumPy and Arrow (no Lightning, no MLflow), so a service starts fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import faiss
import numpy as np
import pyarrow.parquet as pq
import torch
from safetensors.torch import load_file
from torch import nn

from journeyrec.data.schema import channel_codes, event_type_codes
from journeyrec.data.sequences import SequenceData, gather_windows
from journeyrec.export.bundle import BundleError, read_manifest
from journeyrec.export.index import search
from journeyrec.models import MODELS

__all__ = ["Recommender", "Recommendation", "RecommendResult"]


@dataclass
class Recommendation:
    item_id: str
    score: float


@dataclass
class RecommendResult:
    items: list[Recommendation]
    warnings: list[str] = field(default_factory=list)


def _load_model(bundle: Path, manifest: dict[str, Any]) -> nn.Module:
    import importlib

    hp = manifest["model"]
    name = hp.get("name")
    if name not in MODELS:
        raise BundleError(f"{bundle}: model '{name}' is unknown to this journeyrec (known: {sorted(MODELS)})")
    module, cls = MODELS[name].split(":")
    model = getattr(importlib.import_module(module), cls).from_hparams(hp)
    state = load_file(str(bundle / "model.safetensors"))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise BundleError(f"{bundle}: weights do not fit the model (missing {missing[:3]}, unexpected {unexpected[:3]})")
    return model.eval()


class Recommender:
    """Nearest-neighbour recommendations from a bundle directory."""

    def __init__(self, bundle_dir: Path, model: nn.Module, index: faiss.Index, item_ids: np.ndarray, catalog, manifest: dict) -> None:
        self.bundle_dir = bundle_dir
        self.model = model
        self.index = index
        self.item_ids = item_ids
        self.catalog = catalog
        self.manifest = manifest
        self._index_of = {str(x): i + 1 for i, x in enumerate(item_ids)}
        self.features = tuple(getattr(model, "feature_names", ()))

    @classmethod
    def load(cls, bundle_dir: str | Path, verify: bool = True) -> "Recommender":
        """Load and verify a bundle (format version, checksums); raises BundleError if damaged."""
        d = Path(bundle_dir)
        manifest = read_manifest(d, verify=verify)
        model = _load_model(d, manifest)
        index = faiss.read_index(str(d / "index.faiss"))
        catalog = pq.read_table(d / "items.parquet")
        item_ids = np.asarray(catalog.column("item_id").to_pylist(), dtype=object)
        return cls(d, model, index, item_ids, catalog, manifest)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def internal_id(self, item_id: str) -> int | None:
        """Internal (1-based) id of an external item id, None if unknown."""
        return self._index_of.get(str(item_id))

    def internal_ids(self, item_ids: Sequence[str]) -> tuple[np.ndarray, list[str]]:
        """Internal ids of known items (in order) and the list of unknown ones."""
        known, unknown = [], []
        for x in item_ids:
            i = self._index_of.get(str(x))
            (known.append(i) if i is not None else unknown.append(str(x)))
        return np.asarray(known, dtype=np.int32), unknown

    @torch.no_grad()
    def encode(
        self,
        item_ids: Sequence[str],
        event_types: Sequence[str] | None = None,
        channels: Sequence[str] | None = None,
        timestamps_ms: Sequence[int] | None = None,
    ) -> tuple[np.ndarray | None, list[str]]:
        """Session vector of a sequence of events (oldest first); None if no item is known."""
        n = len(item_ids)
        ids = np.asarray([self._index_of.get(str(x), 0) for x in item_ids], dtype=np.int32)
        keep = ids > 0
        warnings = [f"unknown item_id {x!r} ignored" for x, ok in zip(item_ids, keep) if not ok]
        if not keep.any():
            return None, warnings
        etypes = event_type_codes(np.asarray(event_types if event_types is not None else ["view"] * n, dtype=object))
        chans = channel_codes(np.asarray(channels if channels is not None else ["unknown"] * n, dtype=object))
        ts = np.asarray(timestamps_ms if timestamps_ms is not None else np.zeros(n), dtype=np.int64)
        seq = SequenceData(
            item_ids=self.item_ids, user_ids=np.asarray(["session"], dtype=object),
            offsets=np.asarray([0, int(keep.sum())], dtype=np.int64), items=ids[keep], event_types=etypes[keep],
            channels=chans[keep], timestamps=ts[keep], catalog=None,
        )
        window = gather_windows(seq, np.zeros(1, np.int64), np.asarray([seq.n_events]), self.model.max_len, self.features)
        items = torch.from_numpy(window.pop("items"))
        feats = {k: torch.from_numpy(v) for k, v in window.items()}
        return self.model.session_vectors(items, feats)[0].float().numpy(), warnings

    def recommend(
        self,
        item_ids: Sequence[str],
        k: int = 10,
        exclude_history: bool = False,
        event_types: Sequence[str] | None = None,
        channels: Sequence[str] | None = None,
        timestamps_ms: Sequence[int] | None = None,
    ) -> RecommendResult:
        """Top-k items for a session given as external item ids (oldest first)."""
        if k < 1:
            raise ValueError("k must be >= 1")
        query, warnings = self.encode(item_ids, event_types, channels, timestamps_ms)
        if query is None:
            return RecommendResult([], warnings + ["no known item in the session: nothing to personalise on"])
        seen = set(self.internal_ids(item_ids)[0].tolist()) if exclude_history else set()
        ids, scores = search(self.index, query[None, :], k + len(seen))
        out = [
            Recommendation(str(self.item_ids[i - 1]), float(s))
            for i, s in zip(ids[0], scores[0])
            if i > 0 and i not in seen
        ][:k]
        return RecommendResult(out, warnings)
