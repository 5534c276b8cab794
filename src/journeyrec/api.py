"""The Python API: the same jobs as ``scripts/*.py``, from a notebook or a script.

Each job takes the command line's ``key=value`` overrides, composes the same Hydra config the
script would (``configs/<job>.yaml``, checked against the typed schemas) and runs the same
function, so a notebook and a shell get identical runs::

    import journeyrec

    run = journeyrec.train(["experiment=demo", "trainer.max_epochs=2"])
    run.metrics["test_seen_excluded/ndcg@10"]
    rec = journeyrec.load_bundle(run.bundle_dir)
    rec.recommend(journeyrec.RecommendRequest.from_items(["SKU00519", "SKU00007"], k=5)).items

    data = journeyrec.prepare(["data=s3rec", "data.path=../shared/data/amazon/Beauty.txt"])
    report = journeyrec.evaluate([f"bundle={run.bundle_dir}", "logger=none"])
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

from journeyrec.config import CONFIG_DIR, compose_cli
from journeyrec.data.prepare import PreparedData, load_prepared, prepare_store
from journeyrec.evaluation.config import EvaluateConfig
from journeyrec.evaluation.pipeline import EvaluationOutput, run_evaluation
from journeyrec.serving.recommender import Recommender
from journeyrec.serving.request import RecommendRequest
from journeyrec.serving.settings import RulesConfig, merge_rules
from journeyrec.training.config import PrepareConfig, train_config
from journeyrec.training.run import TrainResult
from journeyrec.training.run import train as _train
from journeyrec.typed import to_typed

__all__ = ["compose", "prepare", "train", "evaluate", "load_bundle", "RecommendRequest"]


def compose(job: str, overrides: Sequence[str] = ()) -> Any:
    """The composed config of ``configs/<job>.yaml`` (train, prepare, evaluate, serve, ...) with
    ``overrides``, exactly as the script of that name composes it."""
    return compose_cli(CONFIG_DIR, job, list(overrides))


def prepare(overrides: Sequence[str] = (), output_dir: str | Path | None = None) -> PreparedData:
    """Read a source and prepare it (``scripts/prepare_data.py``): the store is written to
    ``<output_dir>/prepared`` (a temporary directory when None) and returned loaded in memory."""
    cfg = to_typed(PrepareConfig, compose("prepare", overrides))
    if output_dir is None:
        with tempfile.TemporaryDirectory(prefix="journeyrec-prepare-") as tmp:
            prepare_store(cfg.data, Path(tmp) / "prepared")
            return load_prepared(Path(tmp) / "prepared")
    store = Path(output_dir) / "prepared"
    prepare_store(cfg.data, store)
    return load_prepared(store)


def train(overrides: Sequence[str] = (), output_dir: str | Path | None = None) -> TrainResult:
    """Train, evaluate and export one configuration (``scripts/train.py``); ``output_dir`` defaults
    to ``outputs/<date>/<time>``."""
    extra = [f"output_dir={output_dir}"] if output_dir is not None else []
    return _train(train_config(compose("train", [*overrides, *extra])))


def evaluate(overrides: Sequence[str] = (), output_dir: str | Path | None = None) -> EvaluationOutput:
    """Evaluate a bundle next to the baselines (``scripts/evaluate.py``), e.g.
    ``evaluate(["bundle=outputs/.../bundle"])``."""
    extra = [f"output_dir={output_dir}"] if output_dir is not None else []
    return run_evaluation(to_typed(EvaluateConfig, compose("evaluate", [*overrides, *extra])))


def load_bundle(
    path: str | Path, rules: RulesConfig | None = None, contexts: Mapping[str, Any] | None = None, **rule_overrides: Any
) -> Recommender:
    """A bundle ready to answer :class:`RecommendRequest` s with ``.recommend(...)``, as the HTTP
    service does: ``rules`` (default: the service's) with any rule set by keyword, e.g.
    ``load_bundle(path, epsilon=0.0, diversity_lambda=1.0)``; an unknown rule name is refused."""
    return Recommender.load(path, rules=merge_rules(rules or RulesConfig(), rule_overrides), contexts=contexts)
