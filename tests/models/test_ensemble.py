"""An ensemble of trained models is one embedding model whose scores are the mean of its
members' scores (repeat bias included); it rebuilds from hparams + weights, ranks in evaluation
as its mean scores do, and an exported ensemble bundle serves from one FAISS index."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from journeyrec.bundle.ensemble import ensemble_bundle
from journeyrec.bundle.format import BundleError, read_bundle, write_bundle
from journeyrec.bundle.index import search
from journeyrec.bundle.stats import learn_stats
from journeyrec.data.datasets import EvalWindows
from journeyrec.data.prepare import prepare
from journeyrec.data.schema import FEATURE_SIZES
from journeyrec.evaluation.ranking import rank_batch
from journeyrec.models import build_model
from journeyrec.models.ensemble import Ensemble

FEATS = ["event_type", "channel"]


@pytest.fixture(scope="module")
def demo():
    return prepare(
        {"name": "demo", "options": {"n_customers": 120, "seed": 5}, "dedup_consecutive": True, "allow_demo_key": True}
    )


def member(demo, seed: int, **over):
    cfg = {
        "name": "sasrec",
        "d_model": 16,
        "n_blocks": 1,
        "n_heads": 2,
        "max_len": 12,
        "dropout": 0.0,
        "features": FEATS,
        "attributes": ["category"],
        "repeat_bias": True,
        **over,
    }
    torch.manual_seed(seed)
    model = build_model(cfg, demo.sequences.n_items, FEATURE_SIZES, demo.sequences.catalog).eval()
    if getattr(model, "repeat_bias", None) is not None:
        with torch.no_grad():
            model.repeat_bias.fill_(-0.5 * (seed + 1))
    return model


def eval_batch(demo, model, n=24):
    return EvalWindows(demo.sequences, demo.split.test, model.max_len, model.feature_names).__getitems__(list(range(n)))


def test_scores_are_the_mean_of_the_members_and_the_ensemble_rebuilds(demo):
    members = [member(demo, 0), member(demo, 1, d_model=32, mixer="bsa"), member(demo, 2)]
    ens = Ensemble(members).eval()
    b = eval_batch(demo, ens)
    items, feats = b["items"], {k: b[k] for k in ens.feature_names}
    with torch.no_grad():
        dots = torch.stack([m.session_vectors(items, feats) @ m.item_vectors().T for m in members]).mean(0)
        torch.testing.assert_close(ens.session_vectors(items, feats) @ ens.item_vectors().T, dots, atol=1e-5, rtol=1e-5)
        want = torch.stack([m.scores(items, feats) for m in members]).mean(0)
        torch.testing.assert_close(ens.scores(items, feats), want, atol=1e-5, rtol=1e-5)
        assert float(ens.repeat_bias) == pytest.approx(np.mean([-0.5, -1.0, -1.5]))
        # serving's precomputed table gives the same vectors
        table = ens.item_table()
        torch.testing.assert_close(ens.session_vectors(items, feats, table), ens.session_vectors(items, feats))
        torch.testing.assert_close(ens.item_vectors(table), ens.item_vectors())
        # evaluation's tiled ranking (bias added inside the tiles) ranks as the dense mean scores
        ranks = rank_batch(ens, b)["all"]
        target = want.gather(1, b["targets"][:, None])
        assert torch.equal(ranks.long(), (want[:, 1:] > target).sum(1).long())
        # the unpadded fast path of its members carries over
        row = int(torch.argmax((items != 0).sum(1)))
        n = int((items[row] != 0).sum())
        got = ens.session_vectors_unpadded(
            items[row : row + 1, -n:], {k: v[row : row + 1, -n:] for k, v in feats.items()}
        )
        torch.testing.assert_close(got[0], ens.session_vectors(items, feats)[row], atol=1e-5, rtol=1e-5)
        clone = Ensemble.from_hparams(json.loads(json.dumps(ens.hparams)))
        clone.load_state_dict(ens.state_dict(), strict=True)
        clone.eval()
        assert torch.equal(clone.scores(items, feats), ens.scores(items, feats))
    assert ens.hparams["d_model"] == 16 + 32 + 16


def test_bad_ensembles_are_named(demo):
    with pytest.raises(ValueError, match="at least 2 members"):
        Ensemble([member(demo, 0)])
    with pytest.raises(ValueError, match="differ in max_len"):
        Ensemble([member(demo, 0), member(demo, 1, max_len=10)])
    with pytest.raises(ValueError, match="different features"):
        Ensemble([member(demo, 0), member(demo, 1, features=["channel"])])
    with pytest.raises(ValueError, match="combines trained models"):
        build_model({"name": "ensemble"}, 10, FEATURE_SIZES)
    plain = Ensemble([member(demo, 0), member(demo, 1, repeat_bias=False)])
    assert plain.repeat_bias is None and not hasattr(plain, "scores")


@pytest.mark.slow
def test_an_ensemble_bundle_serves_and_ranks_like_one_model(demo, tmp_path):
    seqs = demo.sequences
    stats = learn_stats(seqs)
    dirs = []
    for seed in (0, 1):
        d = tmp_path / f"m{seed}"
        write_bundle(
            d,
            member(demo, seed, repeat_bias=False),
            seqs.catalog,
            {"data": {"name": "demo", "allow_demo_key": True}},
            {},
            "Flat",
            stats=stats,
        )
        dirs.append(d)
    out = ensemble_bundle(dirs, tmp_path / "ens")
    bundle = read_bundle(out)
    assert isinstance(bundle.model, Ensemble) and bundle.config["ensemble_of"] == [str(d) for d in dirs]
    a, b = (read_bundle(d) for d in dirs)
    np.testing.assert_allclose(bundle.vectors, np.concatenate([a.vectors, b.vectors], 1), atol=1e-6)
    batch = eval_batch(demo, bundle.model, n=8)
    items, feats = batch["items"], {k: batch[k] for k in bundle.model.feature_names}
    with torch.no_grad():
        query = bundle.model.session_vectors(items, feats).numpy()
        mean = np.mean([m.model.session_vectors(items, feats).numpy() @ m.vectors.T for m in (a, b)], axis=0)
    top, _ = search(bundle.index, query, 10)
    mean[:, 0] = -np.inf
    np.testing.assert_allclose(np.take_along_axis(mean, top, 1), -np.sort(-mean, 1)[:, :10], atol=1e-5)
    from journeyrec.serving import Recommender, RecommendRequest

    rec = Recommender.load(out)
    res = rec.recommend(RecommendRequest.from_items([str(x) for x in rec.item_ids[1:5]], k=5))
    assert len(res.items) == 5
    with pytest.raises(BundleError, match="at least 2 bundles"):
        ensemble_bundle(dirs[:1], tmp_path / "one")


def test_an_ensemble_of_blended_bundles_ranks_as_the_mean_of_their_blends(demo, tmp_path):
    """Members with the same transition counts and weights 1 and 3 (and one without a blend): the
    ensemble bundle ships the counts at the mean weight, so its scores are the members' mean scores."""
    from journeyrec.models.transitions import Transitions

    seqs = demo.sequences
    counts = Transitions.fit(seqs, demo.split.train_ends)
    dirs = []
    for seed, weight in ((0, 1.0), (1, 3.0), (2, None)):
        d = tmp_path / f"m{seed}"
        blend = None if weight is None else counts.with_weight(weight)
        write_bundle(d, member(demo, seed), seqs.catalog, {}, {}, "Flat", stats=learn_stats(seqs), transitions=blend)
        dirs.append(d)
    bundle = read_bundle(ensemble_bundle(dirs, tmp_path / "ens"))
    assert bundle.transitions is not None and bundle.transitions.weight == pytest.approx(4.0 / 3)
    assert bundle.manifest["transitions"]["weight"] == pytest.approx(4.0 / 3)
    batch = eval_batch(demo, bundle.model, n=16)
    items, feats = batch["items"], {k: batch[k] for k in bundle.model.feature_names}
    with torch.no_grad():
        got = bundle.ranking_model.scores(items, feats)
        mean = torch.stack([read_bundle(d).ranking_model.scores(items, feats) for d in dirs]).mean(0)
    torch.testing.assert_close(got, mean, atol=1e-5, rtol=1e-5)
    # counts of other training prefixes cannot be averaged into one blend
    other = Transitions.fit(seqs, demo.split.train_ends, window=1).with_weight(1.0)
    write_bundle(
        tmp_path / "w1", member(demo, 3), seqs.catalog, {}, {}, "Flat", stats=learn_stats(seqs), transitions=other
    )
    with pytest.raises(BundleError, match="transition counts differ"):
        ensemble_bundle([dirs[0], tmp_path / "w1"], tmp_path / "bad")
