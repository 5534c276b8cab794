"""Privacy by design: user ids are pseudonymised with a keyed HMAC before anything is written.

The key comes from the environment variable ``JOURNEYREC_HMAC_KEY`` or the data config
(``data.hmac_key``); it is never logged or stored. Without either, the built-in demo key is used,
which is only acceptable for the demo shop and public benchmark files.
"""

from __future__ import annotations

import hashlib
import hmac
import os

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["DEMO_KEY", "HMAC_ENV", "resolve_key", "pseudonymise", "pseudonymise_column"]

HMAC_ENV = "JOURNEYREC_HMAC_KEY"
DEMO_KEY = "journeyrec-demo-key-not-secret"


def resolve_key(configured: str | None = None) -> bytes:
    """The HMAC key: environment first, then config, then the (public) demo key."""
    key = os.environ.get(HMAC_ENV) or configured or DEMO_KEY
    return key.encode("utf-8")


def pseudonymise(user_id: str, key: bytes) -> str:
    """Stable pseudonym of one raw user id (16 hex chars of HMAC-SHA256)."""
    return "u" + hmac.new(key, user_id.encode("utf-8"), hashlib.sha256).hexdigest()[:16]


def pseudonymise_column(col: pa.ChunkedArray | pa.Array, key: bytes) -> pa.Array:
    """Pseudonymise a string column, hashing each distinct id once."""
    enc = pc.dictionary_encode(col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col)
    mapped = pa.array([pseudonymise(str(u), key) for u in enc.dictionary.to_pylist()], pa.string())
    indices = enc.indices.to_numpy(zero_copy_only=False)
    return pa.array(mapped.to_numpy(zero_copy_only=False)[indices.astype(np.int64)], pa.string())
