"""The offline evaluation behind ``scripts/evaluate.py``: a trained model on a prepared split,
next to the baselines, without retraining.

Steps: resolve the model (a bundle directory, or an MLflow training run whose ``bundle`` artifact
is downloaded) -> resolve the data (``prepared=DIR``, else ``data=...``, else the ``prepared/``
directory beside the bundle, else the store the bundle was trained on (its ``data.prepared``), else
its training config's source, prepared again) -> express it in the model's
item ids (:func:`journeyrec.evaluation.offline.align_items`) -> evaluate the model and each
baseline with :func:`journeyrec.evaluation.offline.evaluate_system` (the function training uses)
-> write ``metrics.json`` (model keys as in training, baselines under ``<baseline>/``),
``per_case.parquet``, ``evaluation.json`` (settings + provenance), ``report.md`` / ``report.html``
with ``plots/*.png`` -> log all of it as an MLflow run (tagged ``journeyrec.kind=evaluation``, a
child of the training run when that run is in the store) -> print a one-screen summary.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from journeyrec.bundle.format import read_bundle
from journeyrec.data.config import DataConfig
from journeyrec.data.prepare import PreparedData, load_prepared, prepare
from journeyrec.errors import MissingInputError
from journeyrec.evaluation.config import EvaluateConfig
from journeyrec.evaluation.metrics import per_case_metrics
from journeyrec.evaluation.offline import (
    ItemStats,
    SystemEvaluation,
    align_items,
    eval_settings,
    evaluate_system,
    per_case_table,
    protocol_prefix,
)
from journeyrec.evaluation.rank_kernel import PROTOCOLS
from journeyrec.evaluation.report import (
    evaluation_report,
    fmt_ci,
    plot_accuracy_vs_coverage,
    plot_metric_vs_k,
    plot_popularity_distribution,
    plot_training_curves,
    summary_text,
)
from journeyrec.evaluation.segments import case_segments, load_assignment
from journeyrec.evaluation.statistics import paired_comparison
from journeyrec.io import atomic_path, atomic_write_json
from journeyrec.models.baselines import BASELINES
from journeyrec.tracking import mlflow_client
from journeyrec.typed import as_dict, to_typed

__all__ = [
    "run_evaluation",
    "ModelSource",
    "resolve_model",
    "resolve_data",
    "baseline_params",
    "EvaluationOutput",
    "refit_warning",
]

log = logging.getLogger(__name__)


@dataclass
class ModelSource:
    """Where the evaluated model comes from."""

    bundle_dir: Path
    train_config: dict[str, Any]
    run_id: str | None  # the training run in the tracking store, if known
    experiment: str | None  # its experiment
    data_fingerprint: str | None = None  # of the data the training run saw (its MLflow tag), if known


@dataclass
class EvaluationOutput:
    metrics: dict[str, float]
    output_dir: Path
    run_id: str | None
    systems: list[SystemEvaluation]


def resolve_model(cfg: EvaluateConfig, uri: str, scratch: Path) -> ModelSource:
    """The bundle to evaluate: ``bundle=DIR`` or ``run_id=ID`` (its ``bundle`` artifact)."""
    if bool(cfg.bundle) == bool(cfg.run_id):
        raise ValueError("give exactly one of bundle=PATH (a bundle directory) or run_id=ID (an MLflow training run)")
    run_id, experiment, fingerprint = None, None, None
    if cfg.run_id:
        import mlflow

        client = mlflow_client(uri)
        try:
            run = client.get_run(str(cfg.run_id))
        except Exception as exc:  # noqa: BLE001 - MLflow raises its own exception types
            raise ValueError(
                f"run_id={cfg.run_id}: no such run in {uri} ({exc}); set MLFLOW_TRACKING_URI or logger.tracking_uri"
            ) from exc
        run_id = run.info.run_id
        experiment = client.get_experiment(run.info.experiment_id).name
        fingerprint = run.data.tags.get("data_fingerprint")
        bundle = Path(
            mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path="bundle", dst_path=str(scratch), tracking_uri=uri
            )
        )
    else:
        bundle = Path(str(cfg.bundle))
        sibling = bundle.parent / "mlflow_run_id"
        from journeyrec.tracking import store_exists

        if sibling.is_file() and store_exists(uri):  # the training run that wrote this bundle, if it is in this store
            with contextlib.suppress(Exception):
                client = mlflow_client(uri)
                run = client.get_run(sibling.read_text().strip())
                run_id = run.info.run_id
                experiment = client.get_experiment(run.info.experiment_id).name
                fingerprint = run.data.tags.get("data_fingerprint")
    config_file = bundle / "config.json"
    train_config = json.loads(config_file.read_text()) if config_file.is_file() else {}
    return ModelSource(bundle, train_config, run_id, experiment, fingerprint)


def resolve_data(cfg: EvaluateConfig, source: ModelSource) -> tuple[PreparedData, str]:
    """Prepared data and a description of where it came from (see the module docstring for the order)."""
    if cfg.prepared:
        return load_prepared(str(cfg.prepared)), f"prepared directory {cfg.prepared}"
    if cfg.data is not None:
        return prepare(cfg.data), f"prepared from data config ({cfg.data.name}, {cfg.data.path})"
    sibling = source.bundle_dir.parent / "prepared"
    if (sibling / "prepared.json").is_file():
        return load_prepared(sibling), f"prepared directory of the training run ({sibling})"
    data_cfg = to_typed(DataConfig, source.train_config.get("data") or {}) if source.train_config.get("data") else None
    if data_cfg is None:
        raise ValueError(
            f"{source.bundle_dir}: no training config with a data section; pass data=... data.path=... or prepared=DIR"
        )
    store, path = data_cfg.prepared, data_cfg.path
    gone = ""
    if store:
        if (Path(store) / "prepared.json").is_file():
            prepared = load_prepared(store)
            if source.data_fingerprint and prepared.fingerprint() != source.data_fingerprint:
                log.warning(
                    "the prepared store %s has changed since the model was trained on it (data fingerprint %s, "
                    "training run's %s)",
                    store,
                    prepared.fingerprint(),
                    source.data_fingerprint,
                )
            return prepared, f"the prepared store the model was trained on (data.prepared={store})"
        gone = f"the store it was trained on (data.prepared={store}) is not there from {Path.cwd()}"
        if path and not Path(path).exists():
            raise MissingInputError(
                f"{gone}, nor its source data.path={path}; pass prepared=DIR or data=<reader> data.path=<file>"
            )
        log.warning("%s: preparing its source again (%s, %s)", gone, data_cfg.name, path)
        data_cfg = dataclasses.replace(data_cfg, prepared=None)
    if path and not Path(path).exists():
        raise MissingInputError(
            f"the bundle was trained on data.path={path}, which does not exist from {Path.cwd()}; "
            "pass data=<reader> data.path=<file> or prepared=DIR"
        )
    log.info("preparing the bundle's training data again (%s, %s)", data_cfg.name, path)
    return prepare(data_cfg), (
        f"prepared again from the bundle's training config ({data_cfg.name}, {path})"
        + (f", because {gone}" if gone else "")
    )


def baseline_params(cfg: EvaluateConfig, name: str) -> dict[str, Any]:
    """Fit parameters of a baseline from the eval config."""
    e = cfg.eval
    if name == "recent_popularity":
        if e.recent_last_per_user:
            return {"last_per_user": int(e.recent_last_per_user), "window_days": None, "seed": int(e.seed)}
        return {"window_days": float(e.recent_window_days), "seed": int(e.seed)}
    if name == "cooccurrence":
        return {"window": int(e.cooccurrence_window), "history": int(e.cooccurrence_history), "seed": int(e.seed)}
    return {"seed": int(e.seed)}


def _output_dir(cfg: EvaluateConfig) -> Path:
    if cfg.output_dir:
        return Path(str(cfg.output_dir))
    try:
        from hydra.core.hydra_config import HydraConfig

        return Path(HydraConfig.get().runtime.output_dir)
    except (ImportError, ValueError):
        return Path("outputs") / "evaluate" / datetime.now().strftime("%Y-%m-%d/%H-%M-%S")


@contextlib.contextmanager
def _scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="journeyrec-eval-") as tmp:
        yield Path(tmp)


def run_evaluation(cfg: EvaluateConfig) -> EvaluationOutput:
    """Evaluate the configured model and baselines; write and log everything (module docstring)."""
    from journeyrec.tracking import experiment_name_for, tracking_uri

    t0 = time.perf_counter()
    out = _output_dir(cfg)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.num_threads:
        torch.set_num_threads(int(cfg.num_threads))
    uri = tracking_uri(cfg.logger.tracking_uri)
    ecfg = cfg.eval
    ks = [int(k) for k in ecfg.ks]
    splits = [str(s) for s in cfg.splits]
    with _scratch() as scratch:
        source = resolve_model(cfg, uri, scratch)
        bundle = read_bundle(source.bundle_dir)
        model_name = str(bundle.manifest["model"].get("name", "model"))
        log.info(
            "model %s (%s items) from %s; training run %s",
            model_name,
            bundle.manifest["model"].get("n_items"),
            cfg.bundle or f"MLflow run {cfg.run_id}",
            source.run_id or "not in this tracking store",
        )
        t_data = time.perf_counter()
        original, data_desc = resolve_data(cfg, source)
    log.info(
        "data %s: %s, in %.1fs; split %s: %s",
        original.source,
        data_desc,
        time.perf_counter() - t_data,
        original.split.kind,
        ", ".join(f"{s} {len(getattr(original.split, s))} cases" for s in splits),
    )
    prepared, unknown = align_items(original, bundle.item_ids, bundle.catalog)
    seqs = prepared.sequences
    stats = ItemStats.from_data(seqs, prepared.split.train_ends, bundle.catalog)
    assignment = load_assignment(ecfg.segments) if ecfg.segments else None
    # segment breakdowns on the test split (labels from the data as prepared, before alignment)
    segments = {
        s: case_segments(original.sequences, getattr(original.split, s), list(ecfg.length_edges), assignment)
        for s in splits
        if s == "test"
    }
    batch_size = int(
        cfg.batch_size
        or (
            cfg.data.eval_batch_size
            if cfg.data is not None
            else source.train_config.get("data", {}).get("eval_batch_size", 512)
        )
    )
    progress = bool(ecfg.progress)

    for name in ecfg.baselines:
        if name not in BASELINES:
            raise ValueError(f"eval.baselines: unknown baseline '{name}'; available: {sorted(BASELINES)}")
    headline = f"{splits[-1]}/ndcg@{ks[0]}"

    def evaluated(system: Any, name: str) -> SystemEvaluation:
        t = time.perf_counter()
        ev = evaluate_system(system, prepared, ecfg, stats, segments, unknown, splits, name, batch_size, progress)
        log.info("evaluated %s in %.1fs: %s %s", name, time.perf_counter() - t, headline, fmt_ci(ev.metrics, headline))
        return ev

    systems: list[SystemEvaluation] = [evaluated(bundle.ranking_model, model_name)]
    fitted = {}
    for name in ecfg.baselines:
        fitted[name] = BASELINES[name].fit(seqs, prepared.split.train_ends, **baseline_params(cfg, name))
        systems.append(evaluated(fitted[name], name))

    metrics: dict[str, float] = dict(systems[0].metrics)
    for ev in systems[1:]:
        metrics.update({f"{ev.name}/{k}": v for k, v in ev.metrics.items()})
    table = pa.concat_tables(
        [per_case_table(ev, original, segments, "model" if i == 0 else "baseline") for i, ev in enumerate(systems)],
        promote_options="default",
    )
    atomic_write_json(out / "metrics.json", metrics)
    with atomic_path(out / "per_case.parquet") as tmp:
        pq.write_table(table, tmp)

    settings = eval_settings(ecfg, seqs.n_items, stats.attribute_kind)
    settings["baselines"] = {
        name: json.dumps({k: v for k, v in b.hparams.items() if k not in ("name", "n_items")})
        for name, b in fitted.items()
    }
    system_keys = [(model_name, "")] + [(ev.name, f"{ev.name}/") for ev in systems[1:]]
    paired = _paired(systems, ks, splits, int(ecfg.bootstrap), int(ecfg.seed))
    notes = _notes(fitted, segments, prepared, unknown, stats)
    refit = refit_warning(source.train_config, splits)
    if refit:
        log.warning(refit)
        notes.insert(0, refit)

    # MLflow: the evaluation run (created first so the report can name it)
    client, run_id, experiment = None, None, source.experiment
    if cfg.logger.mlflow:
        from journeyrec.tracking import experiment_id, flatten, log_metrics, run_tags

        client = mlflow_client(uri)
        experiment = source.experiment or experiment_name_for(
            cfg.data if cfg.data is not None else source.train_config.get("data", {}), cfg.logger.experiment_name
        )
        exp_id = experiment_id(client, experiment, uri)
        tags = run_tags(
            int(ecfg.seed), prepared.fingerprint(), **{"journeyrec.kind": "evaluation", "model": model_name}
        )
        if source.run_id:
            tags.update({"source_run_id": source.run_id, "mlflow.parentRunId": source.run_id})
        run = client.create_run(exp_id, run_name=cfg.logger.run_name or f"eval-{model_name}-{out.name}", tags=tags)
        run_id = run.info.run_id
        params = flatten({"eval": as_dict(ecfg)})
        params.update(
            {"bundle": str(cfg.bundle or ""), "source_run_id": str(source.run_id or ""), "data": data_desc[:480]}
        )
        for key, value in params.items():
            client.log_param(run_id, key, value)
        log_metrics(client, run_id, metrics)

    provenance = [
        (
            "model",
            f"{model_name} ({bundle.manifest['model'].get('n_items')} items), "
            f"bundle {cfg.bundle or 'from MLflow run ' + str(cfg.run_id)}",
        ),
        ("training run", source.run_id or "not in this tracking store"),
        ("evaluation run", run_id or "MLflow off"),
        ("experiment", experiment or "n/a"),
        ("data", f"{original.source}; {data_desc}"),
        ("data fingerprint", original.fingerprint()),
        (
            "split",
            f"{original.split.kind}; " + ", ".join(f"{s}: {len(getattr(original.split, s))} cases" for s in splits),
        ),
        ("output directory", str(out)),
        ("created", datetime.now().isoformat(timespec="seconds")),
    ]
    atomic_write_json(
        out / "evaluation.json",
        {
            "settings": settings,
            "provenance": dict(provenance),
            "paired": [{"comparison": c, **vars(r)} for c, r in paired],
            "notes": notes,
        },
    )
    log.info("wrote metrics.json, per_case.parquet and evaluation.json to %s", out)
    plots = []
    if cfg.report:
        plots = _plots(
            out, systems, stats, prepared, unknown, splits, ks, client, source, experiment, metrics, model_name
        )
        evaluation_report(
            f"Evaluation: {model_name} on {Path(str(original.source)).name}",
            metrics,
            system_keys,
            settings,
            provenance,
            ks,
            splits,
            paired,
            plots,
            notes,
        ).write(out)
        log.info("wrote the report: %s (%d plots)", out / "report.html", len(plots))
    if client is not None:
        for name in ("metrics.json", "per_case.parquet", "evaluation.json", "report.md", "report.html"):
            if (out / name).is_file():
                client.log_artifact(run_id, str(out / name))
        if (out / "plots").is_dir():
            client.log_artifacts(run_id, str(out / "plots"), "plots")
        client.set_terminated(run_id, "FINISHED")
        log.info("logged MLflow run %s in experiment %s (%s)", run_id, experiment, uri)
    where = [
        ("output", str(out)),
        ("report", str(out / "report.html") if cfg.report else "off"),
        ("mlflow run", f"{run_id} (experiment {experiment}; training run {source.run_id})" if run_id else "MLflow off"),
        ("data", data_desc),
        ("seconds", f"{time.perf_counter() - t0:.1f}"),
    ]
    summary = summary_text(metrics, system_keys, where, ks, "test" if "test" in splits else splits[0])
    if logging.getLogger().hasHandlers():  # Hydra (or the caller) set logging up: console and evaluate.log both get it
        log.info("%s", summary)
    else:
        print(summary)
    return EvaluationOutput(metrics, out, run_id, systems)


def _paired(
    systems: list[SystemEvaluation], ks: list[int], splits: list[str], n_boot: int, seed: int
) -> list[tuple[str, Any]]:
    """The model against every baseline on the test split: NDCG@K0 and HR@K0, both protocols."""
    split = "test" if "test" in splits else splits[0]
    if n_boot <= 0 or len(systems) < 2:
        return []
    model, k = systems[0], ks[0]
    out = []
    for base in systems[1:]:
        for protocol in PROTOCOLS:
            a = per_case_metrics(base.ranks[split][protocol], [k])
            b = per_case_metrics(model.ranks[split][protocol], [k])
            for metric in (f"ndcg@{k}", f"hr@{k}"):
                r = paired_comparison(
                    f"{protocol_prefix(split, protocol)}{metric}",
                    a[metric],
                    b[metric],
                    n_boot=n_boot,
                    n_perm=max(n_boot, 10000),
                    seed=seed,
                )
                out.append((f"{model.name} (B) vs {base.name} (A)", r))
    return out


def refit_warning(train_config: dict[str, Any], splits: list[str]) -> str | None:
    """What a reader of valid/... must know when the model was refitted on the validation targets
    (``trainer.refit_epochs``): those figures then score items it trained on (training's own
    metrics.json keeps the picked epoch's validation figures); test/... stays held out."""
    epochs = int((train_config.get("trainer") or {}).get("refit_epochs", 0) or 0)
    if not epochs or "valid" not in splits:
        return None
    return (
        f"the model was refitted for {epochs} epochs on the validation targets (trainer.refit_epochs): its "
        "valid/... figures here score items it trained on; only test/... are held out (the training run's "
        "metrics.json has the validation figures of the epoch early stopping picked)"
    )


def _notes(fitted: dict, segments: dict, prepared: PreparedData, unknown: dict, stats: ItemStats) -> list[str]:
    notes = []
    recent = fitted.get("recent_popularity")
    if recent is not None:
        share = recent.hparams.get("window_share", float("nan"))
        if "last_per_user" in recent.hparams:
            window = f"last {recent.hparams['last_per_user']} events per user"
        else:
            window = f"{recent.hparams.get('window_days')} days"
        notes.append(
            f"recent_popularity counts {share:.1%} of the training events "
            f"({recent.hparams.get('train_events')} events; window {window})."
        )
        if share >= 0.999:
            notes.append(
                "The recent window covers every training event, so recent_popularity equals global popularity "
                "(typical of sources without wall-clock time); use eval.recent_last_per_user=N for a per-user window."
            )
    ut = (segments.get("test") or {}).get("user_type")
    if ut is not None and len(ut) and (ut == "new").all():
        notes.append(
            "Every test case falls in the user's first session (no earlier visit can be told apart: the source has "
            "no sessions and no wall-clock gaps), so the new/returning breakdown has a single segment."
        )
    n_unknown = int(prepared.stats.get("items_unknown_to_model", 0))
    if n_unknown or any(m.any() for m in unknown.values()):
        notes.append(
            f"{n_unknown} items of the data are unknown to the model (dropped from inputs); cases whose target is "
            "unknown count as misses: " + ", ".join(f"{s}: {int(m.sum())}" for s, m in unknown.items())
        )
    if stats.attribute_kind == "none":
        notes.append("The catalogue has neither categories nor tags: diversity is not available.")
    elif stats.attribute_kind == "tags":
        notes.append(
            "The catalogue has no categories; diversity uses the items' tags (attribute sets, Jaccard distance)."
        )
    return notes


def _plots(
    out: Path,
    systems: list[SystemEvaluation],
    stats: ItemStats,
    prepared: PreparedData,
    unknown: dict,
    splits: list[str],
    ks: list[int],
    client: Any,
    source: ModelSource,
    experiment: str | None,
    metrics: dict[str, float],
    model_name: str,
) -> list[tuple[str, str]]:
    split = "test" if "test" in splits else splits[0]
    k = ks[0]
    d = out / "plots"
    d.mkdir(exist_ok=True)
    plots = []
    for protocol in PROTOCOLS:
        plot_metric_vs_k(
            {ev.name: ev.ranks[split][protocol] for ev in systems},
            d / f"metric_vs_k_{protocol}.png",
            f"{split}, protocol {protocol}: accuracy against K",
        )
        plots.append((f"plots/metric_vs_k_{protocol}.png", f"NDCG@K and HR@K against K ({split}, protocol {protocol})"))
    if systems[0].topk:
        cases = getattr(prepared.split, split)
        consumed = cases.targets[~unknown.get(split, np.zeros(len(cases), bool))]
        plot_popularity_distribution(
            stats.counts,
            {ev.name: ev.topk[split]["all"][:, :k] for ev in systems},
            consumed,
            d / "popularity.png",
            f"popularity of recommended (top-{k}) vs consumed items ({split})",
        )
        plots.append(
            (
                "plots/popularity.png",
                f"Item popularity (training interactions) of recommended top-{k} items and of the "
                "items actually consumed next",
            )
        )
    points = [
        {
            "x": metrics.get(f"{sp}{split}/coverage@{k}", np.nan),
            "y": metrics.get(f"{sp}{split}/ndcg@{k}", np.nan),
            "label": name,
            "kind": "model" if not sp else "baseline",
        }
        for name, sp in [(model_name, "")] + [(ev.name, f"{ev.name}/") for ev in systems[1:]]
    ]
    n_runs = 0
    if client is not None and experiment:
        exp = client.get_experiment_by_name(experiment)
        if exp is not None:
            from journeyrec.tracking import mlflow_key

            for run in client.search_runs([exp.experiment_id], max_results=1000):
                kind = run.data.tags.get("journeyrec.kind", "training")
                m = run.data.metrics
                x, y = m.get(mlflow_key(f"{split}/coverage@{k}")), m.get(mlflow_key(f"{split}/ndcg@{k}"))
                if kind == "training" and x is not None and y is not None:
                    points.append({"x": x, "y": y, "label": run.info.run_name, "kind": "run"})
                    n_runs += 1
    plot_accuracy_vs_coverage(
        points,
        d / "accuracy_vs_coverage.png",
        f"coverage@{k} ({split})",
        f"NDCG@{k} ({split})",
        f"accuracy vs coverage: this evaluation and {n_runs} training runs of {experiment or 'n/a'}",
    )
    plots.append(
        (
            "plots/accuracy_vs_coverage.png",
            f"NDCG@{k} against catalogue coverage@{k}: every training run of the "
            "experiment (grey), this model and the baselines",
        )
    )
    if client is not None and source.run_id:
        from journeyrec.tracking import mlflow_key

        hist = {}
        for name in ("train/loss", f"valid/ndcg@{k}", f"valid_seen_excluded/ndcg@{k}"):
            with contextlib.suppress(Exception):
                hist[name] = [
                    (h.step, h.value)
                    for h in sorted(
                        client.get_metric_history(source.run_id, mlflow_key(name)), key=lambda h: (h.step, h.timestamp)
                    )
                ]
        if any(hist.values()):
            plot_training_curves(hist, d / "training_curves.png", f"training run {source.run_id[:8]} (from MLflow)")
            plots.append(("plots/training_curves.png", "Training curves of the training run, read from MLflow"))
    return plots
