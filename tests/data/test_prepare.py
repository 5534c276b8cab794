"""Preparation: one code path for in-memory and streaming data, the global steps (stable sort,
exact duplicates, sessions, k-core, retention, splits) against brute force, the store and card."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from journeyrec.data.prepare import load_prepared, prepare, prepare_store
from journeyrec.data.privacy import DEMO_KEY, pseudonymise_column
from journeyrec.data.schema import EVENT_TYPES, conform_events
from journeyrec.data.sequences import SequenceOptions, build_sequences, make_split
from journeyrec.data.synthetic import DemoShopConfig, generate, write_parquet

ROOT = Path(__file__).resolve().parents[2]
FIX = ROOT / "tests" / "fixtures"


def csv_events(path: Path, rows: list[tuple]) -> Path:
    """rows: (user, item, event_type, ts_seconds[, session[, channel]])"""
    lines = ["user_id,item_id,event_type,timestamp,session_id,channel"]
    for r in rows:
        r = tuple(r) + (None,) * (6 - len(r))
        lines.append(",".join("" if x is None else str(x) for x in r))
    path.write_text("\n".join(lines) + "\n")
    return path


def cfg(path: Path, **kw) -> dict:
    # the toy logs count seconds from 1970, before the default data.timestamp_min
    return {"name": "events", "path": str(path), "allow_demo_key": True, "timestamp_min": None, **kw}


def user_seq(p, raw_user: str) -> list[str]:
    """Item ids of one (raw) user's sequence in a store prepared with the demo key."""
    pseudo = pseudonymise_column(pa.array([raw_user]), DEMO_KEY.encode())[0].as_py()
    s = p.sequences
    u = int(np.nonzero(s.user_ids == pseudo)[0][0])
    return [str(s.item_ids[i - 1]) for i in s.sequence(u)]


def arrays_equal(a, b) -> None:
    for k in ("offsets", "items", "event_types", "channels", "timestamps"):
        assert np.array_equal(getattr(a, k), getattr(b, k)), k
    assert np.array_equal(a.session_ids(), b.session_ids())
    assert list(a.item_ids) == list(b.item_ids) and list(a.user_ids) == list(b.user_ids)


def test_one_code_path_whatever_the_batch_size(tmp_path):
    """The demo shop prepared from its generator, from Parquet streamed in small blocks, and
    build_sequences on the whole table in memory give identical arrays."""
    shop_cfg = DemoShopConfig(n_customers=300, seed=5, block_customers=120)
    a = prepare(
        {
            "name": "demo",
            "options": {"n_customers": 300, "seed": 5, "block_customers": 120},
            "allow_demo_key": True,
            "dedup_consecutive": True,
        }
    )
    write_parquet(shop_cfg, tmp_path / "shop")
    b = prepare(
        cfg(
            tmp_path / "shop" / "events.parquet",
            options={"block_rows": 997},
            consent_path=str(tmp_path / "shop" / "consent.parquet"),
            dedup_consecutive=True,
        )
    )
    arrays_equal(a.sequences, b.sequences)
    shop = generate(shop_cfg)
    opted = shop.consent.filter(shop.consent.column("opted_out")).column("user_id")
    ev = shop.events.filter(pc.invert(pc.is_in(shop.events.column("user_id"), value_set=opted)))
    ev = ev.set_column(0, ev.schema.field("user_id"), pseudonymise_column(ev.column("user_id"), DEMO_KEY.encode()))
    c = build_sequences(ev, shop.catalog, options=SequenceOptions(dedup_consecutive=True))
    arrays_equal(a.sequences, c)
    assert a.stats["opted_out_rows"] == shop.events.num_rows - ev.num_rows > 0


