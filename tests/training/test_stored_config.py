"""A run's stored config.yaml reads back as the config it was trained with, in the current layout
and in the one before the loss / optim groups (objective and optimiser keys under ``model``), so
older run directories still re-export, evaluate and resume; an unknown key under ``model`` in the
current layout is still refused by name."""

from __future__ import annotations

import dataclasses

import pytest
from omegaconf import OmegaConf

from journeyrec.errors import ConfigError
from journeyrec.training.config import train_config
from journeyrec.typed import as_dict

from conftest import compose

OVERRIDES = [
    "experiment=s3rec_causal",  # every target trained (loss.targets=every), as the earlier layout could say
    "loss.temperature=0.5",
    "+loss.event_type_weights.purchase=2.0",
    "optim.lr=0.0005",
    "optim.lr_schedule=cosine",
]


def stored(overrides: list[str]) -> dict:
    """The config as a run writes it: the typed config as a plain mapping (config.yaml)."""
    return as_dict(train_config(compose("train", overrides)))


# loss fields added after the loss / optim groups: a config of the earlier layout cannot hold them
NEWER_LOSS_KEYS = {"recency_halflife": None, "targets": "every"}


def earlier_layout(cfg: dict) -> dict:
    """The same config as runs wrote it before the loss / optim groups existed."""
    old = {k: v for k, v in cfg.items() if k not in ("loss", "optim")}
    assert all(cfg["loss"][k] == v for k, v in NEWER_LOSS_KEYS.items())  # at their defaults, so nothing is lost
    loss = {("loss" if k == "name" else k): v for k, v in cfg["loss"].items() if k not in NEWER_LOSS_KEYS}
    optim = {k: v for k, v in cfg["optim"].items() if k != "name"}
    old["model"] = {**cfg["model"], **loss, **optim}
    return old


def test_a_config_stored_in_the_earlier_layout_reads_as_the_current_one():
    current = stored(OVERRIDES)
    assert current["loss"]["temperature"] == 0.5 and current["optim"]["lr"] == 0.0005  # the overrides took
    old = earlier_layout(current)
    assert "loss" not in old and old["model"]["loss"] == "softmax" and old["model"]["lr"] == 0.0005
    upgraded = train_config(OmegaConf.create(old))
    assert upgraded == train_config(OmegaConf.create(current))
    assert dataclasses.asdict(upgraded.loss)["event_type_weights"] == {"purchase": 2.0}


def test_an_unknown_model_key_in_the_current_layout_is_still_refused():
    current = stored(OVERRIDES)
    current["model"]["lr"] = 0.1  # an optimiser key where it no longer belongs
    with pytest.raises(ConfigError, match="lr"):
        train_config(OmegaConf.create(current))
