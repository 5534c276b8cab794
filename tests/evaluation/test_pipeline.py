"""Offline evaluation end to end on a real tiny training run: scripts/evaluate.py agrees with
training, adds baselines, intervals, reports and an MLflow evaluation run; data rebuilt with other
item ids is aligned to the model; compare_runs and segments work from what was stored."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import compose, run_script

pytestmark = pytest.mark.slow  # training and evaluation runs through the CLI

DATA_ARGS = ["data=demo", "data.options.n_customers=200"]
NOT_METRICS = {"train_seconds", "epochs", "best_epoch"}


@pytest.fixture(scope="module")
def cli_eval(tiny_trained_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval") / "eval"
    proc = run_script(
        "evaluate.py",
        [
            f"bundle={tiny_trained_run.out / 'bundle'}",
            *DATA_ARGS,
            "eval.bootstrap=200",
            "eval.progress=false",
            f"hydra.run.dir={out}",
        ],
        tiny_trained_run.uri,
    )
    return out, proc


def test_training_run_is_tagged_and_keeps_per_case_ranks(tiny_trained_run):
    from mlflow.tracking import MlflowClient

    run = MlflowClient(tiny_trained_run.uri).get_run(tiny_trained_run.run_id)
    tags = run.data.tags
    assert len(tags["git_commit"]) == 40 and tags["seed"] == "42" and tags["pkg.torch"].startswith("2.13.0")
    assert (
        tags["data_fingerprint"]
        == json.loads((tiny_trained_run.out / "prepared" / "prepared.json").read_text())["fingerprint"]
    )
    per_case = pq.read_table(tiny_trained_run.out / "per_case.parquet").to_pandas()
    m = json.loads((tiny_trained_run.out / "metrics.json").read_text())
    test = per_case[per_case.split == "test"]
    assert len(test) == m["test/n_cases"]
    assert np.mean(test.rank_all < 10) == pytest.approx(m["test/hr@10"])
    assert m["test/ndcg@10_ci95_low"] <= m["test/ndcg@10"] <= m["test/ndcg@10_ci95_high"]
    assert 0 < m["test/coverage@10"] <= 1 and "per_case.parquet" in {
        a.path for a in MlflowClient(tiny_trained_run.uri).list_artifacts(run.info.run_id)
    }


def test_repeated_targets_are_misses_when_seen_items_are_excluded(tiny_trained_run):
    """On the demo shop (consumables come back), a test target that repeats an earlier item is a
    miss in training's seen-excluded figures, exactly as a plain re-implementation of S3-Rec's
    rule scores the bundle's model (history scores to -inf, target included, then the top 10);
    metrics.json and the dataset card report the share of such cases."""
    import torch

    from journeyrec.data.datasets import EvalWindows
    from journeyrec.data.prepare import load_prepared
    from journeyrec.data.sequences import repeated_targets
    from journeyrec.evaluation.rank_kernel import MISS_RANK
    from journeyrec.serving import Recommender

    prep = load_prepared(tiny_trained_run.out / "prepared")
    cases = prep.split.test
    repeat = repeated_targets(prep.sequences, cases)
    assert 0 < repeat.sum() < len(cases)  # both kinds of cases: the test can fail
    m = json.loads((tiny_trained_run.out / "metrics.json").read_text())
    assert m["test/repeat_target_share"] == pytest.approx(repeat.mean())
    card = json.loads((tiny_trained_run.out / "prepared" / "dataset_card.json").read_text())
    assert card["split"]["test_repeat_target_share"] == pytest.approx(repeat.mean(), abs=1e-6)
    per_case = pq.read_table(tiny_trained_run.out / "per_case.parquet").to_pandas()
    ranks = per_case[per_case.split == "test"].rank_seen_excluded.to_numpy()
    assert (ranks[repeat] == MISS_RANK).all() and (ranks[~repeat] < prep.sequences.n_items).all()
    model = Recommender.load(tiny_trained_run.out / "bundle").model.eval()
    batch = EvalWindows(prep.sequences, cases, model.max_len, model.feature_names).__getitems__(list(range(len(cases))))
    with torch.no_grad():
        scores = (
            model.session_vectors(batch["items"], {f: batch[f] for f in model.feature_names}) @ model.item_vectors().T
        )
    scores[:, 0] = -torch.inf
    scores[batch["history_rows"], batch["history_items"]] = -torch.inf
    top = torch.topk(scores, 10, dim=1).indices
    hit = (top == torch.from_numpy(cases.targets)[:, None]).any(dim=1).numpy()
    assert not hit[repeat].any()
    assert np.array_equal(hit, ranks < 10)
    assert m["test_seen_excluded/hr@10"] == pytest.approx(hit.mean(), abs=1e-9)
    assert (per_case[per_case.split == "test"].rank_all.to_numpy()[repeat] < prep.sequences.n_items).all()


def test_evaluate_cli_agrees_with_training_to_1e6(tiny_trained_run, cli_eval):
    out, _ = cli_eval
    trained = json.loads((tiny_trained_run.out / "metrics.json").read_text())
    evaluated = json.loads((out / "metrics.json").read_text())
    keys = [k for k in trained if k not in NOT_METRICS]
    assert "test/ndcg@10" in keys and "test/ndcg@10_ci95_high" in keys and "valid_seen_excluded/hr@20" in keys
    for key in keys:
        assert abs(evaluated[key] - trained[key]) <= 1e-6, key


def test_evaluate_cli_outputs_baselines_intervals_report_and_mlflow_run(tiny_trained_run, cli_eval):
    from mlflow.tracking import MlflowClient

    out, proc = cli_eval
    m = json.loads((out / "metrics.json").read_text())
    for base in ("popularity", "recent_popularity", "cooccurrence"):
        for key in ("test/ndcg@10", "test_seen_excluded/hr@20", "test/coverage@10", "test/novelty@10"):
            assert f"{base}/{key}" in m
        lo, hi = m[f"{base}/test/hr@10_ci95_low"], m[f"{base}/test/hr@10_ci95_high"]
        assert lo <= m[f"{base}/test/hr@10"] <= hi
    n_items = json.loads((tiny_trained_run.out / "bundle" / "manifest.json").read_text())["n_items"]
    assert m["popularity/test/coverage@10"] == pytest.approx(10 / n_items)  # one list for everybody
    assert m["test/tie_rate"] >= 0 and m["popularity/test/tie_rate"] == 0.0
    assert not [k for k in m if "sampled" in k]  # full ranking only unless asked
    for segmenter in ("user_type", "length", "target_event"):
        n = sum(v for k, v in m.items() if k.startswith(f"segments/test/{segmenter}/") and k.endswith("/n_cases"))
        assert n == m["test/n_cases"], segmenter
    assert m["segments/test/user_type/returning/n_cases"] > 0  # the demo shop has repeat visits
    md = (out / "report.md").read_text()
    html = (out / "report.html").read_text()
    for needle in (
        "Provenance",
        "seen_excluded",
        "popularity",
        "recent_popularity",
        "Lift over the baselines",
        "coverage@10",
        "Breakdown by segment",
        "tie_policy",
    ):
        assert needle in md, needle
    pngs = sorted(p.name for p in (out / "plots").glob("*.png"))
    assert {"metric_vs_k_all.png", "popularity.png", "accuracy_vs_coverage.png", "training_curves.png"} <= set(pngs)
    for name in pngs:
        assert (out / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"plots/{name}" in md and f"plots/{name}" in html
    assert (
        "report" in proc.stdout and "NDCG@10" in proc.stdout and "[" in proc.stdout
    )  # one-screen summary with intervals
    client = MlflowClient(tiny_trained_run.uri)
    exp = client.get_experiment_by_name("demo")
    runs = client.search_runs([exp.experiment_id], filter_string="tags.`journeyrec.kind` = 'evaluation'")
    run = next(r for r in runs if r.data.tags.get("source_run_id") == tiny_trained_run.run_id)
    assert run.data.tags["mlflow.parentRunId"] == tiny_trained_run.run_id
    assert run.data.metrics["popularity/test/ndcg_at_10"] == pytest.approx(m["popularity/test/ndcg@10"])
    arts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"metrics.json", "per_case.parquet", "report.md", "report.html", "plots"} <= arts


def test_evaluate_log_holds_the_progress_and_the_summary(tiny_trained_run, cli_eval):
    """Hydra's job log of scripts/evaluate.py used to be empty: every step now goes through logging."""
    out, _ = cli_eval
    log = (out / "evaluate.log").read_text()
    m = json.loads((out / "metrics.json").read_text())
    n_items = json.loads((tiny_trained_run.out / "bundle" / "manifest.json").read_text())["n_items"]
    for needle in (
        f"model sasrec ({n_items} items)",
        "data demo shop",
        "split leave_one_out",
        "evaluated sasrec in",
        "evaluated popularity in",
        "evaluated cooccurrence in",
        f"wrote metrics.json, per_case.parquet and evaluation.json to {out}",
        f"wrote the report: {out / 'report.html'}",
        "logged MLflow run",
        "NDCG@10",
    ):
        assert needle in log, needle
    assert f"test/ndcg@10 {m['test/ndcg@10']:.4f} [" in log  # each system's headline figure, as computed