def test_stable_sort_duplicates_and_sessions(tmp_path):
    rows = [
        ("a", "x", "view", 100),
        ("a", "y", "view", 200),
        ("a", "z", "view", 200),  # tie: file order y, z
        ("a", "y", "view", 200),  # exact duplicate of the earlier y (not adjacent in the file)
        ("a", "w", "cart", 200),  # same time, different item: not a duplicate
        ("a", "x", "view", 200 + 31 * 60),  # > 30 min after: new session
        ("a", "x", "purchase", 200 + 31 * 60),  # same time, other type: not a duplicate
        ("b", "x", "view", 0),
        ("b", "x", "view", 0),  # duplicate
    ]
    p = prepare(cfg(csv_events(tmp_path / "e.csv", rows)))
    assert user_seq(p, "a") == ["x", "y", "z", "w", "x", "x"]
    assert p.stats["duplicates_removed"] == 2
    s = p.sequences
    a = int(np.nonzero(s.user_ids == pseudonymise_column(pa.array(["a"]), DEMO_KEY.encode())[0].as_py())[0][0])
    assert s.sessions[s.offsets[a] : s.offsets[a + 1]].tolist() == [0, 0, 0, 0, 1, 1]
    wide = prepare(cfg(tmp_path / "e.csv", session_gap_minutes=60))  # configurable gap
    assert wide.stats["sessions"] == 2 and p.stats["sessions"] == 3
    kept = prepare(cfg(tmp_path / "e.csv", dedup=False))
    assert kept.sequences.n_events == s.n_events + 2


def test_source_session_ids_win_over_the_gap(tmp_path):
    rows = [("a", "x", "view", 0, "s1"), ("a", "y", "view", 10, "s2"), ("a", "z", "view", 5000, "s2")]
    p = prepare(cfg(csv_events(tmp_path / "e.csv", rows)))
    assert p.sequences.sessions.tolist() == [0, 1, 1]  # 10 s apart but two sessions; 83 min apart but one


def test_kcore_matches_brute_force(tmp_path):
    rng = np.random.default_rng(3)
    rows = [(f"u{rng.integers(40)}", f"i{int(rng.zipf(1.6)) % 60}", "view", int(t)) for t in range(600)]
    p = prepare(cfg(csv_events(tmp_path / "e.csv", rows), min_user_events=4, min_item_events=3))
    pairs = [(u, i) for u, i, _, _ in rows]
    while True:  # naive iterative k-core
        uc, ic = {}, {}
        for u, i in pairs:
            uc[u] = uc.get(u, 0) + 1
            ic[i] = ic.get(i, 0) + 1
        kept = [(u, i) for u, i in pairs if uc[u] >= 4 and ic[i] >= 3]
        if len(kept) == len(pairs):
            break
        pairs = kept
    s = p.sequences
    assert (
        s.n_events == len(pairs) and s.n_items == len({i for _, i in pairs}) and s.n_users == len({u for u, _ in pairs})
    )
    assert np.bincount(s.items)[1:].min() >= 3 and s.lengths.min() >= 4
    assert p.stats["kcore_removed_events"] == len(rows) - len(pairs)


def test_retention_window_drops_old_events_and_their_quarantine(tmp_path):
    day = 86400
    rows = [
        ("a", "x", "view", 0),
        ("a", "y", "view", 5 * day),
        ("a", "z", "view", 20 * day),
        ("b", "x", "view", 21 * day),
        ("b", "y", "teleport", 1 * day),
        ("b", "y", "teleport", 19 * day),
    ]
    store = tmp_path / "store"
    card = prepare_store(cfg(csv_events(tmp_path / "e.csv", rows), retention_days=10, max_bad_fraction=0.5), store)
    assert card["privacy"]["rows_outside_retention"] == 2
    ev = pq.read_table(store / "events.parquet")
    assert ev.num_rows == 2 and min(ev.column("timestamp").cast(pa.int64()).to_pylist()) == 20 * day * 1000
    q = pq.read_table(store / "quarantine.parquet")
    assert q.column("line").to_pylist() == [7]  # the rejected row from day 1 is beyond retention too


def test_splits_against_naive(tmp_path):
    rng = np.random.default_rng(1)
    rows, t = [], 0
    for u in range(30):
        for _ in range(int(rng.integers(1, 12))):
            t += int(rng.choice([60, 4000]))
            rows.append((f"u{u}", f"i{rng.integers(25)}", "view", t))
    p = prepare(cfg(csv_events(tmp_path / "e.csv", rows), split="last_session"))
    s, sp = p.sequences, p.split
    sess = s.session_ids()
    expect_valid, expect_test = [], []
    for u in range(s.n_users):
        lo, hi = s.offsets[u], s.offsets[u + 1]
        ids = sess[lo:hi]
        if len(ids) == 0 or ids[-1] + 1 < 3:
            assert sp.train_ends[u] == hi
            continue
        last = lo + int(np.argmax(ids == ids[-1]))
        prev = lo + int(np.argmax(ids == ids[-1] - 1))
        assert sp.train_ends[u] == prev
        expect_test += [(u, e) for e in range(last, hi)]
        expect_valid += [(u, e) for e in range(prev, last)]
    assert list(zip(sp.test.users.tolist(), sp.test.ends.tolist())) == expect_test
    assert list(zip(sp.valid.users.tolist(), sp.valid.ends.tolist())) == expect_valid
    assert (sp.test.targets == s.items[sp.test.ends]).all() and len(expect_test) > 0
    loo = make_split(s, "leave_one_out")
    assert len(loo.test) == int((s.lengths >= 3).sum())


