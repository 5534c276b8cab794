"""Bad rows are never silently dropped: a file with bad rows is prepared, every bad row is in
quarantine with its reason, file and line, and every good row is in the event store."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from journeyrec.data.prepare import prepare_store
from journeyrec.data.privacy import pseudonymise
from journeyrec.data.quarantine import QuarantineError

FILE = Path(__file__).resolve().parents[1] / "fixtures" / "bad_rows" / "events.csv"
COLUMNS = {"user_id": "customer", "session_id": "session", "item_id": "sku", "event_type": "action", "timestamp": "ts"}
KEY = "test-key-quarantine"
REASONS = {3: "unparseable_timestamp", 5: "unknown_event_type", 7: "missing_user_id", 9: "missing_item_id",
           11: "negative_price", 13: "unknown_channel", 16: "malformed_row"}


def data_cfg(**kw) -> dict:
    return {"name": "events", "path": str(FILE), "options": {"columns": COLUMNS}, **kw}


def test_bad_rows_quarantined_good_rows_all_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("JOURNEYREC_HMAC_KEY", KEY)
    store = tmp_path / "store"
    card = prepare_store(data_cfg(max_bad_fraction=0.5), store)
    lines = FILE.read_text().splitlines()
    bad_lines = set(REASONS)
    good = [lines[i - 1].split(",") for i in range(2, len(lines) + 1) if i not in bad_lines]

    q = pq.read_table(store / "quarantine.parquet").to_pylist()
    assert len(q) == len(REASONS) == 7
    assert {r["line"]: r["reason"] for r in q} == REASONS
    assert {r["file"] for r in q} == {str(FILE)}
    assert card["rows_quarantined"] == {"total": 7, "by_reason": {r: 1 for r in REASONS.values()}}
    raw = {r["line"]: r["value"] for r in q}
    assert raw[3] == "yesterday" and raw[5] == "teleport" and raw[11] == "-5" and raw[13] == "fax"
    # quarantined rows carry the pseudonym, never the raw id
    assert {r["user_id"] for r in q if r["line"] == 9} == {pseudonymise("c5", KEY.encode())}

    ev = pq.read_table(store / "events.parquet")
    assert ev.num_rows == len(good) == 8 and card["rows_read"] == 15
    got = sorted(zip(ev.column("session_id").to_pylist(), [x or "" for x in ev.column("item_id").to_pylist()],
                     ev.column("event_type").to_pylist(), ev.column("timestamp").cast(pa.int64()).to_pylist(),
                     ev.column("user_id").to_pylist()))
    want = sorted((pseudonymise(g[1], KEY.encode()), g[2], g[3], int(g[4]) * 1000, pseudonymise(g[0], KEY.encode())) for g in good)
    assert got == want


def test_too_many_bad_rows_fail_with_file_counts_and_examples(tmp_path, monkeypatch):
    monkeypatch.setenv("JOURNEYREC_HMAC_KEY", KEY)
    store = tmp_path / "store"
    with pytest.raises(QuarantineError) as err:
        prepare_store(data_cfg(), store)  # default data.max_bad_fraction = 0.01
    msg = str(err.value)
    assert f"{FILE}: 7 of 15 rows (46.67%) failed validation" in msg
    assert "data.max_bad_fraction=0.01" in msg
    assert f"unparseable_timestamp: 1 row(s), e.g. {FILE}:3 value 'yesterday'" in msg
    assert f"malformed_row: 1 row(s), e.g. {FILE}:16 (expected 7 fields, got 4)" in msg
    assert not store.exists()  # nothing half-written
    kept = pq.read_table(tmp_path / "store-quarantine.parquet")
    assert kept.num_rows == 7  # the evidence stays for inspection
