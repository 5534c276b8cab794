"""An ensemble of trained models served as one embedding model.

The mean of M models' dot-product scores is one dot product: ``(1/M) sum_m s_m . v_m =
[s_1 / M, ..., s_M / M] . [v_1, ..., v_M]``. So the ensemble's session vector is its members'
concatenated and scaled by 1/M, its item vector their concatenation, and one FAISS index,
evaluation and serving treat it like any single model (the protocol of
:mod:`journeyrec.models.base`). A learned repeat bias averages the same way: the members' mean.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from journeyrec.models import MODELS

__all__ = ["Ensemble"]


def _member_class(name: str) -> Any:
    if name == Ensemble.name or name not in MODELS:
        raise ValueError(f"an ensemble member must be one of {sorted(set(MODELS) - {Ensemble.name})}, got {name!r}")
    module, cls = MODELS[name].split(":")
    return getattr(importlib.import_module(module), cls)


class Ensemble(nn.Module):
    """``members``: trained models over the same catalogue, window length and input features."""

    name = "ensemble"
    causal = True

    def __init__(self, members: Sequence[Any]) -> None:
        super().__init__()
        if len(members) < 2:
            raise ValueError(f"an ensemble needs at least 2 members, got {len(members)}")
        first = members[0]
        for m in members[1:]:
            for key in ("n_items", "max_len"):
                if m.hparams[key] != first.hparams[key]:
                    raise ValueError(f"ensemble members differ in {key}: {first.hparams[key]} and {m.hparams[key]}")
            if tuple(m.feature_names) != tuple(first.feature_names):
                raise ValueError(
                    f"ensemble members read different features: {first.feature_names} and {m.feature_names}"
                )
        self.members = nn.ModuleList(members)
        self.widths = [int(m.item_vectors().shape[1]) for m in members]
        self.max_len = int(first.hparams["max_len"])
        self.feature_names = tuple(first.feature_names)
        self.causal = all(getattr(m, "causal", True) for m in members)
        self.hparams: dict[str, Any] = {
            "name": self.name,
            "n_items": int(first.hparams["n_items"]),
            "max_len": self.max_len,
            "d_model": sum(self.widths),
            "members": [dict(m.hparams) for m in members],
        }
        if all(isinstance(getattr(m, "repeat_bias", None), torch.Tensor) for m in members):
            self.scores = self._scores  # the optional protocol method, as the members have it
        if all(hasattr(m, "session_vectors_unpadded") for m in members):
            self.session_vectors_unpadded = self._session_vectors_unpadded

    def _models(self) -> list[Any]:
        """The members as the protocol objects they are (nn.ModuleList types them as Modules)."""
        return list(self.members)

    @classmethod
    def from_hparams(cls, hparams: Mapping[str, Any]) -> Ensemble:
        return cls([_member_class(hp["name"]).from_hparams(hp) for hp in hparams["members"]])

    @property
    def repeat_bias(self) -> torch.Tensor | None:
        biases = [getattr(m, "repeat_bias", None) for m in self._models()]
        if not all(isinstance(b, torch.Tensor) for b in biases):
            return None
        return torch.stack(biases).mean()  # type: ignore[arg-type]

    def _split(self, table: torch.Tensor | None) -> list[torch.Tensor | None]:
        return [None] * len(self.members) if table is None else list(table.split(self.widths, dim=1))

    def item_table(self) -> torch.Tensor:
        """The members' item tables side by side (their rows must align: the same special tokens)."""
        tables = [m.item_table() for m in self._models()]
        if len({t.shape[0] for t in tables}) > 1:
            raise ValueError("ensemble members' item tables have different row counts; combine models of one family")
        return torch.cat(tables, dim=1)

    def item_vectors(self, table: torch.Tensor | None = None) -> torch.Tensor:
        return torch.cat([m.item_vectors(t) for m, t in zip(self._models(), self._split(table))], dim=1)

    def session_vectors(
        self, items: torch.Tensor, features: Mapping[str, torch.Tensor] | None = None, table: torch.Tensor | None = None
    ) -> torch.Tensor:
        parts = [m.session_vectors(items, features, t) for m, t in zip(self._models(), self._split(table))]
        return torch.cat(parts, dim=1) / len(self.members)

    def _session_vectors_unpadded(
        self, items: torch.Tensor, features: Mapping[str, torch.Tensor] | None = None, table: torch.Tensor | None = None
    ) -> torch.Tensor:
        parts = [m.session_vectors_unpadded(items, features, t) for m, t in zip(self._models(), self._split(table))]
        return torch.cat(parts, dim=1) / len(self.members)

    def _scores(self, items: torch.Tensor, features: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        """[B, N + 1] the mean of the members' biased scores."""
        return torch.stack([m.scores(items, features) for m in self._models()]).mean(0)
