"""Every reader on its ../shared dataset or on a fixture in the publisher's documented format:
row counts, event-type mapping, catalogue attributes, and bad rows quarantined with file:line."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from journeyrec.data.prepare import prepare_store
from journeyrec.data.quarantine import QuarantineError
from journeyrec.data.readers import READERS, ReaderError, read_source
from journeyrec.data.readers.common import iter_delimited
from journeyrec.data.schema import SchemaError

from conftest import shared_file

FIX = Path(__file__).resolve().parents[1] / "fixtures"


def types(src) -> dict[str, int]:
    return {d["values"]: d["counts"] for d in src.events.column("event_type").value_counts().to_pylist()}


def quarantined(src) -> list[tuple[str, int, str]]:
    return [(Path(r["file"]).name, r["line"], r["reason"]) for r in src.quarantine.to_pylist()]


def test_registry_has_every_config_name():
    configs = {p.stem for p in (Path(__file__).resolve().parents[2] / "configs" / "data").glob("*.yaml")}
    assert (
        configs
        == set(READERS)
        == {
            "demo",
            "events",
            "s3rec",
            "taobao",
            "yoochoose",
            "movielens",
            "diginetica",
            "retailrocket",
            "rees46",
            "otto",
        }
    )


@pytest.mark.parametrize("name", sorted(set(READERS) - {"demo", "events"}))
def test_every_public_reader_documents_its_provenance(name):
    import importlib

    from journeyrec.data.download import PROVENANCE

    doc = importlib.import_module(f"journeyrec.data.readers.{name}").__doc__
    assert "Provenance" in doc and "Licence" in doc and "https://" in doc
    assert PROVENANCE[name].url in doc  # the same official URL in the reader and in download_data.py


# --- fixtures in the publishers' formats ------------------------------------------------------


def test_diginetica_fixture():
    src = read_source("diginetica", str(FIX / "diginetica"))
    assert src.stats["rows_read"] == 36  # 33 views + 3 purchases
    assert types(src) == {"view": 31, "purchase": 3}
    assert quarantined(src) == [
        ("train-item-views.csv", 33, "unparseable_timestamp"),
        ("train-item-views.csv", 34, "missing_item_id"),
    ]
    assert src.quarantine.column("value").to_pylist()[0] == "2016-13-45 + 120000"
    ev = src.events.to_pandas()
    # anonymous sessions stand for the user; known users keep their id across sessions
    assert set(ev.user_id[ev.session_id == "1"]) == {"session:1"}
    assert set(ev.session_id[ev.user_id == "18278"]) == {"3", "4", "8"}
    # timestamp = eventdate (UTC midnight) + timeframe milliseconds
    first = ev[(ev.session_id == "1")].iloc[0]
    line2 = (FIX / "diginetica" / "train-item-views.csv").read_text().splitlines()[1].split(";")
    assert first.timestamp.value // 10**6 == np.datetime64(line2[4], "ms").astype(np.int64) + int(line2[3])
    cat = src.catalog.to_pandas().set_index("item_id")
    products = {
        r.split(";")[0]: r.split(";") for r in (FIX / "diginetica" / "products.csv").read_text().splitlines()[1:]
    }
    assert cat.loc["81766", "price"] == 2.0 ** int(products["81766"][1])
    assert list(cat.loc["81766", "tags"]) == products["81766"][2].split(",")
    assert cat.loc["81766", "category"] == "1096"


def test_retailrocket_fixture():
    src = read_source("retailrocket", str(FIX / "retailrocket"))
    assert src.stats["rows_read"] == 36
    assert types(src) == {"view": 25, "cart": 7, "purchase": 3}
    assert quarantined(src) == [("events.csv", 37, "unknown_event_type")]
    assert src.quarantine.column("value").to_pylist() == ["refund"]
    assert src.events.column("timestamp").cast(pa.int64()).to_pylist()[0] == 1433221332117 + (
        int((FIX / "retailrocket" / "events.csv").read_text().splitlines()[1].split(",")[0]) - 1433221332117
    )
    cat = src.catalog.to_pandas().set_index("item_id")
    assert cat.loc["355908", "category"] == "1579/213/1016"  # latest snapshot (not the older 491), path from the root
    assert cat.loc["248676", "category"] == "169/809"
    assert bool(cat.loc["248676", "in_stock"]) and not bool(cat.loc["355908", "in_stock"])


def test_rees46_fixture():
    src = read_source("rees46", str(FIX / "rees46"))
    assert src.stats["rows_read"] == 26
    assert types(src) == {"view": 18, "cart": 2, "remove_from_cart": 2, "purchase": 2}
    assert quarantined(src) == [("2019-Oct.csv", 26, "negative_price"), ("2019-Oct.csv", 27, "malformed_row")]
    assert src.quarantine.column("detail").to_pylist()[1] == "expected 9 fields, got 6"
    ev = src.events.to_pandas()
    assert ev.session_id.str.len().eq(36).all() and ev.price.gt(0).all()
    assert str(ev.timestamp.iloc[0]) == "2019-10-01 00:00:04+00:00"
    cat = src.catalog.to_pandas().set_index("item_id")
    assert cat.loc["1004237", "category"] == "electronics/smartphone" and cat.loc["1004237", "brand"] == "apple"
    assert cat.loc["44600062", "category"] == "category:2103807459595387724"  # no category_code: the id stands in


def test_otto_fixture_and_broken_json_line():
    src = read_source("otto", str(FIX / "otto"))
    assert src.stats["lines"] == 7 and src.stats["rows_read"] == 37
    assert types(src) == {"click": 27, "cart": 6, "purchase": 3}
    assert quarantined(src) == [("train.jsonl", 4, "malformed_row")]
    ev = src.events.to_pandas()
    assert set(ev.user_id) == {str(s) for s in range(6)}  # OTTO's session is the user
    assert ev.session_id.isna().all()  # sessionised later by inactivity gap
    assert ev.timestamp.iloc[0].value // 10**6 == 1659304800025  # milliseconds


def test_bad_rows_fixture_every_reason_with_its_line():
    src = read_source(
        "events",
        str(FIX / "bad_rows" / "events.csv"),
        {
            "columns": {
                "user_id": "customer",
                "session_id": "session",
                "item_id": "sku",
                "event_type": "action",
                "timestamp": "ts",
            }
        },
    )
    assert src.events.num_rows == 8
    assert [(line, reason) for _, line, reason in quarantined(src)] == [
        (3, "unparseable_timestamp"),
        (5, "unknown_event_type"),
        (7, "missing_user_id"),
        (9, "missing_item_id"),
        (11, "negative_price"),
        (13, "unknown_channel"),
        (16, "malformed_row"),
    ]
    lines = (FIX / "bad_rows" / "events.csv").read_text().splitlines()
    assert lines[3 - 1].split(",")[4] == "yesterday" and lines[13 - 1].split(",")[5] == "fax"


# --- ../shared datasets -----------------------------------------------------------------------


def test_taobao_userbehavior():
    src = read_source("taobao", str(shared_file("taobao_userbehavior")))
    assert src.stats["rows_read"] == 110300 and src.quarantine.num_rows == 0
    assert types(src) == {"view": 98361, "cart": 6063, "wishlist": 3383, "purchase": 2493}  # pv / cart / fav / buy
    assert len(src.events.column("user_id").unique()) == 66454
    assert src.catalog.num_rows == 84793 and src.catalog.column("category").null_count == 0


def test_yoochoose_sessionrec_files():
    src = read_source("yoochoose", str(shared_file("yoochoose")))
    assert src.stats["rows_read"] == 70278 + 13568
    assert types(src) == {"click": 83846}
    ev = src.events
    assert ev.column("user_id").equals(ev.column("session_id"))  # the session is the user
    assert len(ev.column("session_id").unique()) == 17794 + 3416
    assert ev.column("timestamp").cast(pa.int64()).to_pylist()[0] % 1000 != 0  # milliseconds kept


def test_yoochoose_published_format(tmp_path):
    (tmp_path / "yoochoose-clicks.dat").write_text(
        "1,2014-04-07T10:51:09.277Z,214536502,0\n1,2014-04-07T10:54:09.868Z,214536500,S\n2,2014-04-07T13:56:37.614Z,214662742,5\n"
        "2,2014-04-07T14:02:36.889Z,214662742,5\n3,2014-04-31T00:00:00.000Z,214825110,1\n"
    )
    (tmp_path / "yoochoose-buys.dat").write_text("2,2014-04-07T14:10:00.000Z,214662742,1046,2\n")
    src = read_source("yoochoose", str(tmp_path))
    assert types(src) == {"click": 4, "purchase": 1}
    assert quarantined(src) == [("yoochoose-clicks.dat", 5, "unparseable_timestamp")]  # 31 April
    buy = src.events.filter(pa.compute.equal(src.events.column("event_type"), "purchase")).to_pylist()[0]
    assert buy["price"] == 1046 and buy["quantity"] == 2 and buy["user_id"] == "2"
    assert src.events.column("timestamp").cast(pa.int64()).to_pylist()[0] == 1396867869277
    cat = dict(zip(src.catalog.column("item_id").to_pylist(), src.catalog.column("category").to_pylist()))
    assert cat["214536502"] is None and cat["214536500"] == "S" and cat["214662742"] == "5"


def test_movielens_ml1m_gzipped_dat_with_genres():
    src = read_source("movielens", str(shared_file("ml-1m-subset")))
    assert src.stats["rows_read"] == 487650 and types(src) == {"rating": 487650}
    assert len(src.events.column("user_id").unique()) == 2999
    cat = src.catalog.to_pandas().set_index("item_id")
    assert len(cat) == 3883 and list(cat.loc["1", "tags"]) == ["Animation", "Children's", "Comedy"]
    assert cat.loc["1", "category"] == "Animation" and cat.loc["1", "title"] == "Toy Story (1995)"


def test_movielens_recbole_and_latest_small():
    rb = read_source("movielens", str(shared_file("ml-100k")))
    assert rb.stats["rows_read"] == 100000 and len(rb.events.column("user_id").unique()) == 943
    assert rb.catalog.num_rows == 1682 and rb.catalog.column("tags").to_pylist()[0] == [
        "Animation",
        "Children's",
        "Comedy",
    ]
    small = read_source("movielens", str(shared_file("movielens-latest-small")))
    assert small.stats["rows_read"] == 100004 and len(small.events.column("item_id").unique()) == 9066
    assert small.catalog.num_rows == 9125


def test_movielens_u_data_and_min_rating(tmp_path):
    (tmp_path / "u.data").write_text(
        "196\t242\t3\t881250949\n186\t302\t3\t891717742\n22\t377\t1\t878887116\n244\t51\t2\tnot-a-time\n"
    )
    flags = ["0"] * 19
    flags[3] = flags[4] = "1"  # Animation, Children's
    (tmp_path / "u.item").write_bytes(
        ("242|Kolya (1996)|24-Jan-1997||http://x|" + "|".join(flags) + "\n").encode("latin-1")
    )
    src = read_source("movielens", str(tmp_path))
    assert src.stats["rows_read"] == 4 and quarantined(src) == [("u.data", 4, "unparseable_timestamp")]
    cat = src.catalog.to_pylist()[0]
    assert cat["item_id"] == "242" and cat["tags"] == ["Animation", "Children's"] and cat["category"] == "Animation"
    high = read_source("movielens", str(tmp_path), {"min_rating": 3})
    assert high.events.num_rows == 2 and high.stats["filtered_by_reader"] == {"rating < 3": 2}


def test_movielens_plain_ratings_dat(tmp_path):
    (tmp_path / "ratings.dat").write_text("1::1193::5::978300760\n1::661::3\n2::914::3::978301968\n")
    (tmp_path / "movies.dat").write_bytes("1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n".encode("latin-1"))
    src = read_source("movielens", str(tmp_path / "ratings.dat"))
    assert src.events.num_rows == 2 and quarantined(src) == [("ratings.dat", 2, "malformed_row")]
    assert src.catalog.to_pylist()[0]["tags"] == ["Drama"]


# --- streaming mechanics ----------------------------------------------------------------------


def test_line_numbers_survive_small_blocks_and_skipped_lines(tmp_path):
    rng = np.random.default_rng(0)
    lines, expect_good, expect_bad = ["a,b,c"], [], []
    for i in range(3000):
        if rng.random() < 0.05:
            lines.append(f"{i},{i}")
            expect_bad.append(len(lines))
        else:
            lines.append(f"{i},{i},{i}")
            expect_good.append(len(lines))
    path = tmp_path / "x.csv.gz"
    with gzip.open(path, "wt") as fh:
        fh.write("\n".join(lines) + "\n")
    got_good, got_bad, values = [], [], []
    for chunk in iter_delimited(path, delimiter=",", usecols=["a", "c"], block_bytes=4096):
        got_good.extend(chunk.lines.tolist())
        got_bad.extend(m[0] for m in chunk.malformed)
        values.extend(int(v) for v in chunk.table.column("a").to_pylist())
    assert got_good == expect_good and sorted(got_bad) == expect_bad
    assert [int(lines[n - 1].split(",")[0]) for n in got_good] == values  # each row really sits on its line


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_events_reader_streams_parquet_and_jsonl(tmp_path, fmt):
    rows = [
        {"user_id": f"u{i % 7}", "item_id": f"i{i % 11}", "event_type": "view", "timestamp": 1_700_000_000 + i}
        for i in range(50)
    ]
    rows[17]["timestamp"] = "soon"
    path = tmp_path / f"e.{fmt}"
    if fmt == "parquet":
        table = pa.table({k: [str(r[k]) for r in rows] for k in rows[0]})
        pq.write_table(table, path, row_group_size=8)
    else:
        path.write_text(
            "\n".join(json.dumps(r) for r in rows[:30])
            + "\n{broken\n"
            + "\n".join(json.dumps(r) for r in rows[30:])
            + "\n"
        )
    src = read_source("events", str(path), {"block_rows": 8})
    q = src.quarantine.to_pylist()
    if fmt == "parquet":
        assert [(r["line"], r["reason"], r["value"]) for r in q] == [(18, "unparseable_timestamp", "soon")]
        assert src.events.num_rows == 49
    else:
        assert [(r["line"], r["reason"]) for r in q] == [(18, "unparseable_timestamp"), (31, "malformed_row")]
        assert src.events.num_rows == 49


def test_structural_problems_raise_at_once(tmp_path):
    with pytest.raises(ReaderError, match="no such file or directory"):
        read_source("taobao", str(tmp_path / "nope"))
    (tmp_path / "train-item-views.csv").write_text("sessionId;itemId;timeframe;eventdate\n1;2;3;2016-01-01\n")
    with pytest.raises(SchemaError, match=r"train-item-views\.csv: missing required column\(s\) \['userId'\]"):
        read_source("diginetica", str(tmp_path))
    bad = tmp_path / "e.parquet"
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(ReaderError, match=r"e\.parquet: cannot read as parquet"):
        read_source("events", str(bad))


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
    src = read_source(
        "events",
        str(path),
        {
            "columns": {"user_id": "customer", "item_id": "sku", "event_type": "action", "timestamp": "ts"},
            "event_type_map": {"pageview": "view", "order": "purchase"},
        },
    )
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
