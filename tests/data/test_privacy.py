"""Privacy by design, each property proven on real runs:

* a planted raw user id (and the HMAC key) is found nowhere under the run's output (prepared
  store, Hydra files, logs), the MLflow store and its artifacts, or the console output;
* the public demo key is refused for a shop's own data; the key comes from env or a key file;
* opted-out users' events are absent, only counted; events beyond the retention window are gone;
* forget_user removes a user completely, atomically, and leaves everybody else unchanged.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from journeyrec.data.prepare import load_prepared, prepare_store
from journeyrec.data.privacy import DEMO_KEY, HMAC_ENV, PrivacyError, pseudonymise
from journeyrec.data.synthetic import DemoShopConfig, generate, generate_consent

ROOT = Path(__file__).resolve().parents[2]
PLANTED = "PLANTED-7f3c-USER"
SECRET = "k-9d2e61b0-SECRET-pseudonymisation-KEY"


def _strings(table: pa.Table) -> list[str]:
    out = []
    for col in table.columns:
        t = col.type
        if pa.types.is_list(t) or pa.types.is_large_list(t):
            col = pc.list_flatten(col)
            t = col.type
        if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t):
            out.extend(str(v) for v in col.to_pylist() if v is not None)
    return out


def files_containing(roots: list[Path], needle: str, skip: Path | None = None) -> list[Path]:
    """Every file under ``roots`` whose bytes contain ``needle``; Parquet files are also decoded
    (their pages are compressed, so a byte search alone could miss a value)."""
    hits = []
    raw = needle.encode()
    for root in roots:
        for f in [root] if root.is_file() else sorted(root.rglob("*")):
            if not f.is_file() or (skip is not None and skip in f.parents):
                continue
            found = raw in f.read_bytes()
            if not found and f.suffix == ".parquet":
                found = any(needle in v for v in _strings(pq.read_table(f)))
            if found:
                hits.append(f)
    return hits


def planted_csv(path: Path) -> Path:
    rng = np.random.default_rng(0)
    rows = ["user_id,item_id,event_type,timestamp,channel"]
    users = [f"shopper-{u:02d}" for u in range(12)] + [PLANTED]
    for u in users:
        t = 1_700_000_000
        for _ in range(6):
            t += int(rng.integers(30, 900))
            rows.append(f"{u},sku{rng.integers(15)},{rng.choice(['view', 'cart'])},{t},{rng.choice(['web', 'app'])}")
    path.parent.mkdir(parents=True)
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.mark.slow
def test_planted_user_id_and_key_are_nowhere_after_a_training_run(tmp_path):
    source = planted_csv(tmp_path / "source" / "events.csv")
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    env = dict(os.environ, MLFLOW_TRACKING_URI=uri, PYTHONPATH=str(ROOT / "src"), **{HMAC_ENV: SECRET})
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        str(ROOT / "scripts" / "train.py"),
        "data=events",
        f"data.path={source}",
        "model.d_model=8",
        "model.n_blocks=1",
        "model.max_len=8",
        "trainer.max_epochs=1",
        "trainer.progress_bar=false",
        "show_samples=3",
        f"hydra.run.dir={out}",
    ]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (tmp_path / "console.log").write_text(proc.stdout + proc.stderr)

    everything = [tmp_path]  # run directory (store, .hydra, train.log), mlruns.db, mlartifacts/, console output
    assert (out / "prepared" / "events.parquet").is_file() and (tmp_path / "mlruns.db").is_file()
    assert list((tmp_path / "mlartifacts").rglob("dataset_card.json")) and list(
        (tmp_path / "mlartifacts").rglob("users.parquet")
    )
    assert files_containing(everything, PLANTED, skip=source.parent) == []
    assert files_containing(everything, SECRET, skip=source.parent) == []
    # the search does see ids where they are: the raw id in the source, the pseudonym in the store
    assert files_containing([source], PLANTED) == [source]
    pseudo = pseudonymise(PLANTED, SECRET.encode())
    hits = {p.name for p in files_containing([out / "prepared"], pseudo)}
    assert {"events.parquet", "users.parquet"} <= hits


def test_demo_key_is_refused_for_private_data(tmp_path, monkeypatch):
    source = planted_csv(tmp_path / "source" / "events.csv")
    monkeypatch.delenv(HMAC_ENV, raising=False)
    data = {"name": "events", "path": str(source)}
    with pytest.raises(
        PrivacyError, match=r"refusing to pseudonymise with the built-in demo HMAC key.*JOURNEYREC_HMAC_KEY"
    ):
        prepare_store(data, tmp_path / "store")
    assert not (tmp_path / "store").exists()
    key_file = tmp_path / "secret.key"
    key_file.write_text(SECRET + "\n")
    prepare_store({**data, "hmac_key_file": str(key_file)}, tmp_path / "store")
    users = set(pq.read_table(tmp_path / "store" / "users.parquet").column("user_id").to_pylist())
    assert pseudonymise(PLANTED, SECRET.encode()) in users and pseudonymise(PLANTED, DEMO_KEY.encode()) not in users
    monkeypatch.setenv(HMAC_ENV, "another-key")  # the environment wins over the key file
    prepare_store({**data, "hmac_key_file": str(key_file)}, tmp_path / "store2")
    assert pseudonymise(PLANTED, b"another-key") in set(
        pq.read_table(tmp_path / "store2" / "users.parquet").column("user_id").to_pylist()
    )


def test_opted_out_users_events_are_absent_and_only_counted(tmp_path):
    shop_cfg = DemoShopConfig(n_customers=200, seed=11)
    store = tmp_path / "store"
    card = prepare_store({"name": "demo", "options": {"n_customers": 200, "seed": 11}, "allow_demo_key": True}, store)
    shop = generate(shop_cfg)
    consent = generate_consent(shop_cfg)
    opted = set(consent.filter(consent.column("opted_out")).column("user_id").to_pylist())
    with_events = opted & set(shop.events.column("user_id").to_pylist())
    assert with_events, "the demo shop must have opted-out customers with events"
    n_rows = sum(1 for u in shop.events.column("user_id").to_pylist() if u in opted)
    assert card["privacy"]["opted_out_rows"] == n_rows and card["privacy"]["opted_out_users"] == len(with_events)
    key = DEMO_KEY.encode()
    gone = {pseudonymise(u, key) for u in with_events}
    ev_users = set(pq.read_table(store / "events.parquet").column("user_id").to_pylist())
    assert not gone & ev_users and not gone & set(load_prepared(store).sequences.user_ids.tolist())
    assert not files_containing([store / "events.parquet", store / "users.parquet", store / "arrays"], next(iter(gone)))
    kept = {pseudonymise(u, key) for u in set(shop.events.column("user_id").to_pylist()) - opted}
    assert ev_users == kept


def test_consent_file_for_a_shop_log(tmp_path, monkeypatch):
    monkeypatch.setenv(HMAC_ENV, SECRET)
    source = planted_csv(tmp_path / "source" / "events.csv")
    (tmp_path / "consent.csv").write_text(f"user_id,opted_out\n{PLANTED},yes\nshopper-01,no\n")
    card = prepare_store(
        {"name": "events", "path": str(source), "consent_path": str(tmp_path / "consent.csv")}, tmp_path / "store"
    )
    assert card["privacy"]["opted_out_rows"] == 6 and card["privacy"]["opted_out_users"] == 1
    assert pseudonymise(PLANTED, SECRET.encode()) not in set(
        pq.read_table(tmp_path / "store" / "events.parquet").column("user_id").to_pylist()
    )


def test_retention_window(tmp_path):
    day = 86400
    lines = ["user_id,item_id,event_type,timestamp"] + [f"u{k % 3},i{k},view,{k * day}" for k in range(40)]
    (tmp_path / "e.csv").write_text("\n".join(lines) + "\n")
    card = prepare_store(
        {
            "name": "events",
            "path": str(tmp_path / "e.csv"),
            "allow_demo_key": True,
            "retention_days": 14.5,
            "timestamp_min": None,
        },
        tmp_path / "s",
    )  # days counted from 1970
    ts = pq.read_table(tmp_path / "s" / "events.parquet").column("timestamp").cast(pa.int64()).to_numpy()
    assert ts.min() >= (39 - 14.5) * day * 1000 and len(ts) == 15
    assert card["privacy"]["rows_outside_retention"] == 25 and card["events"]["total"] == 15


def _digest(d: Path) -> dict[str, str]:
    return {
        str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.rglob("*")) if p.is_file()
    }


@pytest.mark.slow
def test_forget_user_removes_one_user_completely(tmp_path, monkeypatch):
    store = tmp_path / "store"
    before_card = prepare_store(
        {"name": "demo", "options": {"n_customers": 150, "seed": 2}, "allow_demo_key": True, "split": "last_session"},
        store,
    )
    before = load_prepared(store)
    s = before.sequences
    u = int(np.argmax(s.lengths))  # a user with many events and evaluation cases
    victim = str(s.user_ids[u])
    raw = next(
        c
        for c in generate_consent(DemoShopConfig(n_customers=150, seed=2)).column("user_id").to_pylist()
        if pseudonymise(c, DEMO_KEY.encode()) == victim
    )
    n_events = int(pc.sum(pc.equal(pq.read_table(store / "events.parquet").column("user_id"), victim)).as_py())

    # a crash half-way leaves the store exactly as it was
    import journeyrec.data.forget as forget_mod

    snapshot = _digest(store)
    monkeypatch.setattr(forget_mod, "_update_card", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("crash")))
    with pytest.raises(RuntimeError, match="crash"):
        forget_mod.forget_user(store, victim)
    assert _digest(store) == snapshot and not [p for p in tmp_path.iterdir() if p.name.endswith((".tmp", ".old"))]
    monkeypatch.undo()

    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "forget_user.py"), "--store", str(store), "--user", raw],
        env=dict(os.environ, PYTHONPATH=str(ROOT / "src")),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "retrain" in proc.stdout
    assert files_containing([store], victim) == []
    after = load_prepared(store)
    t = after.sequences
    assert t.n_users == s.n_users - 1 and t.n_events == s.n_events - s.lengths[u]
    for v in range(s.n_users):  # everybody else: the same sequence, the same evaluation cases
        if v == u:
            continue
        w = v - (v > u)
        assert t.user_ids[w] == s.user_ids[v]
        assert np.array_equal(t.sequence(w), s.sequence(v))
        for split_b, split_a in ((before.split.test, after.split.test), (before.split.valid, after.split.valid)):
            ends_b = split_b.ends[split_b.users == v] - s.offsets[v]
            ends_a = split_a.ends[split_a.users == w] - t.offsets[w]
            assert np.array_equal(ends_b, ends_a)
        assert after.split.train_ends[w] - t.offsets[w] == before.split.train_ends[v] - s.offsets[v]
    card = forget_mod.load_card(store)
    assert card["events"]["total"] == before_card["events"]["total"] - n_events
    assert card["sequences"]["users"] == before_card["sequences"]["users"] - 1
    assert card["privacy"]["forgotten_users"] == 1
    again = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "forget_user.py"), "--store", str(store), "--pseudonym", victim],
        env=dict(os.environ, PYTHONPATH=str(ROOT / "src")),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 1 and "not in" in again.stdout
