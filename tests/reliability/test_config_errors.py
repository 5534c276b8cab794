"""Config validation at start-up, for every script's config: a wrong type names the key and the
expected type, an unknown key names the key and the schema, and both fail before any data,
checkpoint or bundle is read (tests/test_config.py and
tests/test_train_pipeline.py::test_unknown_config_key_fails_before_reading_data cover the
training config's unknown keys)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import compose

ROOT = Path(__file__).resolve().parents[2]

WRONG_TYPES = [
    ("train", [], "data.batch_size=lots", "Integer"),
    ("train", [], "trainer.max_epochs=1.5", "Integer"),
    ("train", [], "model.dropout=high", "Float"),
    ("train", [], "trainer.deterministic=maybe", "bool"),
    ("train", [], "eval.ks=[a]", "List[int]"),
    ("train", [], "export.target_recall=x", "Float"),
    ("evaluate", ["bundle=b"], "eval.bootstrap=many", "Integer"),
    ("segment", ["bundle=b"], "k=eight", "Integer"),
    ("export_index", ["run=r"], "export.n_queries=all", "Integer"),
    ("serve", ["bundle=b"], "port=http", "Integer"),
    ("serve", ["bundle=b"], "limits.max_k=big", "Integer"),
    ("serve", ["bundle=b"], "rules.epsilon=lots", "Float"),
]


def failure_text(name: str, overrides: list[str]) -> str:
    with pytest.raises(Exception) as err:  # noqa: PT011 - Hydra wraps OmegaConf's errors; the text is what matters
        compose(name, overrides)
    return f"{err.value}\n{err.value.__cause__}"


@pytest.mark.parametrize("name, base, override, expected", WRONG_TYPES)
def test_wrong_type_names_the_key_and_the_expected_type(name, base, override, expected):
    text = failure_text(name, [*base, override])
    key = override.split("=", 1)[0]
    assert f"full_key: {key}" in text and expected in text, text


@pytest.mark.parametrize("name, base, override, key, schema", [
    ("evaluate", ["bundle=b"], "eval.bootsrap=5", "bootsrap", "EvalConfig"),
    ("export_index", ["run=r"], "chekpoint=last", "chekpoint", "ExportJobConfig"),
    ("serve", ["bundle=b"], "rules.epsilom=0.1", "epsilom", "RulesConfig"),
    ("serve", ["bundle=b"], "limit.max_k=3", "limit", "ServeConfig"),
])
def test_unknown_key_names_the_key_and_the_schema(name, base, override, key, schema):
    text = failure_text(name, [*base, override])
    assert f"Key '{key}' not in '{schema}'" in text, text


def run(script: str, args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'm.db'}")
    return subprocess.run([sys.executable, str(ROOT / "scripts" / script), *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)


def test_cli_wrong_type_fails_before_reading_anything(tmp_path):
    proc = run("train.py", ["data=s3rec", "data.path=/does/not/exist.txt", "data.batch_size=lots",
                            f"hydra.run.dir={tmp_path / 'out'}"], tmp_path)
    assert proc.returncode != 0
    assert "data.batch_size" in proc.stderr and "Integer" in proc.stderr, proc.stderr[-2000:]
    assert "does/not/exist" not in proc.stderr  # failed at composition, before the reader ran
    assert not (tmp_path / "out" / "prepared").exists()
    served = run("serve.py", ["bundle=/does/not/exist", "limits.max_k=big"], tmp_path)
    assert served.returncode != 0
    assert "limits.max_k" in served.stderr and "Integer" in served.stderr, served.stderr[-2000:]
    assert "bundle directory not found" not in served.stderr  # the bundle was never opened
