"""Dynamic segments: k-means (FAISS) on the user vectors of a trained model, described and stored.

A user's vector is the model's session vector of their history before the test target (their whole
sequence when they have no test case), i.e. the query the model would use to recommend to them;
users whose vectors point the same way get similar recommendations. With ``spherical`` (default)
k-means clusters directions, matching dot-product scoring.

Outputs (``write_segments``)::

    segments.parquet   user_id, segment, similarity (to the centroid): the assignment that
                       ``scripts/evaluate.py eval.segments=...`` breaks metrics down by
    segments.json      one description per segment (below) + settings
    centroids.npy      float32 [k, D]
    report.md / .html  the descriptions as tables

Each segment is described by its size and share, mean history length, event-type mix, top
categories, brands (or tags when the catalogue has neither), and the share of new vs returning
users among its test cases (journeyrec.evaluation.segments).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pyarrow as pa
import torch
from tqdm.auto import tqdm

from journeyrec.bundle.format import read_bundle
from journeyrec.data.datasets import trim_padding
from journeyrec.data.prepare import PreparedData
from journeyrec.data.schema import EVENT_TYPES
from journeyrec.data.sequences import SequenceData, gather_windows
from journeyrec.evaluation.report import Report
from journeyrec.evaluation.segments import case_segments
from journeyrec.models.protocol import EmbeddingModel

__all__ = [
    "user_windows",
    "user_vectors",
    "kmeans",
    "describe_segments",
    "Segmentation",
    "segment_report",
    "run_segmentation",
]


def user_windows(prepared: PreparedData) -> tuple[np.ndarray, np.ndarray]:
    """(users, ends) of every user with history: before the test target if evaluated, else all."""
    seqs = prepared.sequences
    ends = seqs.offsets[1:].copy()
    test = prepared.split.test
    ends[test.users] = test.ends
    users = np.nonzero(ends > seqs.offsets[:-1])[0].astype(np.int64)
    return users, ends[users].astype(np.int64)


@torch.no_grad()
def user_vectors(
    model: EmbeddingModel,
    data: SequenceData,
    users: np.ndarray,
    ends: np.ndarray,
    batch_size: int = 1024,
    progress: bool = False,
) -> np.ndarray:
    """Session vectors float32 [n, D] of the windows before ``ends`` (the model's query vectors)."""
    if not hasattr(model, "session_vectors"):
        raise ValueError(f"model {type(model).__name__} has no session_vectors(): segments need an embedding model")
    model.eval()
    feats = tuple(getattr(model, "feature_names", ()))
    out = []
    for lo in tqdm(range(0, len(users), batch_size), desc="user vectors", disable=not progress, unit="batch"):
        w = gather_windows(data, users[lo : lo + batch_size], ends[lo : lo + batch_size], model.max_len, feats)
        batch = trim_padding({k: torch.from_numpy(v) for k, v in w.items()}, list(w))
        items = batch.pop("items")
        out.append(model.session_vectors(items, batch).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def kmeans(
    vectors: np.ndarray, k: int, niter: int = 25, seed: int = 0, spherical: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """FAISS k-means: (assignment int64 [n], similarity float32 [n], centroids float32 [k, D]).

    Similarity is the inner product with the assigned centroid (cosine when ``spherical``)."""
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    if len(x) < k:
        raise ValueError(f"{len(x)} users cannot form {k} segments; lower k")
    if spherical:
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    km = faiss.Kmeans(x.shape[1], int(k), niter=int(niter), seed=int(seed), spherical=bool(spherical), verbose=False)
    km.train(x)
    centroids = km.centroids
    if centroids is None:
        raise RuntimeError("faiss k-means returned no centroids")
    index = faiss.IndexFlatIP(x.shape[1]) if spherical else faiss.IndexFlatL2(x.shape[1])
    index.add(centroids)
    dist, assign = index.search(x, 1)
    sim = dist[:, 0] if spherical else -dist[:, 0]
    return assign[:, 0].astype(np.int64), sim.astype(np.float32), centroids.copy()


def _encode(values: list[Any]) -> tuple[np.ndarray, list[str]]:
    """Per-item codes (-1 = missing) and the names they stand for."""
    names: dict[str, int] = {}
    codes = np.asarray([names.setdefault(str(v), len(names)) if v else -1 for v in values], dtype=np.int64)
    return codes, list(names)


def _top(weights: np.ndarray, names: list[str], n: int) -> str:
    total = weights.sum()
    if total <= 0:
        return "n/a"
    order = np.argsort(-weights, kind="stable")[:n]
    return ", ".join(f"{names[i]} ({weights[i] / total:.0%})" for i in order if weights[i] > 0)


def describe_segments(
    prepared: PreparedData, users: np.ndarray, ends: np.ndarray, assignment: np.ndarray, top: int = 5
) -> list[dict[str, Any]]:
    """One dict per segment: size, share, mean length, event mix, top categories / brands / tags,
    new vs returning share among its test cases. Counting is vectorised: one bincount of the
    segment's events per item, then weighted bincounts per attribute."""
    seqs = prepared.sequences
    cat = seqs.catalog
    n = seqs.n_items

    def col(name: str) -> list:
        if cat is not None and name in cat.column_names and cat.num_rows == n:
            return cat.column(name).to_pylist()
        return [None] * n

    leaf_codes, leaf_names = _encode([c.rsplit("/", 1)[-1] if c else None for c in col("category")])
    brand_codes, brand_names = _encode(col("brand"))
    tag_lists = [t or [] for t in col("tags")]
    tag_codes, tag_names = _encode([t for ts in tag_lists for t in ts])
    tag_item = np.repeat(np.arange(n), [len(t) for t in tag_lists])
    starts = seqs.offsets[users]
    lens = ends - starts
    seg_of_user = np.full(seqs.n_users, -1, dtype=np.int64)
    seg_of_user[users] = assignment
    test = prepared.split.test
    user_type = case_segments(seqs, test).get("user_type", np.zeros(0, dtype=object))
    test_seg = seg_of_user[test.users]

    def by(codes: np.ndarray, size: int, item_counts: np.ndarray, owner: np.ndarray | None = None) -> np.ndarray:
        w = item_counts if owner is None else item_counts[owner]
        ok = codes >= 0
        return np.bincount(codes[ok], weights=w[ok], minlength=size)

    out = []
    for s in range(int(assignment.max()) + 1 if len(assignment) else 0):
        sel = assignment == s
        st, ln = starts[sel], lens[sel]
        pos = np.repeat(st, ln) + (np.arange(ln.sum()) - np.repeat(np.cumsum(ln) - ln, ln))
        item_counts = np.bincount(seqs.items[pos].astype(np.int64) - 1, minlength=n).astype(np.float64)
        ev = np.bincount(seqs.event_types[pos].astype(np.int64), minlength=len(EVENT_TYPES) + 1)[1:]
        cats = by(leaf_codes, len(leaf_names), item_counts)
        ut = user_type[test_seg == s]
        out.append(
            {
                "segment": s,
                "users": int(sel.sum()),
                "share": float(sel.mean()),
                "mean_length": float(ln.mean()) if len(ln) else 0.0,
                "event_mix": {
                    EVENT_TYPES[i]: float(ev[i] / max(len(pos), 1)) for i in np.argsort(-ev, kind="stable") if ev[i]
                },
                "top_categories": _top(cats, leaf_names, top),
                "top_brands": _top(by(brand_codes, len(brand_names), item_counts), brand_names, top),
                "top_tags": _top(by(tag_codes, len(tag_names), item_counts, tag_item), tag_names, top)
                if not cats.sum()
                else "n/a",
                "test_cases": int(len(ut)),
                "returning_share": float((ut == "returning").mean()) if len(ut) else float("nan"),
                "users_sample": [str(x) for x in seqs.user_ids[users[sel][:3]]],
            }
        )
    return out


@dataclass
class Segmentation:
    users: np.ndarray
    assignment: np.ndarray
    similarity: np.ndarray
    centroids: np.ndarray
    descriptions: list[dict[str, Any]]

    def table(self, prepared: PreparedData) -> pa.Table:
        return pa.table(
            {
                "user_id": pa.array([str(x) for x in prepared.sequences.user_ids[self.users]], pa.string()),
                "segment": pa.array(self.assignment.astype(np.int32)),
                "similarity": pa.array(self.similarity.astype(np.float32)),
            }
        )


def segment_report(title: str, seg: Segmentation, provenance: list[tuple[str, Any]]) -> Report:
    rep = Report(title)
    rep.heading("Provenance")
    rep.table(["what", "value"], [[k, v] for k, v in provenance])
    rep.heading("Segments")
    rep.paragraph(
        "Users clustered by the direction of their model vector (the query the model recommends from). "
        "`returning`: share of the segment's test cases whose target falls after the user's first session."
    )
    rep.table(
        [
            "segment",
            "users",
            "share",
            "mean length",
            "event mix",
            "returning",
            "top categories",
            "top brands",
            "top tags",
        ],
        [
            [
                f"c{d['segment']}",
                d["users"],
                f"{d['share']:.1%}",
                f"{d['mean_length']:.1f}",
                ", ".join(f"{k} {v:.0%}" for k, v in d["event_mix"].items()),
                "n/a" if np.isnan(d["returning_share"]) else f"{d['returning_share']:.0%} of {d['test_cases']}",
                d["top_categories"],
                d["top_brands"],
                d["top_tags"],
            ]
            for d in seg.descriptions
        ],
    )
    return rep


def run_segmentation(cfg: Any) -> tuple[Segmentation, Path]:
    """scripts/segment.py: resolve model and data like scripts/evaluate.py, cluster, describe, write."""
    import json
    import time
    from datetime import datetime

    import pyarrow.parquet as pq

    from journeyrec.evaluation.offline import align_items
    from journeyrec.evaluation.pipeline import _scratch, resolve_data, resolve_model
    from journeyrec.io import atomic_path, atomic_write_json
    from journeyrec.tracking import tracking_uri

    t0 = time.perf_counter()
    if cfg.output_dir:
        out = Path(str(cfg.output_dir))
    else:
        try:
            from hydra.core.hydra_config import HydraConfig

            out = Path(HydraConfig.get().runtime.output_dir)
        except (ImportError, ValueError):
            out = Path("outputs") / "segments" / datetime.now().strftime("%Y-%m-%d/%H-%M-%S")
    out.mkdir(parents=True, exist_ok=True)
    if cfg.num_threads:
        torch.set_num_threads(int(cfg.num_threads))
    with _scratch() as scratch:
        source = resolve_model(cfg, tracking_uri(None), scratch)
        bundle = read_bundle(source.bundle_dir)
        original, data_desc = resolve_data(cfg, source)
    prepared, _ = align_items(original, bundle.item_ids, bundle.catalog)
    users, ends = user_windows(prepared)
    vectors = user_vectors(bundle.model, prepared.sequences, users, ends, int(cfg.batch_size), progress=True)
    assignment, similarity, centroids = kmeans(vectors, int(cfg.k), int(cfg.niter), int(cfg.seed), bool(cfg.spherical))
    # describe on the data as prepared (original ids and catalogue; same users and positions)
    descriptions = describe_segments(original, users, user_windows(original)[1], assignment, int(cfg.top))
    seg = Segmentation(users, assignment, similarity, centroids, descriptions)
    with atomic_path(out / "segments.parquet") as tmp:
        pq.write_table(seg.table(original), tmp)
    with atomic_path(out / "centroids.npy") as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, centroids)
    settings = {
        "k": int(cfg.k),
        "niter": int(cfg.niter),
        "spherical": bool(cfg.spherical),
        "seed": int(cfg.seed),
        "bundle": str(cfg.bundle or ""),
        "run_id": str(cfg.run_id or ""),
        "data": data_desc,
        "data_fingerprint": original.fingerprint(),
        "users": int(len(users)),
    }
    atomic_write_json(out / "segments.json", {"settings": settings, "segments": descriptions})
    provenance = [
        ("model", f"{bundle.manifest['model'].get('name')} bundle {cfg.bundle or 'from run ' + str(cfg.run_id)}"),
        ("data", f"{original.source}; {data_desc}"),
        ("data fingerprint", original.fingerprint()),
        ("users", len(users)),
        ("k-means", json.dumps({k: settings[k] for k in ("k", "niter", "spherical", "seed")})),
        ("assignment", str(out / "segments.parquet")),
    ]
    segment_report(f"Segments of {Path(str(original.source)).name}", seg, provenance).write(out)
    lines = [
        "",
        "=" * 100,
        f"{'output':<15}: {out}",
        f"{'assignment':<15}: {out / 'segments.parquet'}  "
        f"(scripts/evaluate.py ... eval.segments={out / 'segments.parquet'})",
        f"{'report':<15}: {out / 'report.html'}",
        f"{'seconds':<15}: {time.perf_counter() - t0:.1f}",
        f"{'segment':<8}{'users':>8}{'share':>8}{'len':>7}{'returning':>11}  top categories (else tags) | top brands",
    ]
    for d in descriptions:
        ret = "n/a" if np.isnan(d["returning_share"]) else f"{d['returning_share']:.0%}"
        what = d["top_categories"] if d["top_categories"] != "n/a" else f"tags {d['top_tags']}"
        lines.append(
            f"c{d['segment']:<7}{d['users']:>8}{d['share']:>8.1%}{d['mean_length']:>7.1f}{ret:>11}  "
            f"{what[:45]} | {d['top_brands'][:30]}"
        )
    lines.append("=" * 100)
    print("\n".join(lines))
    return seg, out
