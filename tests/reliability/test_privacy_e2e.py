"""Privacy proofs and the offline critical path, on one full pipeline run.

A shop's event log with raw customer ids (e-mail addresses, also inside session ids) is run
through the whole critical path in subprocesses, with every non-loopback connection and DNS
lookup blocked (tests/netblock): ``train.py`` (prepare, fit, evaluate, export, MLflow) ->
``evaluate.py`` -> ``export_index.py`` -> ``serve.py`` on 127.0.0.1 with HTTP traffic (a
consenting customer with her user id, and a customer without consent). The HMAC key comes from
the environment. Then every byte of every file written (output tree, MLflow store and artifacts,
Hydra and service logs, console output, bundles) is searched, with Parquet and zip/npz members
decoded so that compression cannot hide a match:

* no raw customer id and no form of the HMAC key appears anywhere;
* the customer without consent leaves no trace: neither her raw id nor her pseudonym;
* no network attempt was made by any step.
"""

from __future__ import annotations

import base64
import io
import os
import re
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from benchmarks.harness import served
from journeyrec.data.privacy import pseudonymise

pytestmark = pytest.mark.slow  # a training run, a served bundle and the store, searched for raw ids

ROOT = Path(__file__).resolve().parents[2]
NETBLOCK = Path(__file__).resolve().parents[1] / "netblock"
RAW_PREFIX = "shopper.q7z4"  # every raw customer id starts with this
PLANTED_USER = f"{RAW_PREFIX}+planted@example.org"
NO_CONSENT_USER = f"{RAW_PREFIX}+no-consent@example.org"  # never in the training data, asks without consent
PLANTED_KEY = "planted-hmac-key-5b0e7c1d9a"
TINY = [
    "model.d_model=16",
    "model.n_blocks=1",
    "trainer.max_epochs=1",
    "trainer.progress_bar=false",
    "eval.bootstrap=50",
    "export.n_queries=200",
]


@dataclass
class PipelineRun:
    root: Path  # everything written by the pipeline lives under root, except raw/ (the input)
    raw: Path
    netblock_log: Path
    planted_items: list[str]


def step(args: list[str], env: dict, cwd: Path, logs: Path, name: str) -> None:
    out = subprocess.run([sys.executable, *args], env=env, cwd=cwd, capture_output=True, timeout=600)
    (logs / f"{name}.stdout").write_bytes(out.stdout)
    (logs / f"{name}.stderr").write_bytes(out.stderr)
    assert out.returncode == 0, f"{name} failed:\n{out.stdout[-2000:].decode()}\n{out.stderr[-4000:].decode()}"


def write_shop(raw: Path) -> list[str]:
    """The demo shop as a shop's own export: raw e-mail ids, session ids built from them."""
    from journeyrec.data.synthetic import DemoShopConfig, generate

    shop = generate(DemoShopConfig(n_customers=200, seed=11))
    events = shop.events
    users = events.column("user_id")
    distinct = pc.unique(users).to_pylist()
    raw_ids = {u: f"{RAW_PREFIX}+{i}@example.org" for i, u in enumerate(distinct)}
    counts = pc.value_counts(users).to_pylist()
    busiest = max(counts, key=lambda c: c["counts"])["values"]
    raw_ids[busiest] = PLANTED_USER
    mapped = pa.array([raw_ids[u] for u in users.to_pylist()], pa.string())
    sessions = pa.array(
        [f"{m}-s{s.split('-')[-1]}" for m, s in zip(mapped.to_pylist(), events.column("session_id").to_pylist())]
    )
    events = events.set_column(events.schema.get_field_index("user_id"), "user_id", mapped)
    events = events.set_column(events.schema.get_field_index("session_id"), "session_id", sessions)
    raw.mkdir(parents=True)
    pq.write_table(events, raw / "events.parquet")
    pq.write_table(shop.catalog, raw / "catalog.parquet")
    mine = pc.equal(events.column("user_id"), PLANTED_USER)
    return [x for x in events.filter(mine).column("item_id").to_pylist() if x][-8:]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory) -> PipelineRun:
    root = tmp_path_factory.mktemp("privacy")
    raw = tmp_path_factory.mktemp("privacy-input")
    planted_items = write_shop(raw / "shop")
    logs, work, out = root / "logs", root / "work", root / "out"
    for d in (logs, work, out):
        d.mkdir()
    netblock_log = root.parent / f"{root.name}-netblock.log"  # outside root: it must stay empty anyway
    env = dict(
        os.environ,
        JOURNEYREC_HMAC_KEY=PLANTED_KEY,
        JOURNEYREC_NETBLOCK_LOG=str(netblock_log),
        MLFLOW_TRACKING_URI=f"sqlite:///{root / 'mlflow' / 'mlruns.db'}",
        PYTHONUNBUFFERED="1",
        MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false",
    )
    env["PYTHONPATH"] = os.pathsep.join([str(NETBLOCK), str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])
    (root / "mlflow").mkdir()
    data = [
        "data=events",
        f"data.path={raw / 'shop' / 'events.parquet'}",
        "data.options.timestamp_unit=ms",
        f"+data.options.catalog_path={raw / 'shop' / 'catalog.parquet'}",
        "data.dedup_consecutive=true",
    ]
    step(
        [str(ROOT / "scripts" / "train.py"), *data, *TINY, "show_samples=2", f"hydra.run.dir={out / 'train'}"],
        env,
        work,
        logs,
        "train",
    )
    step(
        [
            str(ROOT / "scripts" / "evaluate.py"),
            f"bundle={out / 'train' / 'bundle'}",
            "eval.bootstrap=50",
            "eval.progress=false",
            f"hydra.run.dir={out / 'evaluate'}",
        ],
        env,
        work,
        logs,
        "evaluate",
    )
    step(
        [
            str(ROOT / "scripts" / "export_index.py"),
            f"run={out / 'train'}",
            f"out={out / 'bundle2'}",
            "export.n_queries=200",
        ],
        env,
        work,
        logs,
        "export_index",
    )
    serve_traffic(out / "bundle2", logs, env, planted_items)
    return PipelineRun(root, raw, netblock_log, planted_items)


