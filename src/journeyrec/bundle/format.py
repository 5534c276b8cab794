"""The bundle: everything serving needs, in one versioned, checksummed directory.

Layout (``FORMAT_VERSION`` 2)::

    bundle/
      manifest.json        format name + version, model hparams, index settings and measured quality
                           (recall@K vs exact search, QPS), catalogue attributes present, sha256 + size of every file
      model.safetensors    model weights (safetensors: loading never unpickles anything)
      item_vectors.npy     float32 [N + 1, D], row 0 = padding (what the index was built from)
      index.faiss          FAISS inner-product index over rows 1..N
      items.parquet        catalogue snapshot aligned with internal ids (row i = internal id i + 1): attributes,
                           stock, own brand, declared repurchase class / days, tags
      stats.npz, stats.json  learned rule statistics (journeyrec.bundle.stats): popularity, trending,
                           repeat purchase per category, complements
      config.json          the resolved training configuration
      metrics.json         the metrics of the run that produced the bundle
      abandonment.json     optional: the cart-abandonment model (journeyrec.models.abandonment), JSON
                           (LightGBM's text format or coefficients inside); checksummed like every file
      transitions.npz      optional: item-to-item transition counts and the weight they are added to the
                           model's logits with (journeyrec.models.transitions); manifest "transitions"

Version history: 1 = weights, vectors, index, catalogue; 2 adds rule statistics and index
quality. Serving reads only version 2 and refuses others with the command that re-exports.

The directory is written with :func:`journeyrec.io.atomic_dir` (complete or absent, never half
written); :func:`read_manifest` verifies format and checksums and names what is wrong.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from safetensors.torch import load_file, save_file

from journeyrec.bundle.index import build_index, set_search_params, tune_and_measure
from journeyrec.bundle.settings import ExportConfig
from journeyrec.bundle.stats import RuleStats, learn_stats
from journeyrec.data.sequences import gather_windows
from journeyrec.errors import JourneyrecError
from journeyrec.io import atomic_dir
from journeyrec.models import MODELS
from journeyrec.models.abandonment import AbandonmentModel
from journeyrec.models.protocol import EmbeddingModel, RankingModel
from journeyrec.models.transitions import TRANSITIONS_FILE, TransitionBlend, Transitions

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "BundleError",
    "Bundle",
    "read_bundle",
    "write_bundle",
    "export_bundle",
    "session_queries",
    "read_manifest",
    "sha256_file",
]

FORMAT_NAME = "journeyrec-bundle"
FORMAT_VERSION = 2
MANIFEST = "manifest.json"
ABANDONMENT = "abandonment.json"
REEXPORT_HINT = "re-export it from its run: python scripts/export_index.py run=<training run directory>"


class BundleError(JourneyrecError, ValueError):
    """A bundle is missing, damaged or of an unknown format; the message says which file and why."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _catalog_summary(catalog: pa.Table) -> dict[str, Any]:
    """Which attributes the catalogue actually has (rules degrade to no-ops on absent ones)."""
    present = {
        name: catalog.num_rows - catalog.column(name).null_count for name in catalog.column_names if name != "item_id"
    }
    return {"n_items": catalog.num_rows, "non_null": present}


@torch.no_grad()
def session_queries(
    model: EmbeddingModel, sequences: Any, cases: Any, n: int = 2000, seed: int = 0, batch: int = 256
) -> np.ndarray:
    """Session vectors of up to ``n`` evaluation cases (what serving will search with): the
    held-out queries the index is tuned and measured on."""
    idx = np.arange(len(cases))
    if len(idx) > n:
        idx = np.sort(np.random.default_rng(seed).choice(idx, size=n, replace=False))
    out = []
    features = tuple(getattr(model, "feature_names", ()))
    for lo in range(0, len(idx), batch):
        sel = idx[lo : lo + batch]
        w = gather_windows(sequences, cases.users[sel], cases.ends[sel], model.max_len, features)
        items = torch.from_numpy(w.pop("items"))
        out.append(model.session_vectors(items, {k: torch.from_numpy(v) for k, v in w.items()}).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 1), np.float32)


