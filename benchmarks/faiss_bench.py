"""FAISS indexes for a large catalogue: build time, recall@10 against exact search, and queries
per second in batch and one-query-at-a-time mode, for exact ``Flat`` (the baseline), ``HNSW32``
and IVF with 4-bit fast-scan product quantisation re-ranked exactly.

Search-time parameters are tuned and recall measured by ``journeyrec.bundle.index.tune_and_measure`` (the
code that writes each bundle's manifest): tuned to recall@10 >= 0.95 on one half of the held-out
queries, measured on the other. Data: synthetic embeddings shaped like trained ones (items in
clusters, norms spread like popularity) and, when a bundle is given, the real item vectors of a
trained model with its validation session vectors as queries.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import faiss
import numpy as np

from journeyrec.bundle.index import build_index, search, tune_and_measure

__all__ = ["synthetic", "measure", "run"]

FACTORIES = ("Flat", "HNSW32", "IVF4096,PQ32x4fs,RFlat")


def synthetic(n_items: int, dim: int, n_queries: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Item vectors (row 0 = padding) and queries: a mixture of clusters with log-normal norms."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(16, n_items // 500), dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)

    def draw(n: int) -> np.ndarray:
        c = centres[rng.integers(0, len(centres), n)]
        x = c + 0.5 * rng.standard_normal((n, dim)).astype(np.float32) / np.sqrt(dim)
        return (x * rng.lognormal(0.0, 0.3, (n, 1))).astype(np.float32)

    items = np.vstack([np.zeros((1, dim), np.float32), draw(n_items)])
    return items, draw(n_queries)


def measure(item_vecs: np.ndarray, queries: np.ndarray, factory: str, threads: int, k: int = 10) -> dict:
    faiss.omp_set_num_threads(threads)
    t0 = time.perf_counter()
    index = build_index(item_vecs, factory)
    build = time.perf_counter() - t0
    quality = tune_and_measure(index, item_vecs, queries, ks=(10,), target_recall=0.95, tune_k=k, qps_seconds=1.0)
    faiss.omp_set_num_threads(threads)
    half = queries[len(queries) // 2 :]
    search(index, half[:10], k)
    t0 = time.perf_counter()
    search(index, half, k)
    batch_qps = len(half) / (time.perf_counter() - t0)
    return {
        "index": factory,
        "build_seconds": round(build, 1),
        "build_threads": threads,
        "search_params": quality["search_params"],
        "recall@10": quality["recall@10"],
        "reached_0.95": quality["recall@10"] >= 0.95,
        "qps_batch": round(batch_qps, 1),
        "batch_threads": threads,
        "qps_single_query": quality["qps_single_query"],
        "single_query_threads": 1,
        "memory_mb": round(faiss.serialize_index(index).nbytes / 2**20, 1),
    }


def _bundle_vectors(bundle: Path, n_queries: int) -> tuple[np.ndarray, np.ndarray, str]:
    """A trained model's item vectors and validation session vectors (the export's queries)."""
    from omegaconf import OmegaConf

    from journeyrec.bundle.format import session_queries
    from journeyrec.data.prepare import load_prepared
    from journeyrec.serving import Recommender

    rec = Recommender.load(bundle)
    run_dir = bundle.parent
    prepared = load_prepared(run_dir / "prepared")
    queries = session_queries(rec.model, prepared.sequences, prepared.split.valid, n=n_queries)
    cfg = OmegaConf.load(run_dir / "config.yaml")
    return (
        np.load(bundle / "item_vectors.npy", allow_pickle=False),
        queries,
        f"{cfg.model.name} on {Path(str(cfg.data.path)).name}",
    )


def _flat_blas_qps(n_items: int, dim: int, n_queries: int, coretype: str | None) -> float:
    """Batch QPS of exact Flat search in a fresh process (OpenBLAS reads OPENBLAS_CORETYPE at load)."""
    env = dict(os.environ)
    env.pop("OPENBLAS_CORETYPE", None)
    if coretype:
        env["OPENBLAS_CORETYPE"] = coretype
    code = (
        "import time, numpy as np, faiss\n"
        f"rng=np.random.default_rng(0); x=rng.standard_normal(({n_items},{dim}),dtype=np.float32); "
        f"q=x[:{n_queries}].copy()\n"
        f"ix=faiss.IndexFlatIP({dim}); ix.add(x); ix.search(q[:64],10)\n"
        "t=time.perf_counter(); ix.search(q,10); print(len(q)/(time.perf_counter()-t))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def run(
    n_items: int = 1_000_000,
    dim: int = 64,
    n_queries: int = 2000,
    threads: int = 2,
    bundle: str | None = None,
    factories: tuple[str, ...] = FACTORIES,
) -> list[dict]:
    """One result per (dataset, index) plus the OpenBLAS core-type check; each a JSON-able dict."""
    results = []
    datasets = [("synthetic", *synthetic(n_items, dim, n_queries), "clustered synthetic embeddings")]
    if bundle:
        vecs, queries, source = _bundle_vectors(Path(bundle), n_queries)
        datasets.append(("real", vecs, queries, source))
    for name, vecs, queries, source in datasets:
        for factory in factories:
            if factory.startswith("IVF") and len(vecs) < 40 * 4096:
                factory = factory.replace("IVF4096", "IVF256")  # k-means needs ~40 points per list
            r = measure(vecs, queries, factory, threads)
            flat_qps = next((x["qps_batch"] for x in results if x["data"] == name and x["index"] == "Flat"), None)
            r.update(benchmark="faiss", data=name, source=source, items=int(len(vecs) - 1), dim=int(vecs.shape[1]))
            if flat_qps:
                r["qps_batch_vs_flat"] = round(r["qps_batch"] / flat_qps, 2)
            results.append(r)
            print(json.dumps(r), flush=True)
    base = _flat_blas_qps(200_000, dim, 1000, None)
    for coretype in ("Haswell", "Zen", "SkylakeX"):
        try:
            qps = _flat_blas_qps(200_000, dim, 1000, coretype)
        except subprocess.CalledProcessError:  # a core type this CPU cannot run
            continue
        r = {
            "benchmark": "faiss-openblas",
            "items": 200_000,
            "dim": dim,
            "openblas_coretype": coretype,
            "qps_batch": round(qps, 1),
            "qps_batch_autodetected": round(base, 1),
            "ratio": round(qps / base, 2),
        }
        results.append(r)
        print(json.dumps(r), flush=True)
    return results
