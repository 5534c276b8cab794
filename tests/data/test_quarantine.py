"""Bad rows are never silently dropped: a file with bad rows is prepared, every bad row is in
quarantine with its reason, file and line, and every good row is in the event store."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from journeyrec.data.prepare import prepare_store
from journeyrec.data.privacy import pseudonymise
from journeyrec.data.quarantine import QuarantineError
from journeyrec.data.readers import read_source
from journeyrec.data.schema import SchemaError, TimeBounds

FILE = Path(__file__).resolve().parents[1] / "fixtures" / "bad_rows" / "events.csv"
COLUMNS = {"user_id": "customer", "session_id": "session", "item_id": "sku", "event_type": "action", "timestamp": "ts"}
KEY = "test-key-quarantine"
REASONS = {
    3: "unparseable_timestamp",
    5: "unknown_event_type",
    7: "missing_user_id",
    9: "missing_item_id",
    11: "negative_price",
    13: "unknown_channel",
    16: "malformed_row",
}


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
    got = sorted(
        zip(
            ev.column("session_id").to_pylist(),
            [x or "" for x in ev.column("item_id").to_pylist()],
            ev.column("event_type").to_pylist(),
            ev.column("timestamp").cast(pa.int64()).to_pylist(),
            ev.column("user_id").to_pylist(),
        )
    )
    want = sorted(
        (pseudonymise(g[1], KEY.encode()), g[2], g[3], int(g[4]) * 1000, pseudonymise(g[0], KEY.encode())) for g in good
    )
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


# --- event times out of range (timestamp_out_of_range) -----------------------------------------

DAY = 86400
T0 = 1_700_000_000  # 2023-11-14T22:13:20Z


def seconds_log(path: Path, extra: dict[int, str]) -> Path:
    """A seconds-based log of three users, with ``extra`` rows (line -> timestamp text) put in at
    those lines."""
    good = [f"u{u},i{(u + k) % 5},view,{T0 + 60 * (4 * u + k)}" for u in range(3) for k in range(4)]
    lines = ["user_id,item_id,event_type,timestamp"]
    for row in good:
        while len(lines) + 1 in extra:
            lines.append(f"u9,i1,view,{extra[len(lines) + 1]}")
        lines.append(row)
    path.write_text("\n".join(lines) + "\n")
    return path


def test_millisecond_and_negative_timestamps_go_to_quarantine_with_file_and_line(tmp_path, monkeypatch):
    """A millisecond value in a seconds file (year 55,840) and a negative one (1969) used to pass
    validation, crash the dataset card (``year 55840 is out of range``, no file, no line) or
    stretch its time span to 19,677 days."""
    monkeypatch.setenv("JOURNEYREC_HMAC_KEY", KEY)
    src = seconds_log(tmp_path / "e.csv", {4: str((T0 + 300) * 1000), 9: "-5"})
    card = prepare_store({"name": "events", "path": str(src), "max_bad_fraction": 0.2}, tmp_path / "store")
    q = pq.read_table(tmp_path / "store" / "quarantine.parquet").to_pylist()
    assert [(r["file"], r["line"], r["reason"], r["value"]) for r in q] == [
        (str(src), 4, "timestamp_out_of_range", "55840-11-12T09:33:20Z"),
        (str(src), 9, "timestamp_out_of_range", "1969-12-31T23:59:55Z"),
    ]
    assert (
        "after the file itself was last written" in q[0]["detail"] and "data.timestamp_max_ahead_days" in q[0]["detail"]
    )
    assert q[1]["detail"] == "before 1990-01-01T00:00:00Z (data.timestamp_min)"
    assert card["rows_quarantined"] == {"total": 2, "by_reason": {"timestamp_out_of_range": 2}}
    assert card["events"]["total"] == 12
    span = card["events"]["time_span"]  # the good rows' span: 11 minutes, not 19,677 days
    assert (span["first"], span["last"], span["days"]) == (
        "2023-11-14T22:13:20Z",
        "2023-11-14T22:24:20Z",
        round(660 / DAY, 3),
    )


def test_dataset_card_never_fails_on_a_time_validation_let_through(tmp_path, monkeypatch):
    """With both bounds off the same rows are events, and the card describes them."""
    monkeypatch.setenv("JOURNEYREC_HMAC_KEY", KEY)
    src = seconds_log(tmp_path / "e.csv", {4: str((T0 + 300) * 1000), 9: "-5"})
    card = prepare_store(
        {"name": "events", "path": str(src), "timestamp_min": None, "timestamp_max_ahead_days": None},
        tmp_path / "store",
    )
    span = card["events"]["time_span"]
    assert (span["first"], span["last"]) == ("1969-12-31T23:59:55Z", "55840-11-12T09:33:20Z")
    assert span["days"] == round(((T0 + 300) * 1000 + 5) / DAY, 3)
    assert "55840-11-12T09:33:20Z" in (tmp_path / "store" / "dataset_card.md").read_text()


def test_upper_bound_is_a_day_after_the_newest_event_not_later_than_the_file(tmp_path, monkeypatch):
    """The newest event is the newest one not later than the file's last modification; a row
    between the file's write time and a day later is known to be out of range only after the
    first pass, so the source is read again and the row still reaches quarantine with its line."""
    src = seconds_log(tmp_path / "e.csv", {6: str(T0 + 3 * DAY + 12 * 3600)})
    written = T0 + 3 * DAY
    os.utime(src, (written, written))
    got = read_source("events", str(src))
    q = got.quarantine.to_pylist()
    assert [(r["line"], r["reason"]) for r in q] == [(6, "timestamp_out_of_range")]
    assert q[0]["detail"] == (
        "more than 1 day(s) after the file's newest event 2023-11-14T22:24:20Z (data.timestamp_max_ahead_days)"
    )
    assert got.events.num_rows == 12
    monkeypatch.setenv("JOURNEYREC_HMAC_KEY", KEY)  # preparation takes the same two passes
    card = prepare_store({"name": "events", "path": str(src), "max_bad_fraction": 0.1}, tmp_path / "store")
    kept = pq.read_table(tmp_path / "store" / "quarantine.parquet").to_pylist()
    assert [(r["line"], r["reason"], r["detail"]) for r in kept] == [(6, "timestamp_out_of_range", q[0]["detail"])]
    assert card["events"]["total"] == 12 and card["rows_read"] == 13
    # configurable: four days of slack accept it, and a later lower bound rejects the first user's rows
    wide = read_source("events", str(src), bounds=TimeBounds.from_config({"timestamp_max_ahead_days": 4}))
    assert wide.quarantine.num_rows == 0 and wide.events.num_rows == 13
    late = read_source("events", str(src), bounds=TimeBounds.from_config({"timestamp_min": "2023-11-14T22:17:00"}))
    assert sorted(r["line"] for r in late.quarantine.to_pylist() if r["reason"] == "timestamp_out_of_range") == [
        2,
        3,
        4,
        5,
        6,
    ]


def test_time_bounds_config_errors_name_the_key():
    with pytest.raises(SchemaError, match=r"data.timestamp_min='last year' is not an ISO date"):
        TimeBounds.from_config({"timestamp_min": "last year"})
    with pytest.raises(SchemaError, match=r"data.timestamp_max_ahead_days=-1 must be >= 0"):
        TimeBounds.from_config({"timestamp_max_ahead_days": -1})


# --- rows that are not rows ----------------------------------------------------------------------


def test_blank_line_repeated_header_and_bad_price_are_named_with_their_value(tmp_path):
    src = tmp_path / "e.csv"
    src.write_text(
        "\n".join(
            [
                "user_id,item_id,event_type,timestamp,price",
                f"u1,i1,view,{T0},1.5",
                "",
                f"u1,i2,view,{T0 + 60},2",
                "user_id,item_id,event_type,timestamp,price",  # a second file appended with its header
                f"u2,i1,view,{T0 + 120},n/a",
                f"u2,i2,view,{T0 + 180},",
            ]
        )
        + "\n"
    )
    got = read_source("events", str(src))
    assert sorted((r["line"], r["reason"], r["value"]) for r in got.quarantine.to_pylist()) == [
        (3, "blank_line", None),
        (5, "repeated_header", None),
        (6, "unparseable_price", "n/a"),
    ]
    assert got.events.column("item_id").to_pylist() == ["i1", "i2", "i2"] and got.stats["rows_read"] == 6


def test_every_reason_is_documented():
    from journeyrec.data.schema import REJECT_REASONS

    page = (Path(__file__).resolve().parents[2] / "docs" / "data_quality.md").read_text()
    documented = re.findall(r"^\| `([a-z_]+)` \|", page, re.M)
    assert documented == list(REJECT_REASONS)