def write_bundle(
    directory: str | Path,
    model: EmbeddingModel,
    catalog: pa.Table,
    config: Mapping[str, Any],
    metrics: Mapping[str, Any],
    index_factory: str = "Flat",
    *,
    stats: RuleStats | None = None,
    queries: np.ndarray | None = None,
    query_source: str = "",
    target_recall: float = 0.95,
    abandonment: AbandonmentModel | None = None,
    transitions: Transitions | None = None,
) -> Path:
    """Export ``model`` (a journeyrec embedding model) with its index, catalogue and statistics.

    ``queries`` are held-out session vectors for tuning and measuring the index; without them
    the vectors of 1,000 random items stand in (recorded as such in the manifest).
    ``abandonment``: the cart-abandonment model serving scores cart and checkout sessions with.
    ``transitions``: item-to-item counts (and their weight) added to the model's logits.
    """
    if abandonment is not None and abandonment.kind == "head" and not hasattr(model, "purchase_intent"):
        raise BundleError("the abandonment model is the intent head, but the model has none")
    model = model.eval()
    if not hasattr(model, "item_vectors"):
        raise BundleError(f"model {type(model).__name__} has no item_vectors(): serving needs an embedding model")
    with torch.no_grad():
        vectors = model.item_vectors().detach().float().cpu().numpy()
    if catalog.num_rows != vectors.shape[0] - 1:
        raise BundleError(f"catalogue has {catalog.num_rows} rows but the model has {vectors.shape[0] - 1} items")
    if transitions is not None and transitions.n_items != catalog.num_rows:
        raise BundleError(f"transitions cover {transitions.n_items} items but the catalogue has {catalog.num_rows}")
    stats = stats if stats is not None else RuleStats.empty(catalog)
    if stats.n_items != catalog.num_rows:
        raise BundleError(f"rule statistics cover {stats.n_items} items but the catalogue has {catalog.num_rows}")
    if queries is None or len(queries) < 2:
        pick = np.random.default_rng(0).choice(np.arange(1, vectors.shape[0]), size=min(1000, vectors.shape[0] - 1))
        queries, query_source = vectors[pick], "item vectors of random items (no held-out sessions given)"
    with atomic_dir(directory) as tmp:
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(tmp / "model.safetensors"))
        np.save(tmp / "item_vectors.npy", vectors)
        index = build_index(vectors, index_factory)
        quality = tune_and_measure(index, vectors, queries, target_recall=target_recall, query_source=query_source)
        faiss.write_index(index, str(tmp / "index.faiss"))
        pq.write_table(catalog, tmp / "items.parquet")
        stats.save(tmp)
        (tmp / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True, default=str))
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True, default=float))
        if abandonment is not None:
            (tmp / ABANDONMENT).write_text(json.dumps(abandonment.to_dict(), sort_keys=True))
        if transitions is not None:
            transitions.save(tmp)
        files = {
            p.name: {"sha256": sha256_file(p), "bytes": p.stat().st_size} for p in sorted(tmp.iterdir()) if p.is_file()
        }
        manifest = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "created_unix": int(time.time()),
            # identifies the content: changes whenever any file does (responses and A/B logs carry it)
            "bundle_version": hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:12],
            "model": dict(getattr(model, "hparams", {})),
            "index": {
                "factory": index_factory,
                "metric": "inner_product",
                "ntotal": int(index.ntotal),
                "dim": int(vectors.shape[1]),
                "equal_norm_augmented": bool(index.d == vectors.shape[1] + 1),  # see bundle.index.build_index
                "search_params": quality.pop("search_params"),
                "quality": quality,
            },
            "catalog": _catalog_summary(catalog),
            "stats": {
                "anchor_event": stats.anchor_event,
                "categories": len(stats.categories),
                "complement_pairs": int(len(stats.comp_items)),
                "data_end_ms": stats.data_end_ms,
            },
            "n_items": int(vectors.shape[0] - 1),
            "transitions": None if transitions is None else transitions.info(),
            "abandonment": None
            if abandonment is None
            else {"kind": abandonment.kind, "validation_auc": abandonment.info.get("validation_auc")},
            "files": files,
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return Path(directory)


def export_bundle(
    directory: str | Path,
    model: EmbeddingModel,
    prepared: Any,
    config: Mapping[str, Any],
    metrics: Mapping[str, Any],
    export_cfg: ExportConfig | None = None,
    abandonment: AbandonmentModel | None = None,
    transitions: Transitions | None = None,
) -> Path:
    """Bundle a trained model with statistics learned from ``prepared`` (a PreparedData) and an
    index tuned on validation session vectors (never the test split); ``abandonment``: a fitted
    cart-abandonment model to ship with it; ``transitions``: the blend's counts and weight."""
    cfg = export_cfg or ExportConfig()
    seqs = prepared.sequences
    stats = learn_stats(seqs, cfg.stats)
    queries = session_queries(model, seqs, prepared.split.valid, n=cfg.n_queries)
    return write_bundle(
        directory,
        model,
        seqs.catalog,
        config,
        metrics,
        cfg.index,
        stats=stats,
        queries=queries,
        query_source="validation session vectors",
        target_recall=cfg.target_recall,
        abandonment=abandonment,
        transitions=transitions,
    )