def test_compare_runs_prints_paired_difference(tiny_trained_run, cli_eval):
    from mlflow.tracking import MlflowClient

    out, _ = cli_eval
    client = MlflowClient(tiny_trained_run.uri)
    exp = client.get_experiment_by_name("demo")
    eval_run = client.search_runs([exp.experiment_id], filter_string="tags.`journeyrec.kind` = 'evaluation'")[
        0
    ].info.run_id
    proc = run_script(
        "compare_runs.py",
        [f"{eval_run}:popularity", eval_run, "--n-boot", "500", "--n-perm", "500"],
        tiny_trained_run.uri,
    )
    m = json.loads((out / "metrics.json").read_text())
    line = next(x for x in proc.stdout.splitlines() if x.startswith("test/ndcg@10 "))
    a, b, diff = (float(v) for v in line.split()[1:4])
    assert a == pytest.approx(m["popularity/test/ndcg@10"], abs=1e-4) and b == pytest.approx(
        m["test/ndcg@10"], abs=1e-4
    )
    assert diff == pytest.approx(b - a, abs=2e-4)
    assert "95% CI of B - A" in proc.stdout and "sign-flip" in proc.stdout
    # the training run against its own evaluation (in process): identical cases, zero difference
    from journeyrec.evaluation.compare import compare_runs

    text, results = compare_runs(tiny_trained_run.run_id, eval_run, tiny_trained_run.uri, n_boot=200, n_perm=200)
    assert all(r.diff == 0 and r.ci_low == r.ci_high == 0 and r.p_value == 1 for r in results) and len(results) == 6
    with pytest.raises(ValueError, match="available"):
        compare_runs(f"{eval_run}:nope", eval_run, tiny_trained_run.uri)


