"""Offline evaluation that a sceptical reviewer can check.

* ``metrics``: THE metric functions (ranks with the tie policy, accuracy, beyond accuracy,
  bootstrap intervals, paired test, labelled sampled ranks, segment breakdowns);
* ``ranking``: applies a model (or baseline) to evaluation cases: scores -> ranks / top-k;
* ``offline``: one system on a prepared split, every number (used by training and evaluate.py);
* ``segments``: segment labels of cases (new/returning, length, target event, cluster);
* ``pipeline``: scripts/evaluate.py (model + baselines -> metrics.json, report, MLflow run);
* ``report``: Markdown/HTML reports and PNG plots;
* ``compare``: scripts/compare_runs.py (paired comparison of two runs from MLflow or disk);
* ``segmentation``: scripts/segment.py (FAISS k-means on user vectors).
"""
