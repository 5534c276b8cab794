"""Bundle export and the Recommender: the FAISS top-k equals the model's exact top-k; damaged
bundles are refused with a message naming the problem."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
import torch

from journeyrec.bundle.format import FORMAT_VERSION, BundleError, read_manifest, write_bundle
from journeyrec.data.schema import conform_catalog
from journeyrec.models.sasrec import SASRec
from journeyrec.serving import Recommender, RecommendRequest, RulesConfig


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    torch.manual_seed(0)
    n = 300
    model = SASRec(n, d_model=16, n_blocks=1, n_heads=2, max_len=10, dropout=0.0, features={"event_type": 9})
    catalog = conform_catalog(
        {"item_id": pa.array([f"sku-{i}" for i in range(1, n + 1)]), "title": pa.array([f"t{i}" for i in range(n)])}
    )
    d = tmp_path_factory.mktemp("b") / "bundle"
    write_bundle(d, model, catalog, {"model": {"name": "sasrec"}}, {"test/ndcg@10": 0.1})
    return d, model


def test_index_topk_equals_model_topk(bundle):
    d, model = bundle
    rec = Recommender.load(d, rules=RulesConfig.raw())
    rng = np.random.default_rng(0)
    for _ in range(20):
        hist = [f"sku-{i}" for i in rng.integers(1, 301, size=rng.integers(1, 15))]
        res = rec.recommend(RecommendRequest.from_items(hist, k=10))
        internal = torch.tensor([[int(h.split("-")[1]) for h in hist][-10:]])
        with torch.no_grad():
            scores = (
                model.eval().session_vectors(internal, {"event_type": torch.full_like(internal, 1)})
                @ model.item_vectors().T
            )
        scores[0, 0] = -torch.inf
        top = torch.topk(scores[0], 10)
        assert [r.item_id for r in res.items] == [f"sku-{i}" for i in top.indices.tolist()]
        assert np.allclose([r.score for r in res.items], top.values.numpy(), atol=1e-4)


def test_unknown_items_are_reported_not_fatal(bundle):
    rec = Recommender.load(bundle[0])
    res = rec.recommend(RecommendRequest.from_items(["sku-3", "nope"], k=5))
    assert len(res.items) == 5 and any("nope" in w for w in res.warnings) and res.personalised
    unknown_only = rec.recommend(RecommendRequest.from_items(["nope"], k=5))
    assert not unknown_only.personalised and unknown_only.fallback == "no_history"
    assert any("nope" in w for w in unknown_only.warnings) and any("non-personal" in w for w in unknown_only.warnings)


def test_exclude_history(bundle):
    rec = Recommender.load(bundle[0], rules=RulesConfig(exclude_seen=True))
    hist = [f"sku-{i}" for i in range(1, 30)]
    res = rec.recommend(RecommendRequest.from_items(hist, k=20))
    assert len(res.items) == 20 and not set(r.item_id for r in res.items) & set(hist)


def copy_bundle(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_tampered_file_is_refused(bundle, tmp_path):
    d = copy_bundle(bundle[0], tmp_path / "b")
    vec = np.load(d / "item_vectors.npy")
    vec[3, 0] += 1.0
    np.save(d / "item_vectors.npy", vec)
    with pytest.raises(BundleError, match="checksum mismatch"):
        Recommender.load(d)


def test_truncated_and_missing_files_are_refused(bundle, tmp_path):
    d = copy_bundle(bundle[0], tmp_path / "b")
    data = (d / "index.faiss").read_bytes()
    (d / "index.faiss").write_bytes(data[: len(data) // 2])
    with pytest.raises(BundleError, match="truncated"):
        read_manifest(d)
    (d / "index.faiss").unlink()
    with pytest.raises(BundleError, match="missing file index.faiss"):
        read_manifest(d)


def test_unknown_format_version_is_refused(bundle, tmp_path):
    d = copy_bundle(bundle[0], tmp_path / "b")
    m = json.loads((d / "manifest.json").read_text())
    m["format_version"] = 99
    (d / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match="unknown bundle format version 99"):
        read_manifest(d)
    m["format_version"] = FORMAT_VERSION - 1
    (d / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match=f"version {FORMAT_VERSION - 1} is older.*scripts/export_index.py"):
        read_manifest(d)
    (d / "manifest.json").unlink()
    with pytest.raises(BundleError, match="missing manifest.json"):
        read_manifest(d)


def test_failed_export_leaves_previous_bundle_intact(bundle, tmp_path):
    d = copy_bundle(bundle[0], tmp_path / "b")
    before = read_manifest(d)
    n = 300
    model = SASRec(n, d_model=16, n_blocks=1, n_heads=2, max_len=10, dropout=0.0)
    catalog = conform_catalog({"item_id": pa.array([f"sku-{i}" for i in range(1, n + 1)])})
    with pytest.raises(RuntimeError):
        write_bundle(d, model, catalog, {}, {}, index_factory="NotAnIndex")
    assert read_manifest(d) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".b.")]  # no temp dirs left