def test_evaluate_by_run_id_rebuilds_data_from_the_bundle_config(tiny_trained_run, tmp_path):
    from journeyrec.evaluation.pipeline import run_evaluation

    cfg = compose(
        "evaluate",
        [
            f"run_id={tiny_trained_run.run_id}",
            f"logger.tracking_uri={tiny_trained_run.uri}",
            "splits=[test]",
            "eval.baselines=[popularity]",
            "eval.bootstrap=0",
            "report=false",
            "eval.progress=false",
            f"output_dir={tmp_path / 'e'}",
            "logger.mlflow=false",
        ],
    )
    res = run_evaluation(cfg)
    trained = json.loads((tiny_trained_run.out / "metrics.json").read_text())
    for key in ("test/ndcg@10", "test_seen_excluded/hr@20", "test/coverage@20"):
        assert res.metrics[key] == pytest.approx(trained[key], abs=1e-6)
    assert "popularity/test/ndcg@10" in res.metrics and not any(k.startswith("valid") for k in res.metrics)


def test_rebuilt_data_with_other_item_ids_is_aligned_to_the_model(tiny_trained_run):
    from journeyrec.bundle.format import read_bundle
    from journeyrec.data.prepare import PreparedData, load_prepared
    from journeyrec.data.sequences import EvalCases, SequenceData, Split
    from journeyrec.evaluation.config import EvalConfig
    from journeyrec.evaluation.offline import align_items, evaluate_system
    from journeyrec.evaluation.rank_kernel import MISS_RANK

    rec = read_bundle(tiny_trained_run.out / "bundle")
    prep = load_prepared(tiny_trained_run.out / "prepared")
    cfg = EvalConfig(ks=[10], bootstrap=0, beyond_accuracy=False)
    base = evaluate_system(rec.model, prep, cfg, splits=["test"])
    s = prep.sequences
    # the same data with internal ids in another order (as another preparation might produce)
    perm = np.random.default_rng(0).permutation(s.n_items)  # new id j+1 holds old item perm[j] + 1
    new_of_old = np.empty(s.n_items + 1, dtype=np.int64)
    new_of_old[perm + 1] = np.arange(1, s.n_items + 1)
    shuffled = SequenceData(
        s.item_ids[perm],
        s.user_ids,
        s.offsets,
        new_of_old[s.items].astype(np.int32),
        s.event_types,
        s.channels,
        s.timestamps,
        s.catalog.take(pa.array(perm)),
    )
    sp = prep.split
    remap = lambda c: EvalCases(c.users, c.ends, new_of_old[c.targets])  # noqa: E731
    other = PreparedData(shuffled, Split(sp.kind, sp.train_ends, remap(sp.valid), remap(sp.test)), prep.source)
    aligned, unknown = align_items(other, rec.item_ids, rec.catalog)
    assert not unknown["test"].any()
    again = evaluate_system(rec.model, aligned, cfg, splits=["test"], unknown_targets=unknown)
    assert np.array_equal(again.ranks["test"]["all"], base.ranks["test"]["all"])
    assert again.metrics["test/ndcg@10"] == pytest.approx(base.metrics["test/ndcg@10"], abs=1e-9)
    # an item the model never saw: dropped from inputs, its target cases are misses
    target = int(sp.test.targets[0])
    ids = s.item_ids.copy()
    ids[target - 1] = "NEVER-SEEN"
    renamed = PreparedData(
        SequenceData(ids, s.user_ids, s.offsets, s.items, s.event_types, s.channels, s.timestamps, s.catalog),
        sp,
        prep.source,
    )
    aligned, unknown = align_items(renamed, rec.item_ids, rec.catalog)
    assert aligned.stats["items_unknown_to_model"] == 1
    assert unknown["test"].sum() == (sp.test.targets == target).sum() > 0
    res = evaluate_system(rec.model, aligned, cfg, splits=["test"], unknown_targets=unknown)
    assert (res.ranks["test"]["all"][unknown["test"]] == MISS_RANK).all()
    assert (res.ranks["test"]["seen_excluded"][unknown["test"]] == MISS_RANK).all()
    assert res.metrics["test/unknown_target_rate"] == pytest.approx(unknown["test"].mean())


