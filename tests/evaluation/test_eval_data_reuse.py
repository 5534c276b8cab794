"""Evaluation reads the data the model was trained on: a bundle trained on an existing prepared
store (``data.prepared=...``) is evaluated on that store, not on its source prepared again, and
says so; when the store is gone it falls back to the source with a warning that names it."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from journeyrec.data.prepare import load_prepared, prepare_store
from journeyrec.evaluation.pipeline import ModelSource, resolve_data

from conftest import TINY_DEMO, compose, run_script

pytestmark = pytest.mark.slow  # each test reads a training run made by a subprocess

DEMO = ["data=demo", "data.options.n_customers=200"]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("store") / "prepared"
    prepare_store(compose("prepare", DEMO).data, path)
    return path


@pytest.fixture(scope="module")
def trained_on_store(store, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("on_store")
    uri = f"sqlite:///{tmp / 'mlruns.db'}"
    run_script(
        "train.py",
        [*TINY_DEMO, f"data.prepared={store}", "trainer.max_epochs=1", f"hydra.run.dir={tmp / 'train'}"],
        uri,
    )
    run_script(
        "evaluate.py",
        [
            f"bundle={tmp / 'train' / 'bundle'}",
            "eval.bootstrap=50",
            "eval.progress=false",
            "report=false",
            f"hydra.run.dir={tmp / 'eval'}",
        ],
        uri,
    )
    return tmp


def test_training_on_a_store_says_it_loaded_it(trained_on_store, store):
    log = (trained_on_store / "train" / "train.log").read_text()
    assert "loaded the prepared store of demo shop" in log and "prepared demo shop" not in log
    assert not (trained_on_store / "train" / "prepared").exists()


def test_evaluation_reuses_the_store_the_bundle_was_trained_on(trained_on_store, store):
    provenance = json.loads((trained_on_store / "eval" / "evaluation.json").read_text())["provenance"]
    assert provenance["data"].endswith(f"the prepared store the model was trained on (data.prepared={store})")
    assert provenance["data fingerprint"] == json.loads((store / "prepared.json").read_text())["fingerprint"]
    assert (
        f"the prepared store the model was trained on (data.prepared={store})"
        in (trained_on_store / "eval" / "evaluate.log").read_text()
    )


def test_a_store_that_is_gone_falls_back_to_the_source_with_a_warning(store, tmp_path, caplog):
    data = OmegaConf.to_container(compose("prepare", DEMO).data, resolve=True)  # as config.json holds it
    gone = tmp_path / "moved-away"
    source = ModelSource(tmp_path / "run" / "bundle", {"data": {**data, "prepared": str(gone)}}, None, None)
    with caplog.at_level(logging.WARNING, logger="journeyrec.evaluation.pipeline"):
        prepared, description = resolve_data(compose("evaluate", ["bundle=x"]), source)
    said = f"the store it was trained on (data.prepared={gone}) is not there"
    assert said in caplog.text and description.endswith(f"because {said} from {Path.cwd()}")
    assert prepared.fingerprint() == load_prepared(store).fingerprint()  # the same source, prepared the same way
    source.train_config["data"].update(name="events", path=str(tmp_path / "no-such.csv"))
    with pytest.raises(FileNotFoundError, match=r"nor its source data.path=.*no-such\.csv; pass prepared=DIR"):
        resolve_data(compose("evaluate", ["bundle=x"]), source)