def test_store_layout_card_and_reuse(tmp_path):
    store = tmp_path / "store"
    card = prepare_store({"name": "demo", "options": {"n_customers": 120}, "allow_demo_key": True}, store)
    for name in (
        "prepared.json",
        "events.parquet",
        "users.parquet",
        "items.parquet",
        "catalog.parquet",
        "extra_consent.parquet",
        "dataset_card.json",
        "dataset_card.md",
        "sequence_lengths.png",
        "arrays/items.npy",
        "arrays/sessions.npy",
    ):
        assert (store / name).is_file(), name
    assert not (store / "quarantine.parquet").exists()  # nothing was rejected
    assert (store / "sequence_lengths.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    on_disk = json.loads((store / "dataset_card.json").read_text())
    assert on_disk == json.loads(json.dumps(card))
    ev = pq.read_table(store / "events.parquet")
    assert card["rows_read"] == ev.num_rows + card["privacy"]["opted_out_rows"]
    assert card["events"]["total"] == ev.num_rows and card["events"]["users"] == len(ev.column("user_id").unique())
    assert card["events"]["by_type"] == {
        d["values"]: d["counts"] for d in ev.column("event_type").value_counts().to_pylist()
    }
    assert sum(card["events"]["by_channel"].values()) == ev.num_rows
    assert card["events"]["sessions"] == len(ev.column("session_id").unique())
    assert card["sequences"]["users"] == card["events"]["users"] and card["rows_quarantined"] == {
        "total": 0,
        "by_reason": {},
    }
    assert card["events"]["time_span"]["first"].startswith("2026-")
    md = (store / "dataset_card.md").read_text()
    assert "| rows read |" in md and "sequence_lengths.png" in md
    mm = load_prepared(store, mmap=True)
    assert isinstance(mm.sequences.items, np.memmap) and mm.fingerprint() == card["fingerprint"]
    again = prepare({"name": "demo", "prepared": str(store)})  # training can reuse a store instead of the source
    arrays_equal(again.sequences, mm.sequences)


@pytest.mark.slow
def test_prepare_data_cli_logs_the_card_to_mlflow(tmp_path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    env = dict(os.environ, MLFLOW_TRACKING_URI=uri, PYTHONPATH=str(ROOT / "src"))
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "prepare_data.py"),
            "data=rees46",
            f"data.path={FIX / 'rees46'}",
            "data.max_bad_fraction=0.2",
            f"hydra.run.dir={out}",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "quarantined 2 (negative_price 1, malformed_row 1)" in proc.stdout
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("rees46-rees46")
    run = client.search_runs([exp.experiment_id])[0]
    assert run.data.metrics["data/rows_read"] == 26 and run.data.metrics["data/quarantined/negative_price"] == 1
    assert run.data.params["data.name"] == "rees46"
    arts = {a.path for a in client.list_artifacts(run.info.run_id, "dataset_card")}
    assert arts == {
        "dataset_card/dataset_card.json",
        "dataset_card/dataset_card.md",
        "dataset_card/sequence_lengths.png",
    }
    assert (out / "prepared" / "dataset_card.json").is_file()


def test_event_codes_are_canonical():
    ev = conform_events(
        pa.table(
            {
                "user_id": ["a"] * 3,
                "item_id": ["x", "y", "z"],
                "event_type": ["view", "cart", "purchase"],
                "timestamp": pa.array([1, 2, 3], pa.timestamp("ms", tz="UTC")),
            }
        )
    )
    s = build_sequences(ev)
    assert [EVENT_TYPES[c - 1] for c in s.event_types] == ["view", "cart", "purchase"]
    with pytest.raises(Exception, match="no item events"):
        build_sequences(
            conform_events(
                pa.table(
                    {
                        "user_id": ["a"],
                        "item_id": pa.nulls(1, pa.string()),
                        "event_type": ["search"],
                        "timestamp": pa.array([1], pa.timestamp("ms", tz="UTC")),
                    }
                )
            )
        )
