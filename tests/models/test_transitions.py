"""The transition blend (journeyrec.models.transitions) against brute force: the counts of the
training prefixes, the bonus added to a model's logits, the neighbours serving lifts, the file a
bundle ships, and the weight chosen on validation by the same rank code as evaluation."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from sequence_support import SEQS, make_data, train_prefixes

from journeyrec.data.sequences import with_validation_targets
from journeyrec.evaluation.ranking import evaluate
from journeyrec.evaluation.transitions import choose_weight
from journeyrec.models.sasrec import SASRec
from journeyrec.models.transitions import TransitionBlend, Transitions


def brute_pairs(prefixes: list[list[int]], window: int) -> Counter:
    pairs: Counter = Counter()
    for s in prefixes:
        for i in range(len(s)):
            for d in range(1, window + 1):
                if i + d < len(s):
                    pairs[(s[i], s[i + d])] += 1
    return pairs


def brute_counts(pairs: Counter, window_items: list[int], history: int, n_items: int) -> np.ndarray:
    last = window_items[-history:]
    out = np.zeros(n_items + 1)
    for j in range(n_items + 1):
        out[j] = sum(w * pairs[(x, j)] for w, x in zip(range(1, history + 1), last) if x)
    return out


@pytest.mark.parametrize("window,history", [(1, 1), (2, 3), (3, 2)])
def test_counts_are_the_training_prefixes_pairs_weighted_newest_first(window, history):
    prep = make_data(SEQS)
    t = Transitions.fit(prep.sequences, prep.split.train_ends, window=window, history=history)
    pairs = brute_pairs(train_prefixes(prep), window)
    assert t.pairs == len(pairs) and t.values.sum() == sum(pairs.values())
    windows = [[0, 0, 2, 1], [0, 0, 0, 6], [3, 1, 2, 5], [0, 0, 0, 0]]
    got = t.counts(np.asarray(windows))
    for row, w in enumerate(windows):
        np.testing.assert_array_equal(got[row], brute_counts(pairs, w, history, t.n_items))
    # validation and test targets are not counted; with validation targets (a refit's prefixes) they are
    refit = Transitions.fit(prep.sequences, with_validation_targets(prep.split).train_ends, window, history)
    assert refit.values.sum() > t.values.sum()
    d, ends = prep.sequences, with_validation_targets(prep.split).train_ends
    longer = [d.items[d.offsets[u] : ends[u]].tolist() for u in range(d.n_users)]
    assert refit.values.sum() == sum(brute_pairs(longer, window).values())


def test_items_added_after_the_fit_have_no_row_and_narrow_counts_cut_columns():
    prep = make_data(SEQS)
    t = Transitions.fit(prep.sequences, prep.split.train_ends)
    n = t.n_items
    # a new item in the newest position counts nothing; the others keep their weights (padding there does the same)
    np.testing.assert_array_equal(t.counts(np.asarray([[1, 2, n + 3]])), t.counts(np.asarray([[1, 2, 0]])))
    np.testing.assert_array_equal(t.counts(np.asarray([[1, 2]]), width=4), t.counts(np.asarray([[1, 2]]))[:, :4])


def test_neighbours_are_every_item_the_blend_lifts_with_its_bonus():
    prep = make_data(SEQS)
    t = Transitions.fit(prep.sequences, prep.split.train_ends).with_weight(0.7)
    for session in ([1, 2], [6, 2, 1], [3], [8]):
        ids, bonus = t.neighbours(np.asarray(session))
        counts = t.counts(np.asarray([session]))[0]
        assert ids.tolist() == np.flatnonzero(counts).tolist()  # sorted, exactly the items with a count
        np.testing.assert_allclose(bonus, 0.7 * np.log1p(counts[ids]), rtol=1e-6)
    assert t.neighbours(np.asarray([8]))[0].size == 0  # item 8 only ever came last: nothing followed it


def test_the_bundle_file_round_trips(tmp_path):
    prep = make_data(SEQS)
    t = Transitions.fit(prep.sequences, prep.split.train_ends, window=2, history=4).with_weight(1.5)
    assert t.save(tmp_path) == "transitions.npz"
    back = Transitions.load(tmp_path)
    assert (back.n_items, back.window, back.history, back.weight) == (t.n_items, 2, 4, 1.5)
    for name in ("indptr", "indices", "values"):
        np.testing.assert_array_equal(getattr(back, name), getattr(t, name))


def _model(n_items: int, repeat_bias: bool = False) -> SASRec:
    torch.manual_seed(0)
    model = SASRec(n_items, d_model=8, n_blocks=1, n_heads=1, max_len=6, dropout=0.0, repeat_bias=repeat_bias)
    if repeat_bias:
        with torch.no_grad():
            model.repeat_bias.fill_(-0.8)
    return model.eval()


@pytest.mark.parametrize("repeat_bias", [False, True])
def test_the_blend_adds_weight_times_log_counts_to_the_models_own_scores(repeat_bias):
    prep = make_data(SEQS)
    model = _model(prep.sequences.n_items, repeat_bias)
    t = Transitions.fit(prep.sequences, prep.split.train_ends).with_weight(0.5)
    items = torch.tensor([[0, 0, 0, 0, 2, 1], [0, 3, 1, 2, 5, 6]])
    with torch.no_grad():
        own = model.scores(items) if repeat_bias else model.session_vectors(items) @ model.item_vectors().T
        got = TransitionBlend(model, t).scores(items)
        alone = TransitionBlend(model, t.with_weight(0.0)).scores(items)
    expected = own + 0.5 * torch.log1p(torch.from_numpy(t.counts(items.numpy())).float())
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(alone, own)
    assert (got - own).abs().sum() > 0


def test_choice_on_validation_matches_evaluating_each_weight():
    """choose_weight ranks each weight from one forward pass per batch; every figure equals the full
    evaluation of that weight's blend, and the winner is the best by the monitored metric."""
    # journeys along one fixed route through 20 items, from random starting points: what followed an
    # item in training predicts the next one, which an untrained model cannot know
    rng = np.random.default_rng(0)
    prep = make_data(
        [[(s + i) % 20 + 1 for i in range(n)] for s, n in zip(rng.integers(0, 20, 60), rng.integers(5, 9, 60))]
    )
    model = _model(prep.sequences.n_items)
    t = Transitions.fit(prep.sequences, prep.split.train_ends)
    monitor = "valid_seen_excluded/ndcg@10"
    weight, table = choose_weight(model, t, prep.sequences, prep.split.valid, [0.5, 2.0, 8.0], monitor, batch_size=7)
    assert sorted(table) == [0.0, 0.5, 2.0, 8.0]
    for w, metrics in table.items():
        full = evaluate(TransitionBlend(model, t.with_weight(w)), prep.sequences, prep.split.valid, "valid").metrics
        for key in (monitor, "valid/ndcg@10", "valid/hr@10", "valid_seen_excluded/hr@20"):
            assert metrics[key] == pytest.approx(full[key], abs=1e-12), (w, key)
    assert weight == max(table, key=lambda w: (table[w][monitor], -w))
    assert table[weight][monitor] > table[0.0][monitor]  # the counts carry signal on this data
    with pytest.raises(ValueError, match="not a validation metric"):
        choose_weight(model, t, prep.sequences, prep.split.valid, [1.0], "valid_seen_excluded/mrr@7")


