"""scripts/batch_recommend.py: top-k per customer of the store into Parquet, the same lists as the
customer endpoint's pipeline gives, for customers=all and for a file of ids."""

from __future__ import annotations

import time

import pyarrow.parquet as pq
import pytest
from omegaconf import OmegaConf

from journeyrec.serving import Recommender
from journeyrec.serving.request import Context, RecommendRequest
from journeyrec.serving.service import Service
from journeyrec.serving.store import SQLiteStore

from conftest import compose, run_script

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.slow
def test_batch_writes_top_k_per_customer_as_the_customer_endpoint_answers(live_bundle, tmp_path, mlflow_uri):
    path = tmp_path / "journeys.sqlite"
    store = SQLiteStore(path)
    contexts = OmegaConf.to_object(compose("batch_recommend", ["bundle=x"])).contexts  # what the script composes
    assert contexts["app_push"].rules  # the context's own settings are in play
    rec = Recommender.load(live_bundle.path, contexts={k: v.rules for k, v in contexts.items()})
    service = Service(rec, allow_demo_key=True, store=store, contexts=contexts)
    now = int(time.time() * 1000)
    customers = [f"news-{j}" for j in range(6)]
    for j, events in enumerate(live_bundle.sessions(6, min_len=5, seed=2)):
        service.intake(
            [
                {
                    "customer_id": customers[j],
                    "event_type": e.event_type,
                    "item_id": e.item_id,
                    "channel": e.channel,
                    "timestamp": now - (len(events) - i) * 60_000,
                }
                for i, e in enumerate(events)
            ]
        )
    service.set_consent(customers[5], False)
    ids = tmp_path / "ids.txt"
    ids.write_text("news-0\nnews-5\nnever-seen\n")
    run_script(
        "batch_recommend.py",
        [
            f"bundle={live_bundle.path}",
            f"store.path={path}",
            "customers=all",
            "k=7",
            f"out={tmp_path / 'all.parquet'}",
            f"hydra.run.dir={tmp_path / 'run1'}",
        ],
        mlflow_uri,
    )
    run_script(
        "batch_recommend.py",
        [
            f"bundle={live_bundle.path}",
            f"store.path={path}",
            f"customers={ids}",
            "k=5",
            "context=app_push",
            f"hydra.run.dir={tmp_path / 'run2'}",
        ],
        mlflow_uri,
    )
    every = pq.read_table(tmp_path / "all.parquet").to_pylist()
    assert len(every) == 6 * 7 and len({r["customer_id"] for r in every}) == 6
    assert "news-0" not in {r["customer_id"] for r in every}  # customers=all names pseudonyms only
    assert sum(r["personalised"] for r in every) == 5 * 7
    listed = pq.read_table(tmp_path / "run2" / "recommendations.parquet").to_pylist()
    assert [r["customer_id"] for r in listed] == ["news-0"] * 5 + ["news-5"] * 5 + ["never-seen"] * 5
    assert [r["personalised"] for r in listed] == [True] * 5 + [False] * 10
    assert all(r["title"] and r["category"] and r["reason"] for r in listed)
    request = RecommendRequest(k=5, context=Context("app_push"))
    expected, _ = service.recommend_customer("news-0", request)
    assert [r["item_id"] for r in listed[:5]] == [x.item_id for x in expected.items]
    store.close()
