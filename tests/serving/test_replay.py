"""The served pipeline replayed offline (``scripts/evaluate.py mode=served``): with no rules the
replay is the model-only evaluation (same figures: the replay is wired right), each
configuration switches on exactly its rule group, and bad settings get one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from journeyrec.serving.replay import RULE_GROUPS, configurations, protocol_of
from journeyrec.serving.settings import BoostRule, RulesConfig

from conftest import ROOT, run_script

KEYS = ("hr@10", "ndcg@10", "mrr@10", "hr@20", "ndcg@20", "mrr@20")


@pytest.mark.slow
def test_raw_replay_is_the_model_only_evaluation(tiny_trained_run, tmp_path):
    """Every test case through Recommender.recommend with RulesConfig.raw(): NDCG / HR / MRR
    equal the training run's full-ranking test/... figures (nothing excluded); with seen items
    excluded they equal test_seen_excluded/...."""
    out = tmp_path / "served"
    run_script(
        "evaluate.py",
        [
            f"bundle={tiny_trained_run.out / 'bundle'}",
            "mode=served",
            "served.configurations=[raw,seen_excluded]",
            "eval.bootstrap=0",
            "eval.progress=false",
            "logger=none",
            f"output_dir={out}",
        ],
        tiny_trained_run.uri,
    )
    rows = {r["configuration"]: r for r in json.loads((out / "served.json").read_text())["rows"]}
    model_only = json.loads((tiny_trained_run.out / "metrics.json").read_text())
    assert rows["raw"]["cases"] == model_only["test/n_cases"]
    for key in KEYS:
        assert rows["raw"][key] == pytest.approx(model_only[f"test/{key}"], abs=1e-12), key
        assert rows["seen_excluded"][key] == pytest.approx(model_only[f"test_seen_excluded/{key}"], abs=1e-12), key
    assert rows["raw"]["protocol"] == "nothing excluded" and rows["seen_excluded"]["protocol"] == "seen excluded"
    assert rows["raw"]["ndcg@10"] > 0.0  # a trained model: the equality is not two zeros


def test_each_configuration_switches_on_its_rule_group_only():
    rules = RulesConfig(
        boosts=[BoostRule("own_brand", True, 0.2)],
        epsilon=0.1,
        diversity_lambda=0.6,
        complement_weight=0.4,
        replenish_weight=0.5,
        seed=3,
    )
    configs = configurations(rules, list(RULE_GROUPS))
    raw = RulesConfig.raw()
    for name, cfg in configs.items():
        for f in RULE_GROUPS["all"]:
            expected = (
                getattr(rules, f)
                if f in RULE_GROUPS[name] or f in ("overfetch", "prefilter_below", "seed")
                else getattr(raw, f)
            )
            assert getattr(cfg, f) == expected, (name, f)
    assert configs["all"] == rules and configs["raw"].boosts == [] and configs["boosts"].boosts == rules.boosts
    assert protocol_of(configs["raw"]) == "nothing excluded" and protocol_of(configs["all"]) == "seen excluded"
    with pytest.raises(ValueError, match="unknown \\['mmr'\\]"):
        configurations(rules, ["raw", "mmr"])


@pytest.mark.parametrize(
    "override, message",
    [
        ("mode=servd", "mode='servd'; allowed: model"),
        ("served.configurations=[raw,mmr]", "served.configurations: unknown ['mmr']"),
        ("served.split=train", "served.split='train'; allowed: valid, test"),
    ],
)
@pytest.mark.slow
def test_bad_replay_settings_are_one_line_errors(tiny_trained_run, tmp_path, override, message):
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "evaluate.py"),
            f"bundle={tiny_trained_run.out / 'bundle'}",
            "mode=served",
            override,
            "logger=none",
            f"output_dir={tmp_path}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, MLFLOW_TRACKING_URI=tiny_trained_run.uri),
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert message in proc.stderr and "Traceback" not in proc.stderr