@pytest.mark.parametrize("repeat_bias", [False, True])
def test_evaluation_ranks_the_blend_tile_by_tile_exactly_as_its_dense_scores(repeat_bias):
    """rank_batch adds the blend's sparse bonus (and the repeat bias) inside the tiles: the ranks,
    ties and top-k lists equal those of the dense scores under both protocols."""
    from journeyrec.data.datasets import EvalWindows
    from journeyrec.evaluation.rank_kernel import exclusion_mask, target_ranks_many, topk_items
    from journeyrec.evaluation.ranking import rank_batch

    rng = np.random.default_rng(1)
    prep = make_data(
        [[(s + i) % 20 + 1 for i in range(n)] for s, n in zip(rng.integers(0, 20, 40), rng.integers(4, 9, 40))]
    )
    model = _model(prep.sequences.n_items, repeat_bias)
    blend = TransitionBlend(model, Transitions.fit(prep.sequences, prep.split.train_ends).with_weight(1.5))
    batch = EvalWindows(prep.sequences, prep.split.test, model.max_len, ()).__getitems__(list(range(40)))
    with torch.no_grad():
        dense = blend.scores(batch["items"])
    excl = exclusion_mask(*dense.shape, batch["history_rows"], batch["history_items"])
    (r_all, t_all), (r_seen, t_seen) = target_ranks_many(dense, batch["targets"], [None, excl])
    got = rank_batch(blend, batch, topk=5)
    assert torch.equal(got["all"], r_all) and torch.equal(got["seen_excluded"], r_seen)
    assert torch.equal(got["ties_all"], t_all) and torch.equal(got["ties_seen_excluded"], t_seen)
    assert torch.equal(got["top_all"], topk_items(dense, 5)[0])
    assert torch.equal(got["top_seen_excluded"], topk_items(dense, 5, excl)[0])