def read_manifest(directory: str | Path, verify: bool = True) -> dict[str, Any]:
    """Load and check a bundle's manifest: format, version, presence, size and sha256 of each file."""
    d = Path(directory)
    if not d.is_dir():
        raise BundleError(f"{d}: bundle directory not found")
    mpath = d / MANIFEST
    if not mpath.is_file():
        if (d / "bundle" / MANIFEST).is_file():  # a training run's directory: its bundle is inside
            raise BundleError(f"{d}: not a bundle but it holds one; did you mean {d / 'bundle'}?")
        raise BundleError(f"{d}: missing {MANIFEST}; not a journeyrec bundle (or an export that did not finish)")
    try:
        manifest = json.loads(mpath.read_text())
    except json.JSONDecodeError as exc:
        raise BundleError(f"{mpath}: manifest is not valid JSON ({exc})") from exc
    if manifest.get("format") != FORMAT_NAME:
        raise BundleError(f"{d}: unknown bundle format {manifest.get('format')!r}; expected {FORMAT_NAME!r}")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        if isinstance(version, int) and version < FORMAT_VERSION:
            why = (
                f"bundle format version {version} is older than version {FORMAT_VERSION} read here "
                "(it lacks rule statistics and index quality)"
            )
        else:
            why = f"unknown bundle format version {version!r}; this journeyrec reads version {FORMAT_VERSION}"
        raise BundleError(f"{d}: {why}; {REEXPORT_HINT}")
    if verify:
        for name, meta in manifest.get("files", {}).items():
            p = d / name
            if not p.is_file():
                raise BundleError(f"{d}: missing file {name} listed in the manifest")
            if p.stat().st_size != meta["bytes"]:
                raise BundleError(
                    f"{p}: size {p.stat().st_size} != {meta['bytes']} in manifest (truncated or replaced)"
                )
            if sha256_file(p) != meta["sha256"]:
                raise BundleError(f"{p}: checksum mismatch (file modified after export)")
    return manifest


@dataclass
class Bundle:
    """A verified bundle in memory: what evaluation, segmentation and serving read from it."""

    directory: Path
    manifest: dict[str, Any]
    model: EmbeddingModel  # in eval mode
    index: faiss.Index  # search parameters as tuned at export
    vectors: np.ndarray  # float32 [N + 1, D], row 0 = padding
    catalog: pa.Table  # row i = internal id i + 1
    stats: RuleStats
    config: dict[str, Any]  # the resolved training configuration
    abandonment: AbandonmentModel | None = None  # the cart-abandonment model, if the bundle ships one
    transitions: Transitions | None = None  # item-to-item counts added to the model's logits, if any

    @property
    def ranking_model(self) -> RankingModel:
        """What the bundle ranks with: the model, with the transition blend when it ships one."""
        return self.model if self.transitions is None else TransitionBlend(self.model, self.transitions)

    @property
    def item_ids(self) -> np.ndarray:
        """External item ids by internal id - 1 (object array of str)."""
        return np.asarray(self.catalog.column("item_id").to_pylist(), dtype=object)

    @property
    def n_items(self) -> int:
        return int(self.catalog.num_rows)

    @property
    def version(self) -> str:
        return str(self.manifest.get("bundle_version", ""))


def _read(directory: Path, name: str, load: Callable[[], Any]) -> Any:
    """``load()``, with any failure reported as a BundleError naming the file (a file can pass
    the checksum and still be unreadable: a manifest rewritten along with it, an older writer)."""
    try:
        return load()
    except BundleError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever the reader raised, name the file and the fix
        raise BundleError(
            f"{directory / name}: cannot be read ({type(exc).__name__}: {str(exc)[:300]}); {REEXPORT_HINT}"
        ) from exc


def _load_model(directory: Path, manifest: dict[str, Any]) -> EmbeddingModel:
    hp = manifest["model"]
    name = hp.get("name")
    if name not in MODELS:
        raise BundleError(f"{directory}: model '{name}' is unknown to this journeyrec (known: {sorted(MODELS)})")
    module, cls = MODELS[name].split(":")
    model = getattr(importlib.import_module(module), cls).from_hparams(hp)
    state = load_file(str(directory / "model.safetensors"))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise BundleError(
            f"{directory}: weights do not fit the model (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    return model.eval()


def read_bundle(directory: str | Path, verify: bool = True) -> Bundle:
    """Load and verify a bundle (format version, checksums); raises BundleError naming the damaged
    file. Nothing is unpickled: weights are safetensors, arrays are read with
    ``allow_pickle=False``, the rest is JSON and Parquet."""
    d = Path(directory)
    manifest = read_manifest(d, verify=verify)
    model = _read(d, "model.safetensors", lambda: _load_model(d, manifest))
    index = _read(d, "index.faiss", lambda: faiss.read_index(str(d / "index.faiss")))
    set_search_params(index, manifest["index"].get("search_params") or {})
    vectors = _read(d, "item_vectors.npy", lambda: np.load(d / "item_vectors.npy", allow_pickle=False))
    catalog = _read(d, "items.parquet", lambda: pq.read_table(d / "items.parquet"))
    stats = _read(d, "stats.npz", lambda: RuleStats.load(d))
    config = _read(d, "config.json", lambda: json.loads((d / "config.json").read_text()))
    abandonment = None
    if ABANDONMENT in manifest.get("files", {}):
        abandonment = _read(
            d, ABANDONMENT, lambda: AbandonmentModel.from_dict(json.loads((d / ABANDONMENT).read_text()))
        )
    transitions = None
    if TRANSITIONS_FILE in manifest.get("files", {}):
        transitions = _read(d, TRANSITIONS_FILE, lambda: Transitions.load(d))
    return Bundle(
        d,
        manifest,
        model,
        index,
        vectors,
        catalog,
        stats,
        config if isinstance(config, dict) else {},
        abandonment,
        transitions,
    )
