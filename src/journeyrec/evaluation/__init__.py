"""Offline evaluation that a sceptical reviewer can check.

* the single source of truth for every number journeyrec reports, one job per module:
  ``rank_kernel`` (each target ranked against every item: tie policy, both protocols, top-k
  lists, labelled sampled ranks; its compiled inner count is ``tile_kernel``), ``metrics``
  (HR / NDCG / MRR@K from ranks, per split and per segment), ``beyond_accuracy`` (coverage,
  diversity, novelty, popularity, Gini of the top-k lists) and ``statistics`` (bootstrap
  intervals, paired test, AUC and its grouped bootstrap);
* ``ranking``: applies a model (or baseline) to evaluation cases: scores -> ranks / top-k;
* ``offline``: one system on a prepared split, every number (used by training and evaluate.py);
* ``segments``: segment labels of cases (new/returning, length, target event, cluster);
* ``pipeline``: scripts/evaluate.py (model + baselines -> metrics.json, report, MLflow run);
* ``report``: Markdown/HTML reports and PNG plots;
* ``compare``: scripts/compare_runs.py (paired comparison of two runs from MLflow or disk);
* ``segmentation``: scripts/segment.py (FAISS k-means on user vectors).
"""
