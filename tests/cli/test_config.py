"""Real Hydra composition of the shipped configs, and strict validation of overrides."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ConfigKeyError, ValidationError

from journeyrec.config import register_configs

CONFIGS = str(Path(__file__).resolve().parents[2] / "configs")


def make(overrides):
    register_configs()
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


def test_default_and_experiments_compose():
    cfg = make([])
    assert cfg.data.name == "demo" and cfg.model.name == "sasrec"
    beauty = make(["experiment=beauty_sasrec"])
    assert beauty.data.name == "s3rec" and beauty.data.path.endswith("amazon/Beauty.txt")
    assert beauty.trainer.monitor == "valid_seen_excluded/ndcg@10"
    other = make(["experiment=beauty_sasrec", "data.path=/tmp/Toys.txt"])
    assert other.data.path == "/tmp/Toys.txt"
    demo = make(["experiment=demo"])
    assert demo.show_samples == 3 and list(demo.model.features) == ["event_type", "channel", "time_gap"]


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.d_modle=32", "d_modle"),
        ("trainer.max_epoch=3", "max_epoch"),
        ("bogus=1", "bogus"),
        ("data.batch_size=lots", "batch_size"),
    ],
)
def test_unknown_key_or_wrong_type_names_the_key(override, message):
    with pytest.raises((ConfigCompositionException, ConfigKeyError, ValidationError)) as err:
        make([override])
    text = str(err.value) + str(err.value.__cause__)
    assert message in text


def _changed(a, b) -> set[str]:
    return {
        f"{group}.{key}"
        for group in ("data", "model", "loss", "trainer", "transitions")
        for key in set(a[group]) | set(b[group])
        if a[group].get(key) != b[group].get(key)
    }


def test_every_experiment_composes_and_the_s3rec_variants_change_only_what_they_say():
    names = sorted(p.stem for p in Path(CONFIGS, "experiment").glob("*.yaml"))
    assert {"s3rec_best", "s3rec_causal", "s3rec_small"} <= set(names)
    for name in names:
        assert make([f"experiment={name}"]).model.name
    best, causal, small = (make([f"experiment={n}"]) for n in ("s3rec_best", "s3rec_causal", "s3rec_small"))
    # the causal training: one window per user, every position a target; the rest is s3rec_best's
    assert _changed(best, causal) == {"model.causal", "loss.targets", "data.batch_size", "trainer.patience"}
    assert (best.model.causal, best.loss.targets) == (False, "newest")
    assert (causal.model.causal, causal.loss.targets) == (True, "every")
    # s3rec_small only narrows the causal one
    assert _changed(causal, small) == {"model.d_model", "model.dropout", "trainer.patience", "trainer.ema_decay"}
    assert (
        causal.model.d_model == 2 * small.model.d_model
        and causal.trainer.ema_decay > 0
        and small.trainer.ema_decay == 0
    )
