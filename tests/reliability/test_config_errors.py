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


@pytest.mark.parametrize(
    "name, base, override, key, schema",
    [
        ("evaluate", ["bundle=b"], "eval.bootsrap=5", "bootsrap", "EvalConfig"),
        ("export_index", ["run=r"], "chekpoint=last", "chekpoint", "ExportJobConfig"),
        ("serve", ["bundle=b"], "rules.epsilom=0.1", "epsilom", "RulesConfig"),
        ("serve", ["bundle=b"], "limit.max_k=3", "limit", "ServeConfig"),
    ],
)
def test_unknown_key_names_the_key_and_the_schema(name, base, override, key, schema):
    text = failure_text(name, [*base, override])
    assert f"Key '{key}' not in '{schema}'" in text, text


def run(script: str, args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'm.db'}")
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / script), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_wrong_type_fails_before_reading_anything(tmp_path):
    proc = run(
        "train.py",
        ["data=s3rec", "data.path=/does/not/exist.txt", "data.batch_size=lots", f"hydra.run.dir={tmp_path / 'out'}"],
        tmp_path,
    )
    assert proc.returncode != 0
    assert "data.batch_size" in proc.stderr and "Integer" in proc.stderr, proc.stderr[-2000:]
    assert "does/not/exist" not in proc.stderr  # failed at composition, before the reader ran
    assert not (tmp_path / "out" / "prepared").exists()
    served = run("serve.py", ["bundle=/does/not/exist", "limits.max_k=big"], tmp_path)
    assert served.returncode != 0
    assert "limits.max_k" in served.stderr and "Integer" in served.stderr, served.stderr[-2000:]
    assert "bundle directory not found" not in served.stderr  # the bundle was never opened


@pytest.mark.parametrize(
    "name, base, override, closest",
    [
        ("train", [], "+trainer.max_epoch=2", "max_epochs"),
        ("train", [], "+model.d_modell=8", "d_model"),
        ("train", [], "+loss.exclude_seem=true", "exclude_seen"),
        ("train", [], "+data.batchsize=4", "batch_size"),
        ("evaluate", ["bundle=b"], "+eval.bootsrap=5", "bootstrap"),
        ("serve", ["bundle=b"], "+rules.epsilom=0.1", "epsilon"),
    ],
)
def test_a_key_added_with_plus_is_refused_with_the_closest_valid_one(name, base, override, closest):
    """Hydra's hint for an unknown key is "use +key=value"; doing so must not run with the default."""
    from journeyrec.config import EvaluateConfig, ServeConfig
    from journeyrec.errors import ConfigError
    from journeyrec.training.config import train_config
    from journeyrec.typed import to_typed

    cfg = compose(name, [*base, override])  # composition itself accepts it: the key is forced in
    convert = {
        "train": train_config,
        "evaluate": lambda c: to_typed(EvaluateConfig, c),
        "serve": lambda c: to_typed(ServeConfig, c),
    }[name]
    key = override.lstrip("+").split("=", 1)[0]
    with pytest.raises(ConfigError, match=rf"unknown config key '{key}'.*did you mean {closest}\?"):
        convert(cfg)


def test_cli_refuses_a_plus_key_in_one_line_before_training(tmp_path):
    proc = run("train.py", ["experiment=demo", "+trainer.max_epoch=2", f"hydra.run.dir={tmp_path / 'out'}"], tmp_path)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines == [
        "error: unknown config key 'trainer.max_epoch' (not in TrainerConfig); did you mean max_epochs?"
    ], proc.stderr[-2000:]
    assert not (tmp_path / "out" / "prepared").exists() and not (tmp_path / "out" / "checkpoints").exists()


@pytest.mark.parametrize(
    "script, args, needle",
    [
        ("train.py", ["data=s3rec", "data.path=/does/not/exist.txt", "logger=none"], "/does/not/exist.txt"),
        ("evaluate.py", ["bundle=/does/not/exist", "logger=none"], "/does/not/exist"),
        ("export_index.py", ["run=/does/not/exist"], "/does/not/exist"),
        ("serve.py", ["bundle=/does/not/exist"], "/does/not/exist"),
    ],
)
@pytest.mark.slow
def test_user_errors_are_one_line_and_full_error_shows_the_traceback(tmp_path, script, args, needle):
    extra = [f"hydra.run.dir={tmp_path / 'out'}"] if script in ("train.py", "evaluate.py") else []
    proc = run(script, [*args, *extra], tmp_path)
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "Error executing job" not in proc.stderr
    env = dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'm.db'}", HYDRA_FULL_ERROR="1")
    full = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / script), *args, *extra],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert full.returncode != 0 and "Traceback" in full.stderr


@pytest.mark.slow
def test_evaluate_points_from_a_run_directory_to_its_bundle(tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / "bundle").mkdir(parents=True)
    (run_dir / "bundle" / "manifest.json").write_text("{}")
    proc = run("evaluate.py", [f"bundle={run_dir}", "logger=none", f"hydra.run.dir={tmp_path / 'out'}"], tmp_path)
    assert proc.returncode == 2
    assert f"did you mean {run_dir / 'bundle'}?" in proc.stderr, proc.stderr[-2000:]
