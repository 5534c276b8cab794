"""Event types, channels and time gaps reach the model's tensors, position by position, from a
prepared store (the path training takes), and a model with those features reads them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from journeyrec.data.datasets import EvalWindows, TrainWindows
from journeyrec.data.prepare import load_prepared, prepare_store
from journeyrec.data.schema import CHANNELS, EVENT_TYPES, N_TIME_GAP_BUCKETS, TIME_GAP_EDGES_S

FEATURES = ("event_type", "channel", "time_gap")
# one customer's journey: (item, event type, channel, seconds after the previous event)
JOURNEY = [
    ("coat", "view", "web", 0),
    ("coat", "cart", "app", 45),
    ("scarf", "view", "app", 400),
    ("coat", "purchase", "store", 2 * 86400),
    ("gloves", "wishlist", "newsletter", 9 * 86400),
    ("hat", "view", "web", 3),
]


def code(vocab, value) -> int:
    return vocab.index(value) + 1


def gap_code(seconds: float) -> int:
    return int(np.searchsorted(np.asarray(TIME_GAP_EDGES_S), seconds, side="left")) + 1


def make_store(tmp_path: Path) -> Path:
    lines = ["user_id,item_id,event_type,timestamp,channel"]
    t = 1_700_000_000
    for item, et, ch, dt in JOURNEY:
        t += dt
        lines.append(f"alice,{item},{et},{t},{ch}")
    for u in range(3):  # a few more users so the split has company
        for k in range(4):
            lines.append(
                f"other{u},{['coat', 'hat', 'scarf', 'gloves'][(u + k) % 4]},view,{1_700_000_000 + 60 * k},web"
            )
    (tmp_path / "e.csv").write_text("\n".join(lines) + "\n")
    prepare_store({"name": "events", "path": str(tmp_path / "e.csv"), "allow_demo_key": True}, tmp_path / "store")
    return tmp_path / "store"


def test_features_reach_train_and_eval_tensors(tmp_path):
    p = load_prepared(make_store(tmp_path), mmap=True)
    s, sp = p.sequences, p.split
    alice = int(np.argmax(s.lengths))
    expect_et = [code(EVENT_TYPES, et) for _, et, _, _ in JOURNEY]
    expect_ch = [code(CHANNELS, ch) for _, _, ch, _ in JOURNEY]
    expect_gap = [gap_code(dt) for _, _, _, dt in JOURNEY]  # the first position has gap 0
    assert expect_gap == [1, 3, 5, 8, 9, 2]  # 0 s, 45 s, 400 s, 2 days, 9 days, 3 s: distinct buckets

    train = TrainWindows(s, sp.train_ends, max_len=8, features=FEATURES)
    row = int(np.nonzero(train.users == alice)[0][0])
    batch = train.__getitems__([row])
    n_train = len(JOURNEY) - 2  # leave-one-out: the last two positions are validation / test
    # inputs are positions 0..n_train-2 (the last training position is only a target), left-padded
    inputs = slice(-(n_train - 1), None)
    assert batch["event_type"][0, inputs].tolist() == expect_et[: n_train - 1]
    assert batch["channel"][0, inputs].tolist() == expect_ch[: n_train - 1]
    assert batch["time_gap"][0, inputs].tolist() == expect_gap[: n_train - 1]
    assert batch["target_event_type"][0, -1].item() == expect_et[n_train - 1]
    assert all(batch[k].dtype == torch.int64 for k in FEATURES)

    test = EvalWindows(s, sp.test, max_len=8, features=FEATURES)
    case = int(np.nonzero(sp.test.users == alice)[0][0])
    tb = test.__getitems__([case])
    k = len(JOURNEY) - 1
    assert tb["event_type"][0, -k:].tolist() == expect_et[:k]
    assert tb["channel"][0, -k:].tolist() == expect_ch[:k]
    assert tb["time_gap"][0, -k:].tolist() == expect_gap[:k]
    assert s.item_ids[tb["targets"][0].item() - 1] == "hat"


def test_the_model_reads_the_features(tmp_path):
    from journeyrec.models.sasrec import SASRec

    p = load_prepared(make_store(tmp_path), mmap=True)
    s = p.sequences
    sizes = {"event_type": len(EVENT_TYPES), "channel": len(CHANNELS), "time_gap": N_TIME_GAP_BUCKETS}
    model = SASRec(s.n_items, d_model=16, n_blocks=1, n_heads=2, max_len=8, dropout=0.0, features=sizes)
    batch = TrainWindows(s, p.split.train_ends, 8, FEATURES).__getitems__(list(range(4)))
    feats = {k: batch[k] for k in FEATURES}
    a = model.session_vectors(batch["items"], feats)
    shuffled = dict(feats, channel=torch.where(feats["channel"] > 0, 6 - feats["channel"] + 1, 0))
    b = model.session_vectors(batch["items"], shuffled)
    assert not torch.allclose(a, b)  # the channel embedding changes what the model sees