def test_segments_feed_the_breakdown_and_sampled_metrics_are_labelled(tiny_trained_run, tmp_path):
    from journeyrec.evaluation.pipeline import run_evaluation
    from journeyrec.evaluation.segmentation import run_segmentation

    seg_cfg = compose("segment", [f"bundle={tiny_trained_run.out / 'bundle'}", "k=3", f"output_dir={tmp_path / 'seg'}"])
    seg, out = run_segmentation(seg_cfg)
    table = pq.read_table(out / "segments.parquet").to_pandas()
    assert set(table.segment) == {0, 1, 2} and table.user_id.is_unique
    desc = json.loads((out / "segments.json").read_text())["segments"]
    assert sum(d["users"] for d in desc) == len(table) and all(d["top_categories"] != "n/a" for d in desc)
    assert "top categories" in (out / "report.md").read_text()
    cfg = compose(
        "evaluate",
        [
            f"bundle={tiny_trained_run.out / 'bundle'}",
            f"eval.segments={out / 'segments.parquet'}",
            "splits=[test]",
            "eval.baselines=[popularity]",
            "eval.bootstrap=100",
            "eval.sampled_negatives=20",
            "eval.progress=false",
            f"output_dir={tmp_path / 'e'}",
            "logger.mlflow=false",
        ],
    )
    res = run_evaluation(cfg)
    m = res.metrics
    clusters = {k.split("/")[3] for k in m if k.startswith("segments/test/cluster/")}
    assert clusters <= {"c0", "c1", "c2"} and len(clusters) >= 2
    assert sum(m[f"segments/test/cluster/{c}/n_cases"] for c in clusters) == m["test/n_cases"]
    assert "test_sampled20/ndcg@10" in m and "popularity/test_sampled20/hr@10_ci95_low" in m
    assert m["test_sampled20/hr@10"] >= m["test_seen_excluded/hr@10"]  # 20 negatives are easier than all items
    md = (tmp_path / "e" / "report.md").read_text()
    assert "SAMPLED metrics: 20 negatives" in md and "Segmenter `cluster`" in md
    assert "sampled_negatives`: 20" in md


def test_bad_inputs_are_named(tiny_trained_run, tmp_path):
    from journeyrec.evaluation.pipeline import run_evaluation

    with pytest.raises(ValueError, match="exactly one of bundle"):
        run_evaluation(compose("evaluate", [f"output_dir={tmp_path}", "logger.mlflow=false"]))
    broken = tmp_path / "bundle"
    shutil.copytree(tiny_trained_run.out / "bundle", broken)
    (broken / "index.faiss").write_bytes(b"x")
    from journeyrec.bundle.format import BundleError

    with pytest.raises(BundleError, match="index.faiss"):
        run_evaluation(compose("evaluate", [f"bundle={broken}", f"output_dir={tmp_path / 'o'}", "logger.mlflow=false"]))
    with pytest.raises(ValueError, match="unknown baseline"):
        run_evaluation(
            compose(
                "evaluate",
                [
                    f"bundle={tiny_trained_run.out / 'bundle'}",
                    "eval.baselines=[pop]",
                    "splits=[test]",
                    f"output_dir={tmp_path / 'o2'}",
                    "logger.mlflow=false",
                    "eval.progress=false",
                ],
            )
        )
