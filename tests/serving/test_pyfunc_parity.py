"""The registered MLflow model, the Recommender and the HTTP service give the same list for the
same session, with their defaults (a registered model's signature once defaulted
``exclude_history`` to False and returned the session's own items)."""

from __future__ import annotations

import httpx
import pandas as pd
import pytest

from journeyrec.serving import Recommender, RecommendRequest
from journeyrec.serving.app import create_app
from journeyrec.serving.service import Service
from journeyrec.serving.settings import RulesConfig

from serving_support import ThreadServer

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.slow
def test_pyfunc_recommender_and_http_agree(demo_bundle, mlflow_uri):
    import mlflow

    from journeyrec.tracking import register_bundle

    rec = Recommender.load(demo_bundle.path)
    sessions = demo_bundle.sessions(30, min_len=4, seed=5)
    # sessions where the model alone ranks one of the session's own items in its top 3: there the defaults matter
    own = [
        s
        for s in sessions
        if {e.item_id for e in s}
        & {
            x.item_id
            for x in rec.recommend(
                RecommendRequest(events=s, k=3, now_ms=s[-1].timestamp_ms),
                RulesConfig(exclude_seen=False, repeat_policy=False),
            ).items
        }
    ]
    assert own, "no session of the sample would show the difference"
    client = mlflow.MlflowClient(mlflow_uri)
    run_id = client.create_run(client.create_experiment("parity")).info.run_id
    register_bundle(run_id, "parity-demo", mlflow_uri, bundle_dir=demo_bundle.path)
    mlflow.set_tracking_uri(mlflow_uri)
    pyfunc = mlflow.pyfunc.load_model("models:/parity-demo/1")
    service = Service(Recommender.load(demo_bundle.path), allow_demo_key=True)
    with ThreadServer(create_app(service)) as url, httpx.Client(base_url=url, timeout=60) as http:
        for s in own[:5]:
            frame = pd.DataFrame(
                {
                    "session_id": ["s"],
                    "item_ids": [[e.item_id for e in s]],
                    "event_types": [[e.event_type for e in s]],
                    "channels": [[e.channel for e in s]],
                    "timestamps_ms": [[e.timestamp_ms for e in s]],
                }
            )
            via_pyfunc = pyfunc.predict(frame, params={"k": 3})["item_id"].tolist()
            via_rec = [
                x.item_id
                for x in rec.recommend(
                    RecommendRequest.from_items(
                        [e.item_id for e in s],
                        k=3,
                        event_types=[e.event_type for e in s],
                        channels=[e.channel for e in s],
                        timestamps_ms=[e.timestamp_ms for e in s],
                    )
                ).items
            ]
            body = {
                "events": [
                    {
                        "item_id": e.item_id,
                        "event_type": e.event_type,
                        "channel": e.channel,
                        "timestamp": e.timestamp_ms,
                    }
                    for e in s
                ],
                "k": 3,
            }
            via_http = [x["item_id"] for x in http.post("/v1/recommendations", json=body).json()["items"]]
            assert via_pyfunc == via_rec == via_http
            # the defaults exclude what was only looked at; a purchase may come back as "buy again"
            bought = {e.item_id for e in s if e.event_type == "purchase"}
            assert not set(via_pyfunc) & ({e.item_id for e in s if e.event_type == "view"} - bought)
            default_k = pyfunc.predict(frame)["item_id"].tolist()
            assert len(default_k) == RecommendRequest().k
