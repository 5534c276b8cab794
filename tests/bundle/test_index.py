"""FAISS by factory string: the search parameter is tuned to the target recall on held-out
queries, recall@K and QPS are measured on other held-out queries and recorded in the manifest,
and the recorded parameters are applied when the bundle is loaded."""

from __future__ import annotations

import json

import faiss
import numpy as np
import pytest

from journeyrec.bundle.index import build_index, exact_topk, search, set_search_params, tune_and_measure


def clustered(n: int, d: int, seed: int) -> np.ndarray:
    """Item-like vectors: clusters of different sizes (uniform noise would make ANN look easy)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((64, d)).astype(np.float32)
    which = rng.zipf(1.5, size=n) % 64
    return (centres[which] + 0.35 * rng.standard_normal((n, d))).astype(np.float32)


@pytest.fixture(autouse=True)
def faiss_one_thread():
    """Index training on one thread: on a busy 2-core machine a second OpenMP thread waits for a core."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


@pytest.fixture(scope="module")
def data():
    items = np.vstack([np.zeros((1, 32), np.float32), clustered(4000, 32, 0)])  # row 0 = padding
    queries = clustered(400, 32, 1)
    return items, queries


@pytest.mark.parametrize("factory", ["HNSW32", "IVF64,Flat", "IVF64,PQ32x4fs,RFlat"])
def test_default_parameters_reach_the_target_recall_on_held_out_queries(data, factory):
    items, queries = data
    index = build_index(items, factory)
    q = tune_and_measure(index, items, queries, target_recall=0.95, query_source="test", qps_seconds=0.05)
    assert q["reached_target"] and q["tuned_recall@10"] >= 0.95, q
    assert q["recall@10"] >= 0.93, q  # measured on the other half of the held-out queries
    assert q["tuned_on"] == q["evaluated_on"] == 200 and q["qps_single_query"] > 0 and q["qps_exact_torch"] > 0
    assert set(q["search_params"]) & {"efSearch", "nprobe"}
    # the recorded recall is reproducible from the recorded parameters on the evaluation half
    set_search_params(index, {k: 1 for k in q["search_params"]})
    set_search_params(index, q["search_params"])
    truth = exact_topk(items, queries[200:], 10)
    found = search(index, queries[200:], 10)[0]
    recall = np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found.tolist(), truth.tolist())])
    assert recall == pytest.approx(q["recall@10"], abs=0.02)
    # a smaller value than the chosen one misses the target on the tuning half (it is the smallest)
    if len(q["tuning"]) > 1:
        assert q["tuning"][-2]["recall@10"] < 0.95


def test_an_unreachable_target_is_reported_not_hidden(data):
    items, queries = data
    q = tune_and_measure(build_index(items, "IVF16,PQ4x4fs"), items, queries, target_recall=0.99, qps_seconds=0.05)
    assert not q["reached_target"] and q["tuned_recall@10"] < 0.99
    assert q["search_params"] == {k: v for k, v in q["tuning"][-1].items() if k != "recall@10"}  # the best it tried


def test_flat_is_exact(data):
    items, queries = data
    q = tune_and_measure(build_index(items, "Flat"), items, queries, qps_seconds=0.05)
    assert q["search_params"] == {} and q["recall@10"] == q["recall@100"] == 1.0


def test_bundle_manifest_records_quality_and_load_applies_it(demo_bundle, tmp_path, one_thread):
    from journeyrec.bundle.format import write_bundle
    from journeyrec.bundle.stats import RuleStats
    from journeyrec.serving import Recommender

    flat = Recommender.load(demo_bundle.path)
    manifest = json.loads((demo_bundle.path / "manifest.json").read_text())
    assert manifest["index"]["quality"]["recall@10"] == 1.0
    assert manifest["catalog"]["non_null"]["own_brand"] == flat.n_items
    d = tmp_path / "hnsw"
    write_bundle(
        d,
        flat.model,
        flat.catalog,
        {},
        {},
        "HNSW16",
        stats=RuleStats.load(demo_bundle.path),
        queries=np.random.default_rng(0).standard_normal((200, flat.vectors.shape[1])).astype(np.float32),
        query_source="random",
        target_recall=0.99,
    )
    m = json.loads((d / "manifest.json").read_text())
    assert m["index"]["factory"] == "HNSW16" and m["index"]["quality"]["query_source"] == "random"
    ef = m["index"]["search_params"]["efSearch"]
    loaded = Recommender.load(d)
    assert faiss.downcast_index(loaded.index).hnsw.efSearch == ef
    assert m["bundle_version"] != manifest["bundle_version"]
