"""The S3-Rec results record takes each protocol's figures from the right metrics.json keys (the
picked epoch's test figures for "without refit", the refitted model's for "with refit"), and the
docs table compares them with the published anchor of the same file."""

from __future__ import annotations

import json

import pytest

from benchmarks.s3rec_results import ANCHORS, collect, render


def fake_run(tmp_path, with_before: bool = True):
    metrics = {
        "valid_seen_excluded/ndcg@10": 0.07,
        "epochs": 17.0,
        "best_epoch": 12.0,
        "refit_epochs": 5.0,
        "train_seconds": 300.0,
        "refit_seconds": 100.0,
    }
    for split, ndcg, hr in (("test", 0.0650, 0.1060), ("test_before_refit", 0.0580, 0.0950)):
        if split == "test_before_refit" and not with_before:
            continue
        for name, value in (("ndcg@10", ndcg), ("hr@10", hr)):
            key = f"{split}_seen_excluded/{name}"
            metrics.update({key: value, f"{key}_ci95_low": value - 0.002, f"{key}_ci95_high": value + 0.002})
            metrics[f"{split}/{name}"] = value / 2  # the nothing-excluded protocol: not the table's
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    (tmp_path / "config.yaml").write_text(
        "data:\n  path: ../shared/data/amazon/Beauty.txt\nmodel:\n  name: sasrec\n  mixer: bsa\n"
        "trainer:\n  max_epochs: 60\n  patience: 5\n  ema_decay: 0.99\n  refit_epochs: 5\n"
    )
    return tmp_path


def test_each_protocol_reads_its_own_keys_and_the_table_compares_with_the_anchor(tmp_path):
    rec = collect(
        fake_run(tmp_path),
        "scripts/train.py experiment=s3rec_best",
        450.0,
        "load 2.0",
        date="2026-12-07T00:00:00+00:00",
        commit="abc",
    )
    assert rec["file"] == "Beauty" and rec["name"] == "s3rec_best_Beauty" and rec["commit"] == "abc"
    before = rec["without_refit"]
    assert before["ndcg@10"] == 0.0580 and before["hr@10"] == 0.0950
    assert before["ndcg@10_ci95"] == pytest.approx([0.0560, 0.0600]) and before["hr@10_ci95"] == pytest.approx(
        [0.0930, 0.0970]
    )
    assert rec["with_refit"]["ndcg@10"] == 0.0650 and rec["with_refit"]["hr@10"] == 0.1060
    assert rec["nothing_excluded_ndcg@10"] == {"without_refit": 0.0580 / 2, "with_refit": 0.0650 / 2}
    assert rec["model"]["mixer"] == "bsa" and rec["trainer"]["refit_epochs"] == 5 and rec["wall_seconds"] == 450.0
    table = render([rec])
    published = ANCHORS["Beauty"][1]
    assert f"{0.0580 / published - 1:+.1%}" in table and f"{0.0650 / published - 1:+.1%}" in table
    assert "0.0580 [0.0560, 0.0600]" in table and "17 (12) + 5" in table


def test_a_run_without_the_refit_is_refused_by_name(tmp_path):
    with pytest.raises(KeyError, match="trainer.refit_epochs > 0"):
        collect(fake_run(tmp_path, with_before=False), "cmd", 1.0, "load", commit="abc")
