"""The bundle: everything serving needs, in one versioned, checksummed directory.

Layout (``FORMAT_VERSION`` 1)::

    bundle/
      manifest.json        format name + version, model hparams, index settings, sha256 + size of every file
      model.safetensors    model weights (safetensors: loading never unpickles anything)
      item_vectors.npy     float32 [N + 1, D], row 0 = padding (what the index was built from)
      index.faiss          FAISS inner-product index over rows 1..N
      items.parquet        catalogue aligned with internal ids (row i = internal id i + 1)
      config.json          the resolved training configuration
      metrics.json         the metrics of the run that produced the bundle

The directory is written with :func:`journeyrec.io.atomic_dir` (complete or absent, never half
written); :func:`read_manifest` verifies format and checksums and names what is wrong.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any, Mapping

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from safetensors.torch import save_file
from torch import nn

from journeyrec.export.index import build_index
from journeyrec.io import atomic_dir

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "BundleError", "write_bundle", "read_manifest", "sha256_file"]

FORMAT_NAME = "journeyrec-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"


class BundleError(ValueError):
    """A bundle is missing, damaged or of an unknown format; the message says which file and why."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_bundle(
    directory: str | Path,
    model: nn.Module,
    catalog: pa.Table,
    config: Mapping[str, Any],
    metrics: Mapping[str, Any],
    index_factory: str = "Flat",
) -> Path:
    """Export ``model`` (a journeyrec sequence model) with its FAISS index and catalogue."""
    model = model.eval()
    with torch.no_grad():
        vectors = model.item_vectors().detach().float().cpu().numpy()
    if catalog.num_rows != vectors.shape[0] - 1:
        raise BundleError(f"catalogue has {catalog.num_rows} rows but the model has {vectors.shape[0] - 1} items")
    with atomic_dir(directory) as tmp:
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(tmp / "model.safetensors"))
        np.save(tmp / "item_vectors.npy", vectors)
        index = build_index(vectors, index_factory)
        faiss.write_index(index, str(tmp / "index.faiss"))
        pq.write_table(catalog, tmp / "items.parquet")
        (tmp / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True, default=str))
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True, default=float))
        files = {
            p.name: {"sha256": sha256_file(p), "bytes": p.stat().st_size} for p in sorted(tmp.iterdir()) if p.is_file()
        }
        manifest = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "created_unix": int(time.time()),
            "model": dict(getattr(model, "hparams", {})),
            "index": {"factory": index_factory, "metric": "inner_product", "ntotal": int(index.ntotal), "dim": int(vectors.shape[1])},
            "n_items": int(vectors.shape[0] - 1),
            "files": files,
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return Path(directory)


def read_manifest(directory: str | Path, verify: bool = True) -> dict[str, Any]:
    """Load and check a bundle's manifest: format, version, presence, size and sha256 of each file."""
    d = Path(directory)
    if not d.is_dir():
        raise BundleError(f"{d}: bundle directory not found")
    mpath = d / MANIFEST
    if not mpath.is_file():
        raise BundleError(f"{d}: missing {MANIFEST}; not a journeyrec bundle (or an export that did not finish)")
    try:
        manifest = json.loads(mpath.read_text())
    except json.JSONDecodeError as exc:
        raise BundleError(f"{mpath}: manifest is not valid JSON ({exc})") from exc
    if manifest.get("format") != FORMAT_NAME:
        raise BundleError(f"{d}: unknown bundle format {manifest.get('format')!r}; expected {FORMAT_NAME!r}")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BundleError(
            f"{d}: unknown bundle format version {manifest.get('format_version')!r}; this journeyrec reads version "
            f"{FORMAT_VERSION}. Re-export the bundle with scripts/export_index.py"
        )
    if verify:
        for name, meta in manifest.get("files", {}).items():
            p = d / name
            if not p.is_file():
                raise BundleError(f"{d}: missing file {name} listed in the manifest")
            if p.stat().st_size != meta["bytes"]:
                raise BundleError(f"{p}: size {p.stat().st_size} != {meta['bytes']} in manifest (truncated or replaced)")
            if sha256_file(p) != meta["sha256"]:
                raise BundleError(f"{p}: checksum mismatch (file modified after export)")
    return manifest
