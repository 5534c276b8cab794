"""Readers: S3-Rec text and generic events files, with the errors a user must be able to act on
(structural problems raise at once; bad rows go to quarantine with file and line)."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from journeyrec.data.prepare import prepare_store
from journeyrec.data.quarantine import QuarantineError
from journeyrec.data.readers import ReaderError, read_source
from journeyrec.data.schema import SchemaError

from conftest import shared_file


def test_s3rec_reader(tmp_path):
    f = tmp_path / "Tiny.txt"
    f.write_text("1 10 11 12\n2 11 13\n\n3 12 10 13 14\n")
    (tmp_path / "Tiny_item2attributes.json").write_text(json.dumps({"10": [1, 2], "13": [3]}))
    src = read_source("s3rec", str(f))
    assert src.events.num_rows == 9
    assert src.events.column("item_id").to_pylist()[:3] == ["10", "11", "12"]
    ts = src.events.column("timestamp").cast(pa.int64()).to_pylist()
    assert ts[:3] == [0, 1, 2] and ts[3:5] == [0, 1]  # position order within each user
    tags = dict(zip(src.catalog.column("item_id").to_pylist(), src.catalog.column("tags").to_pylist()))
    assert tags["10"] == ["1", "2"] and tags["11"] == []


def strict(name, path, **extra):
    """A data config that tolerates no bad row (public data: the demo key is fine)."""
    return {"name": name, "path": str(path), "allow_demo_key": True, "max_bad_fraction": 0.0, **extra}


def test_s3rec_malformed_line_names_file_and_line(tmp_path):
    f = tmp_path / "Bad.txt"
    f.write_text("1 10 11\n2\n3 12\n")
    src = read_source("s3rec", str(f))  # the bad line is quarantined, the good ones are read
    assert src.events.num_rows == 3
    q = src.quarantine.to_pylist()
    assert [(r["file"], r["line"], r["reason"]) for r in q] == [(str(f), 2, "malformed_row")]
    with pytest.raises(QuarantineError, match=r"(?s)malformed_row: 1 row.*Bad\.txt:2"):
        prepare_store(strict("s3rec", f), tmp_path / "store")
    assert not (tmp_path / "store").exists()  # nothing half-written
    assert pq.read_table(tmp_path / "store-quarantine.parquet").column("line").to_pylist() == [2]


def test_s3rec_duplicate_user(tmp_path):
    f = tmp_path / "Dup.txt"
    f.write_text("1 10 11\n1 12\n")
    q = read_source("s3rec", str(f)).quarantine.to_pylist()
    assert [(r["line"], r["reason"]) for r in q] == [(2, "duplicate_user_line")]
    assert "already has line 1" in q[0]["detail"]
    with pytest.raises(QuarantineError, match=r"Dup\.txt:2 \(this user already has line 1"):
        prepare_store(strict("s3rec", f), tmp_path / "store")


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_events_reader_with_column_mapping(tmp_path, fmt):
    rows = {
        "customer": ["c1", "c1", "c2"],
        "sku": ["a", "b", "a"],
        "action": ["pageview", "order", "pageview"],
        "ts": [1700000000, 1700000100, 1700000050],
    }
    table = pa.table(rows)
    path = tmp_path / f"events.{fmt}"
    if fmt == "csv":
        path.write_text("customer,sku,action,ts\n" + "\n".join(",".join(map(str, r)) for r in zip(*rows.values())))
    elif fmt == "parquet":
        pq.write_table(table, path)
    else:
        path.write_text("\n".join(json.dumps(dict(zip(rows, r))) for r in zip(*rows.values())))
    src = read_source("events", str(path), {
        "columns": {"user_id": "customer", "item_id": "sku", "event_type": "action", "timestamp": "ts"},
        "event_type_map": {"pageview": "view", "order": "purchase"},
    })
    assert src.events.column("event_type").to_pylist() == ["view", "purchase", "view"]
    assert src.events.column("user_id").to_pylist() == ["c1", "c1", "c2"]
    assert src.events.column("timestamp").cast(pa.int64()).to_pylist()[0] == 1700000000 * 1000
    assert src.events.column("channel").to_pylist() == ["unknown"] * 3


def test_events_missing_column_names_it(tmp_path):
    path = tmp_path / "e.csv"
    path.write_text("user_id,timestamp\nu,1\n")
    with pytest.raises(SchemaError, match="missing required column 'item_id'"):
        read_source("events", str(path))


def test_events_unknown_event_type_names_value(tmp_path):
    path = tmp_path / "e.csv"
    path.write_text("user_id,item_id,event_type,timestamp\nu,i,teleport,1\n")
    q = read_source("events", str(path)).quarantine.to_pylist()
    assert [(r["line"], r["reason"], r["value"]) for r in q] == [(2, "unknown_event_type", "teleport")]
    with pytest.raises(SchemaError, match=r"(?s)unknown_event_type.*e\.csv:2 value 'teleport'"):
        prepare_store(strict("events", path), tmp_path / "store")


def test_unknown_reader_option_is_refused(tmp_path):
    path = tmp_path / "e.txt"
    path.write_text("1 2 3\n")
    with pytest.raises(ReaderError, match="unknown key.*colums"):
        read_source("s3rec", str(path), {"colums": {}})


def test_beauty_file_statistics():
    path = shared_file("amazon/Beauty.txt")
    src = read_source("s3rec", str(path))
    assert src.stats == {"rows_read": 198502, "lines": 22363}
    assert src.catalog.num_rows == 12101
    assert src.catalog.column("tags").null_count == 0  # attributes file found beside it
