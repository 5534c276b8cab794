"""Paired comparison of two runs on the same cases, from their per-case ranks.

A run reference is an MLflow run id (its ``per_case.parquet`` artifact: training and evaluation
runs both log one) or a directory / file holding ``per_case.parquet``, optionally followed by
``:<system>`` to pick a system of an evaluation (``abc123:popularity``); without it the run's
own model is used. Cases are paired by (split, user_id, target_item_id); cases present in only
one run are reported and left out. For each metric the output gives both means, the mean of the
per-case difference B - A with its bootstrap 95% interval, and a paired sign-flip permutation
test (journeyrec.evaluation.statistics.paired_comparison).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import pandas as pd
import pyarrow.parquet as pq

from journeyrec.evaluation.metrics import per_case_metrics
from journeyrec.evaluation.rank_kernel import PROTOCOLS
from journeyrec.evaluation.statistics import PairedResult, paired_comparison

__all__ = ["RunCases", "load_cases", "compare_cases", "compare_runs", "format_comparison", "PER_CASE_FILE"]

PER_CASE_FILE = "per_case.parquet"


@dataclass
class RunCases:
    """The per-case ranks of one system of one run."""

    ref: str
    system: str
    frame: pd.DataFrame
    run_id: str | None = None
    fingerprint: str | None = None


def _split_ref(ref: str) -> tuple[str, str | None]:
    if Path(ref).exists() or ":" not in ref:
        return ref, None
    base, system = ref.rsplit(":", 1)
    return base, system or None


def load_cases(ref: str, uri: str | None = None) -> RunCases:
    """Per-case ranks of ``ref`` (see the module docstring)."""
    base, system = _split_ref(ref)
    run_id, fingerprint = None, None
    p = Path(base)
    if p.is_dir():
        p = p / PER_CASE_FILE
    if p.is_file():
        table = pq.read_table(p)
    else:
        import mlflow

        from journeyrec.tracking import mlflow_client, tracking_uri

        uri = tracking_uri(uri)
        client = mlflow_client(uri)
        try:
            run = client.get_run(base)
        except Exception as exc:  # noqa: BLE001 - MLflow's own exception types
            raise ValueError(f"{base!r} is neither a per_case.parquet / directory nor a run in {uri} ({exc})") from exc
        run_id, fingerprint = run.info.run_id, run.data.tags.get("data_fingerprint")
        with tempfile.TemporaryDirectory(prefix="journeyrec-compare-") as tmp:
            try:
                local = mlflow.artifacts.download_artifacts(
                    run_id=run_id, artifact_path=PER_CASE_FILE, dst_path=tmp, tracking_uri=uri
                )
            except Exception as exc:  # noqa: BLE001
                raise ValueError(
                    f"run {run_id} has no {PER_CASE_FILE} artifact (runs from before per-case logging, or a "
                    "sweep parent); evaluate its bundle with scripts/evaluate.py and compare that run"
                ) from exc
            table = pq.read_table(local)
    df = table.to_pandas()
    systems = list(dict.fromkeys(df["model"].tolist()))
    if system is None:
        own = df.loc[df["role"] == "model", "model"].unique().tolist() if "role" in df else systems[:1]
        if len(own) != 1:
            raise ValueError(f"{ref}: pick a system with {base}:<name>; available: {systems}")
        system = own[0]
    if system not in systems:
        raise ValueError(f"{ref}: no system {system!r}; available: {systems}")
    return RunCases(ref, system, df[df["model"] == system].reset_index(drop=True), run_id, fingerprint)


def compare_cases(
    a: RunCases,
    b: RunCases,
    split: str = "test",
    ks: Sequence[int] = (10,),
    metrics: Sequence[str] = ("ndcg", "hr", "mrr"),
    protocols: Sequence[str] = PROTOCOLS,
    n_boot: int = 10000,
    n_perm: int = 10000,
    seed: int = 0,
) -> tuple[list[PairedResult], dict[str, int]]:
    """Paired results (B - A) per protocol x metric x K, and case counts (a, b, paired)."""
    key = ["split", "user_id", "target_item_id"]
    fa = a.frame[a.frame["split"] == split]
    fb = b.frame[b.frame["split"] == split]
    if fa.empty or fb.empty:
        raise ValueError(f"split {split!r}: {len(fa)} cases in A, {len(fb)} in B; choose a split both runs evaluated")
    m = fa.merge(fb, on=key, suffixes=("_a", "_b"), how="inner", validate="one_to_one")
    counts = {"a": len(fa), "b": len(fb), "paired": len(m)}
    if m.empty:
        raise ValueError(
            "no common cases: the runs were evaluated on different data (compare their data_fingerprint tags)"
        )
    out = []
    for protocol in protocols:
        ra = per_case_metrics(m[f"rank_{protocol}_a"].to_numpy(), ks)
        rb = per_case_metrics(m[f"rank_{protocol}_b"].to_numpy(), ks)
        prefix = f"{split}/" if protocol == "all" else f"{split}_{protocol}/"
        for k in ks:
            for name in metrics:
                metric = f"{name}@{k}"
                out.append(paired_comparison(prefix + metric, ra[metric], rb[metric], n_boot, n_perm, seed=seed))
    return out, counts


def format_comparison(a: RunCases, b: RunCases, results: Sequence[PairedResult], counts: dict[str, int]) -> str:
    """The one-screen comparison table."""
    lines = [
        "",
        "=" * 104,
        f"A: {a.ref} (system {a.system}{', run ' + a.run_id if a.run_id else ''})",
        f"B: {b.ref} (system {b.system}{', run ' + b.run_id if b.run_id else ''})",
        f"cases: {counts['paired']} paired (A has {counts['a']}, B has {counts['b']})",
    ]
    if a.fingerprint and b.fingerprint and a.fingerprint != b.fingerprint:
        lines.append(
            f"WARNING: data fingerprints differ ({a.fingerprint} vs {b.fingerprint}); only cases with the same "
            "user and target are paired"
        )
    lines.append(f"{'metric':<30}{'A':>9}{'B':>9}{'B - A':>10}{'95% CI of B - A':>24}{'relative':>10}{'p':>11}")
    for r in results:
        rel = f"{r.diff / r.mean_a * 100:+.1f}%" if r.mean_a else "n/a"
        ci = f"[{r.ci_low:+.4f}, {r.ci_high:+.4f}]"
        lines.append(
            f"{r.metric:<30}{r.mean_a:>9.4f}{r.mean_b:>9.4f}{r.diff:>+10.4f}{ci:>24}{rel:>10}{r.p_value:>11.2g}"
        )
    if results:
        lines.append(
            f"interval: bootstrap of the mean per-case difference; p: {results[0].test}, "
            "smallest possible p = 1/(permutations + 1)"
        )
    lines.append("=" * 104)
    return "\n".join(lines)


def compare_runs(ref_a: str, ref_b: str, uri: str | None = None, **kwargs: Any) -> tuple[str, list[PairedResult]]:
    """Load, compare, format: what scripts/compare_runs.py prints."""
    a, b = load_cases(ref_a, uri), load_cases(ref_b, uri)
    results, counts = compare_cases(a, b, **kwargs)
    return format_comparison(a, b, results, counts), results
