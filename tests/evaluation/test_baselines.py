"""Baselines against brute-force counting on a tiny hand-made dataset: popularity order, recent
window, co-occurrence scores; fitted on training prefixes only; never tied; ranked by the same
evaluation code as neural models."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from sequence_support import SEQS, make_data, train_prefixes

from journeyrec.evaluation.rank_kernel import target_ranks
from journeyrec.evaluation.ranking import evaluate
from journeyrec.models.baselines import BASELINES, CoOccurrence, Popularity, RecentPopularity, fit_baseline

DAY = 86_400_000


def test_popularity_orders_by_training_counts_only():
    prep = make_data(SEQS)
    pop = fit_baseline("popularity", prep)
    counts = Counter(x for s in train_prefixes(prep) for x in s)
    scores = pop.scores(torch.zeros(1, 1, dtype=torch.long))[0].numpy()
    assert len(set(scores[1:].tolist())) == pop.n_items  # distinct: no ties for the optimistic policy to exploit
    for a in range(1, pop.n_items + 1):
        for b in range(1, pop.n_items + 1):
            if counts[a] > counts[b]:
                assert scores[a] > scores[b]
    # validation / test targets (the last two items of each user) are not counted
    assert pop.counts[8] == 0 and pop.counts.sum() == sum(len(s) for s in train_prefixes(prep))


def test_recent_popularity_windows():
    # user 0 long ago, user 1 recently; the day window keeps only user 1's training events
    prep = make_data(
        [[1, 1, 1, 1, 9, 9], [2, 3, 2, 9, 9]],
        [[0, 1, 2, 3, 4, 5], [30 * DAY, 30 * DAY + 1, 30 * DAY + 2, 30 * DAY + 3, 30 * DAY + 4]],
    )
    rec = RecentPopularity.fit(prep.sequences, prep.split.train_ends, window_days=7)
    assert rec.counts[1] == 0 and rec.counts[2] == 2 and rec.counts[3] == 1
    assert rec.hparams["window_share"] == pytest.approx(3 / 7)
    per_user = RecentPopularity.fit(prep.sequences, prep.split.train_ends, last_per_user=1)
    assert per_user.counts.tolist()[1:4] == [1, 1, 0]  # the last training item of each user: 1 and 2
    everything = RecentPopularity.fit(prep.sequences, prep.split.train_ends, window_days=1000)
    assert everything.hparams["window_share"] == 1.0
    with pytest.raises(ValueError, match="window_days"):
        RecentPopularity.fit(prep.sequences, prep.split.train_ends, window_days=None)


def test_cooccurrence_scores_vs_brute_force():
    prep = make_data(SEQS)
    window, history = 2, 2
    co = CoOccurrence.fit(prep.sequences, prep.split.train_ends, window=window, history=history)
    pairs = Counter()
    for s in train_prefixes(prep):
        for i in range(len(s)):
            for d in range(1, window + 1):
                if i + d < len(s):
                    pairs[(s[i], s[i + d])] += 1
    items = torch.tensor([[0, 0, 2, 1], [0, 0, 0, 6]])
    got = co.cooccurrence_scores(items.numpy())
    for row, seq in enumerate(items.tolist()):
        last = seq[-history:]
        for j in range(co.n_items + 1):
            ref = sum(w * pairs[(x, j)] for w, x in zip(range(1, history + 1), last) if x)
            assert got[row, j] == ref
    s = co.scores(items)
    assert s.dtype == torch.float64
    for row in range(2):
        assert len(set(s[row, 1:].tolist())) == co.n_items  # ties broken by popularity, exactly
        order = torch.argsort(s[row, 1:], descending=True) + 1
        co_sorted = got[row, order.numpy()]
        assert (np.diff(co_sorted) <= 0).all()  # co-occurrence is the primary key


def test_baselines_are_evaluated_by_the_shared_code_path():
    prep = make_data(SEQS)
    for name in BASELINES:
        model = fit_baseline(name, prep)
        res = evaluate(model, prep.sequences, prep.split.test, "test", ks=[3], topk=3)
        # recompute by hand from the model's scores
        cases = prep.split.test
        ends, users = cases.ends, cases.users
        rows = []
        for u, e in zip(users, ends):
            seq = prep.sequences.items[prep.sequences.offsets[u] : e].tolist()
            rows.append(([0] * model.max_len + seq)[-model.max_len :])
        scores = model.scores(torch.tensor(rows))
        ref, ties = target_ranks(scores, torch.from_numpy(cases.targets))
        assert np.array_equal(res.ranks["all"], ref.numpy()) and (ties == 0).all()
        assert res.metrics["test/tie_rate"] == 0.0
        assert res.topk["all"].shape == (len(cases), 3)


def test_unknown_baseline_and_bad_parameters_are_named():
    prep = make_data(SEQS)
    with pytest.raises(ValueError, match="available"):
        fit_baseline("nope", prep)
    with pytest.raises(ValueError, match="window >= 1"):
        fit_baseline("cooccurrence", prep, window=0)
    with pytest.raises(ValueError, match="no parameters"):
        Popularity.fit(prep.sequences, prep.split.train_ends, window=3)