def serve_traffic(bundle: Path, logs: Path, env: dict, items: list[str]) -> None:
    events = [
        {"item_id": i, "event_type": "view", "channel": "web", "timestamp": 1_770_000_000_000 + 60_000 * n}
        for n, i in enumerate(items)
    ]
    with served(bundle, logs / "serve.log", env=env) as server:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            for body in (
                {"events": events, "k": 5, "user_id": PLANTED_USER},
                {"events": events, "k": 5, "user_id": NO_CONSENT_USER, "consent": False},
                {
                    "events": events[:2],
                    "k": 3,
                    "user_id": NO_CONSENT_USER,
                    "consent": False,
                    "context": {"type": "product_page", "item_id": items[0]},
                },
            ):
                r = c.post("/v1/recommendations", json=body)
                assert r.status_code == 200, r.text
            assert c.get(f"/v1/items/{quote(items[0], safe='')}/similar").status_code == 200
            stored = c.post(
                "/v1/events",
                json={"events": [dict(e, customer_id=PLANTED_USER, session_id=f"{PLANTED_USER}-s1") for e in events]},
            )
            assert stored.status_code == 200 and stored.json()["stored"] == len(events), stored.text
            r = c.post(
                f"/v1/customers/{quote(PLANTED_USER, safe='')}/recommendations", json={"context": "home", "k": 3}
            )
            assert r.status_code == 200 and not r.json()["warnings"], r.text
            (logs / "metrics.txt").write_text(c.get("/metrics").text)


# --------------------------------------------------------------------------- search
def contents(path: Path) -> list[bytes]:
    """The file's bytes, plus decoded forms a compressed container could hide a string in:
    every value and the metadata of a Parquet file, every member of a zip (npz) archive."""
    data = path.read_bytes()
    out = [data]
    if data[:4] == b"PAR1":
        pf = pq.ParquetFile(io.BytesIO(data))
        out.append(repr(pf.schema_arrow.metadata).encode())
        out.append(repr(pf.read().to_pylist()).encode())
    elif data[:4] == b"PK\x03\x04":
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            out += [z.read(name) for name in z.namelist()]
    return out


def needle_forms(secret: str) -> list[bytes]:
    raw = secret.encode()
    return [raw, quote(secret, safe="").encode(), raw.hex().encode(), base64.b64encode(raw).rstrip(b"=")]


def find(root: Path, needles: list[bytes]) -> dict[str, list[str]]:
    pattern = re.compile(b"|".join(re.escape(n) for n in needles))
    hits: dict[str, list[str]] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        for blob in contents(path):
            found = {m.group(0).decode(errors="replace") for m in pattern.finditer(blob)}
            if found:
                hits[str(path.relative_to(root))] = sorted(found)
                break
    return hits


# --------------------------------------------------------------------------- tests
def test_the_search_finds_what_it_looks_for(pipeline):
    """Control: the input itself holds the planted id, and the search sees it through Parquet's
    compression; the pseudonym of the planted customer was written (she was trained on)."""
    hits = find(pipeline.raw, [PLANTED_USER.encode()])
    assert "shop/events.parquet" in hits
    pseudonym = pseudonymise(PLANTED_USER, PLANTED_KEY.encode())
    assert "out/train/prepared/users.parquet" in find(pipeline.root, [pseudonym.encode()])


def test_no_raw_customer_id_or_hmac_key_anywhere(pipeline):
    files = [p for p in pipeline.root.rglob("*") if p.is_file()]
    kinds = {p.suffix for p in files}
    # what was searched: run outputs, both bundles, MLflow's database and artifacts, all logs
    assert {".parquet", ".npz", ".json", ".yaml", ".log", ".db", ".safetensors", ".ckpt"} <= kinds, kinds
    assert any("mlartifacts" in str(p) for p in files) and (pipeline.root / "logs" / "serve.log").stat().st_size > 0
    hits = find(pipeline.root, [RAW_PREFIX.encode(), quote(RAW_PREFIX, safe="").encode(), *needle_forms(PLANTED_KEY)])
    assert hits == {}, hits


def test_customer_without_consent_leaves_no_trace(pipeline):
    pseudonym = pseudonymise(NO_CONSENT_USER, PLANTED_KEY.encode())
    hits = find(pipeline.root, [*needle_forms(NO_CONSENT_USER), pseudonym.encode()])
    assert hits == {}, hits
    # the service logs no id and no item of any session, consenting or not
    log = (pipeline.root / "logs" / "serve.log").read_text()
    assert pseudonymise(PLANTED_USER, PLANTED_KEY.encode()) not in log
    assert not [i for i in pipeline.planted_items if i in log]
    assert 'journeyrec_fallbacks_total{reason="no_consent"} 2' in (pipeline.root / "logs" / "metrics.txt").read_text()


def test_critical_path_makes_no_network_attempt(pipeline):
    """train (prepare, fit, evaluate, export, MLflow) -> evaluate.py -> export_index.py -> serve.py
    over HTTP on 127.0.0.1, all with non-loopback sockets and DNS blocked: nothing was attempted."""
    attempts = pipeline.netblock_log.read_text() if pipeline.netblock_log.exists() else ""
    assert attempts == "", attempts
    assert (pipeline.root / "out" / "evaluate" / "metrics.json").is_file()
    assert (pipeline.root / "out" / "bundle2" / "manifest.json").is_file()
