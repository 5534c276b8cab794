"""Logging the dataset card to MLflow (the training package is the one that imports MLflow).

Used by ``scripts/prepare_data.py`` (a run of its own in the dataset's experiment) and by
training (the card of the data a model was trained on, in the training run).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from journeyrec.data.card import CARD_FILES, card_metrics, load_card
from journeyrec.tracking import experiment_id, experiment_name_for, flatten, mlflow_client, mlflow_key, tracking_uri
from journeyrec.typed import as_dict

__all__ = ["log_dataset_card", "log_prepare_run"]


def log_dataset_card(client: Any, run_id: str, store: str | Path) -> dict[str, Any]:
    """Log the card files of a prepared store as artifacts (``dataset_card/``) and its counts
    as metrics (``data/...``); tag the run with the data fingerprint. Returns the card."""
    store = Path(store)
    card = load_card(store)
    for name in CARD_FILES:
        if (store / name).is_file():
            client.log_artifact(run_id, str(store / name), "dataset_card")
    for key, value in card_metrics(card).items():
        client.log_metric(run_id, mlflow_key(key), value)
    client.set_tag(run_id, "data_fingerprint", card["fingerprint"])
    client.set_tag(run_id, "dataset", card["dataset"])
    return card


def log_prepare_run(cfg: Any, store: str | Path) -> str:
    """One MLflow run for a preparation (tagged ``journeyrec.kind=prepare``, like training and
    evaluation runs are tagged by kind): params (the data config), the card; returns the run id."""
    uri = tracking_uri(cfg.logger.tracking_uri)
    client = mlflow_client(uri)
    name = experiment_name_for(cfg.data, cfg.logger.experiment_name)
    exp = experiment_id(client, name, uri)
    run = client.create_run(
        exp, run_name=cfg.logger.run_name or f"prepare-{Path(store).parent.name}", tags={"journeyrec.kind": "prepare"}
    )
    params = flatten({"data": as_dict(cfg.data)})
    for key, value in params.items():
        client.log_param(run.info.run_id, key, "null" if value is None else str(value)[:500])
    log_dataset_card(client, run.info.run_id, store)
    client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id
