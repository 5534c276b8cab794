"""Privacy by design: pseudonymous ids, consent, and the key rule.

* **Pseudonymisation.** User ids are replaced by ``"u" + 16 hex chars`` of HMAC-SHA256(key, id)
  while a batch is still in memory, before anything is written (store, quarantine, logs,
  MLflow). A keyed hash, not a plain one: without the key nobody can test whether a known
  customer id is in the data by hashing it.
* **The key** comes from the environment variable ``JOURNEYREC_HMAC_KEY`` or from a key file
  named in the config (``data.hmac_key_file``). The key itself is never a config value, so
  Hydra's saved configs, MLflow params and logs cannot contain it. Without either, the built-in
  *demo key* is used; it is public, so a run refuses it unless the data config says
  ``allow_demo_key: true``. The shipped configs of the demo shop and of the public benchmark
  datasets (S3-Rec, MovieLens, Taobao, ...) say so: their ids are already public. ``data=events``
  (a shop's own log) does not, so it needs a real key.
* **Consent.** A consent table (``user_id``, ``opted_out``) from the reader (the demo shop) or
  ``data.consent_path``: events of users who opted out are dropped at ingestion, before
  validation and before anything is written; only their count is reported.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from journeyrec.errors import JourneyrecError, MissingInputError

__all__ = [
    "DEMO_KEY",
    "HMAC_ENV",
    "PrivacyError",
    "resolve_key",
    "pseudonymise",
    "pseudonymise_column",
    "Pseudonymiser",
    "load_consent",
    "opted_out_ids",
]

HMAC_ENV = "JOURNEYREC_HMAC_KEY"
DEMO_KEY = "journeyrec-demo-key-not-secret"


class PrivacyError(JourneyrecError, RuntimeError):
    """A run would violate a privacy rule (e.g. a private log with the public demo key)."""


def resolve_key(key_file: str | None = None, allow_demo_key: bool = False) -> bytes:
    """The HMAC key: ``$JOURNEYREC_HMAC_KEY``, else the content of ``key_file``, else the demo
    key, which is refused unless ``allow_demo_key`` (public data only)."""
    key = os.environ.get(HMAC_ENV)
    if not key and key_file:
        path = Path(key_file).expanduser()
        if not path.is_file():
            raise PrivacyError(f"data.hmac_key_file={key_file}: no such file")
        key = path.read_text(encoding="utf-8").strip()
        if not key:
            raise PrivacyError(f"data.hmac_key_file={key_file} is empty")
    if not key:
        key = DEMO_KEY
    if key == DEMO_KEY and not allow_demo_key:
        raise PrivacyError(
            "refusing to pseudonymise with the built-in demo HMAC key: it is public, so anyone could "
            f"re-identify users. Set a secret key in ${HMAC_ENV} (e.g. export {HMAC_ENV}=$(openssl rand -hex 32)) "
            "or name a key file in data.hmac_key_file. Only for public benchmark data set data.allow_demo_key=true."
        )
    return key.encode("utf-8")


def pseudonymise(user_id: str, key: bytes) -> str:
    """Stable pseudonym of one raw user id (16 hex chars of HMAC-SHA256)."""
    return "u" + hmac.new(key, user_id.encode("utf-8"), hashlib.sha256).hexdigest()[:16]


class Pseudonymiser:
    """Pseudonymises string columns batch by batch, hashing each distinct id once per batch and
    remembering recent ids (a user's events usually span neighbouring batches)."""

    def __init__(self, key: bytes, cache_size: int = 2_000_000) -> None:
        self._key = key
        self._cache: dict[str, str] = {}
        self._cache_size = cache_size

    def __call__(self, col: pa.ChunkedArray | pa.Array) -> pa.Array:
        arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
        arr = pc.cast(arr, pa.string())
        if len(arr) == 0:
            return arr
        enc = pc.dictionary_encode(arr)
        cache = self._cache
        if len(cache) > self._cache_size:
            cache.clear()
        key = self._key
        mapped = []
        for u in enc.dictionary.to_pylist():
            p = cache.get(u)
            if p is None:
                p = cache[u] = pseudonymise(u, key)
            mapped.append(p)
        return pc.take(pa.array(mapped, pa.string()), enc.indices)


def pseudonymise_column(col: pa.ChunkedArray | pa.Array, key: bytes) -> pa.Array:
    """Pseudonymise a string column (nulls stay null)."""
    return Pseudonymiser(key, cache_size=0)(col)


def load_consent(path: str | Path) -> pa.Table:
    """A consent table from CSV or Parquet with columns ``user_id`` and ``opted_out``
    (true/false, 1/0, yes/no)."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    p = Path(path)
    if not p.is_file():
        raise MissingInputError(f"data.consent_path={p}: no such file")
    if p.suffix == ".parquet":
        t = pq.read_table(p)
    else:
        t = pacsv.read_csv(
            p, convert_options=pacsv.ConvertOptions(column_types={"user_id": pa.string(), "opted_out": pa.string()})
        )
    missing = [c for c in ("user_id", "opted_out") if c not in t.column_names]
    if missing:
        raise ValueError(
            f"{p}: consent table needs columns user_id, opted_out; missing {missing}, has {t.column_names}"
        )
    flag = t.column("opted_out")
    if not pa.types.is_boolean(flag.type):
        text = pc.utf8_lower(pc.cast(flag, pa.string()))
        yes = pc.is_in(text, pa.array(["true", "1", "yes", "y", "t"]))
        no = pc.is_in(text, pa.array(["false", "0", "no", "n", "f"]))
        if not pc.all(pc.or_(yes, no)).as_py():
            raise ValueError(f"{p}: column opted_out must hold true/false (or 1/0, yes/no)")
        flag = yes
    return pa.table({"user_id": pc.cast(t.column("user_id"), pa.string()), "opted_out": flag})


def opted_out_ids(*tables: pa.Table | None) -> pa.Array:
    """Raw ids of users who opted out, from any number of consent tables."""
    ids = [t.filter(pc.fill_null(t.column("opted_out"), False)).column("user_id") for t in tables if t is not None]
    if not ids:
        return pa.array([], pa.string())
    return pc.unique(pa.chunked_array([c for x in ids for c in x.chunks], type=pa.string()).combine_chunks())
