"""A/B assignment: a keyed hash of the pseudonymous user id picks the variant.

``u = HMAC-SHA256(salt, experiment name + ":" + pseudonym)`` read as a 64-bit fraction of [0, 1)
is uniform for any set of distinct ids and the same on every call, process and machine, so a
customer stays in one arm for the experiment's life, and arms get their traffic shares.
A different experiment name (or salt) gives an independent split. Requests without a
pseudonymous id (no id sent, or no consent) go to the first variant and are not part of the
comparison (their logs say ``assigned: false``).
"""

from __future__ import annotations

import hashlib
import hmac
from bisect import bisect_right

import numpy as np

from journeyrec.serving.settings import ExperimentConfig, VariantConfig

__all__ = ["Assigner", "unit_hash"]


def unit_hash(key: bytes, text: str) -> float:
    """A number in [0, 1) from a keyed hash (HMAC-SHA256, first 8 bytes)."""
    digest = hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


class Assigner:
    def __init__(self, experiment: ExperimentConfig) -> None:
        self.experiment = experiment
        self.key = (experiment.salt or experiment.name).encode("utf-8")
        self.bounds = np.cumsum([v.share for v in experiment.variants]).tolist()
        self.bounds[-1] = 1.0 + 1e-12  # rounding of the shares never leaves a gap at the top

    @property
    def variants(self) -> list[VariantConfig]:
        return self.experiment.variants

    def assign(self, pseudonym: str | None) -> tuple[VariantConfig, bool]:
        """The variant of a pseudonymous id, and whether it was assigned by hash (False: no id)."""
        if not pseudonym:
            return self.variants[0], False
        u = unit_hash(self.key, f"{self.experiment.name}:{pseudonym}")
        return self.variants[min(bisect_right(self.bounds, u), len(self.variants) - 1)], True
