"""Atomic writes under SIGKILL: every artifact writer of journeyrec (prepared data, checkpoints,
bundles, metrics.json, per-case Parquet, reports and their plots) is killed at random moments while
it rewrites its artifact over and over; after every kill the final name must hold a complete
version (it loads, checksums match, all its parts agree on one version), never an older one than
already seen, and nothing but hidden temporaries may sit beside it. A deliberately naive writer
(plain ``open(..., "w")``, ``naive_json``) runs through the same harness as a control.

    python -m benchmarks atomic-kills --workdir /tmp/kill --trials 100 --seed 20261122 \
        --writers metrics_json,per_case_parquet,checkpoint,prepared,bundle,report,naive_json

It imports everything once, then for each kill forks a writer process (copy-on-write, so a kill
costs milliseconds instead of an interpreter start-up), sleeps a random time of up to three
write durations, SIGKILLs it and inspects the directory. Every other kill is aimed at the I/O
window: the harness polls for the writer's temporary to appear and kills after a random part of
its measured lifetime, so kills land while bytes are being written, fsynced and renamed. One
result row per writer; ``tests/reliability/test_atomic.py`` runs it with a few kills and asserts
on the rows. Run it in a fresh process (it forks): the command line does.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import random
import signal
import time
from pathlib import Path

import faiss
import matplotlib

matplotlib.use("Agg")  # the report writer renders plots without a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import torch  # noqa: E402

from journeyrec.bundle.format import read_manifest, write_bundle  # noqa: E402
from journeyrec.data.prepare import load_prepared, prepare, save_prepared  # noqa: E402
from journeyrec.data.schema import conform_catalog  # noqa: E402
from journeyrec.evaluation.report import Report, _save  # noqa: E402
from journeyrec.io import atomic_path, atomic_write_json, temporaries  # noqa: E402
from journeyrec.models.sasrec import SASRec  # noqa: E402
from journeyrec.training.checkpoint_io import AtomicCheckpointIO, load_checkpoint  # noqa: E402

__all__ = ["CONTROL", "WRITERS", "add_arguments", "harness", "main"]

CONTROL = "naive_json"
WRITERS = ("metrics_json", "per_case_parquet", "checkpoint", "prepared", "bundle", "report", CONTROL)


def _writers(work: Path) -> dict:
    """name -> (final names, write(version), check() -> {final name: version or None})."""
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    faiss.omp_set_num_threads(1)
    w: dict = {}

    metrics = work / "metrics" / "metrics.json"
    keys = [f"test/ndcg@{i}" for i in range(20_000)]

    def check_json(path: Path) -> dict:
        d = json.loads(path.read_text())
        values = set(d.values())
        assert len(d) == len(keys) and len(values) == 1, f"{path.name}: {len(d)} keys, values {sorted(values)[:3]}"
        return {path.name: int(values.pop())}

    w["metrics_json"] = (
        [metrics],
        lambda v: atomic_write_json(metrics, dict.fromkeys(keys, v)),
        lambda: check_json(metrics),
    )

    naive = work / CONTROL / "metrics.json"

    def naive_write(v: int) -> None:
        naive.parent.mkdir(parents=True, exist_ok=True)
        with open(naive, "w") as fh:  # what the audit replaced: truncate, then stream into the final name
            json.dump(dict.fromkeys(keys, v), fh)

    w[CONTROL] = ([naive], naive_write, lambda: check_json(naive))

    ckpt = work / "checkpoints" / "last.ckpt"
    io = AtomicCheckpointIO()

    def check_ckpt() -> dict:
        state = load_checkpoint(ckpt)
        weight = state["state_dict"]["model.w"]
        assert weight.numel() == 500_000 and bool((weight == state["epoch"]).all()), "weights disagree with epoch"
        return {ckpt.name: int(state["epoch"])}

    w["checkpoint"] = (
        [ckpt],
        lambda v: io.save_checkpoint({"state_dict": {"model.w": torch.full((500_000,), float(v))}, "epoch": v}, ckpt),
        check_ckpt,
    )

    prepared = prepare(
        {"name": "demo", "options": {"n_customers": 300, "seed": 3}, "dedup_consecutive": True, "allow_demo_key": True}
    )
    fingerprint = prepared.fingerprint()
    prep_dir = work / "prepared" / "prepared"

    def write_prepared(v: int) -> None:
        prepared.stats["version"] = v
        save_prepared(prepared, prep_dir)

    def check_prepared() -> dict:
        p = load_prepared(prep_dir)
        assert p.fingerprint() == fingerprint, "prepared arrays differ from what was written"
        assert (
            set(p.extras) == set(prepared.extras)
            and p.sequences.catalog.num_rows == prepared.sequences.catalog.num_rows
        )
        return {prep_dir.name: int(p.stats["version"])}

    w["prepared"] = ([prep_dir], write_prepared, check_prepared)

    n = 300
    torch.manual_seed(0)
    model = SASRec(n, d_model=16, n_blocks=1, n_heads=2, max_len=10, dropout=0.0)
    catalog = conform_catalog({"item_id": pa.array([f"sku-{i}" for i in range(1, n + 1)])})
    bundle = work / "bundle" / "bundle"

    def check_bundle() -> dict:
        read_manifest(bundle, verify=True)  # every file present, sizes and sha256 as listed
        v = {json.loads((bundle / name).read_text())["version"] for name in ("config.json", "metrics.json")}
        assert len(v) == 1, f"bundle files from different exports: {v}"
        return {bundle.name: int(v.pop())}

    w["bundle"] = (
        [bundle],
        lambda v: write_bundle(bundle, model, catalog, {"version": v}, {"version": v}),
        check_bundle,
    )

    per_case = work / "per_case" / "per_case.parquet"

    def write_per_case(v: int) -> None:
        table = pa.table({"case": np.arange(200_000), "rank": np.full(200_000, v, np.int64)})
        with atomic_path(per_case) as tmp:
            pq.write_table(table, tmp)

    def check_per_case() -> dict:
        t = pq.read_table(per_case)
        ranks = np.unique(t.column("rank").to_numpy())
        assert t.num_rows == 200_000 and len(ranks) == 1, f"{t.num_rows} rows, ranks {ranks[:3]}"
        return {per_case.name: int(ranks[0])}

    w["per_case_parquet"] = ([per_case], write_per_case, check_per_case)

    rdir = work / "report"
    md, html, png = rdir / "report.md", rdir / "report.html", rdir / "curve.png"

    def write_report(v: int) -> None:
        r = Report(f"version {v}")
        r.table(["row", "value"], [[i, float(v)] for i in range(3000)])
        r.write(rdir)
        fig, ax = plt.subplots(figsize=(3, 2))
        ax.plot(range(50), [v] * 50)
        _save(fig, png)

    def check_report() -> dict:
        m, h, p = md.read_text(), html.read_text(), png.read_bytes()
        assert m.startswith("# version ") and m.endswith("|\n\n"), "report.md is torn"
        assert h.startswith("<!doctype html>") and h.endswith("</html>\n"), "report.html is torn"
        assert p.startswith(b"\x89PNG\r\n\x1a\n") and p.endswith(b"IEND\xaeB`\x82"), "curve.png is torn"
        plt.imread(png)  # decodes every chunk
        version = lambda text: int(text.split("version ", 1)[1].split("<", 1)[0].split("\n", 1)[0])  # noqa: E731
        return {md.name: version(m), html.name: version(h), png.name: None}

    w["report"] = ([md, html, png], write_report, check_report)
    return w


def _inspect(finals: list, check) -> tuple[dict | None, str | None, list, list]:
    """(versions, error, temporaries, unexpected entries) of a writer's directory."""
    temps = sorted({str(t) for f in finals for t in temporaries(f)})
    allowed = {Path(f).name for f in finals} | {Path(t).name for t in temps}
    unexpected = sorted({p.name for f in finals for p in Path(f).parent.iterdir()} - allowed)
    try:
        return check(), None, temps, unexpected
    except Exception as exc:  # noqa: BLE001 - any failure to read is a torn or missing artifact
        return None, f"{type(exc).__name__}: {exc}"[:300], temps, unexpected


def _die_with_parent() -> None:
    """Linux: the forked writer gets SIGKILL if the harness dies (else its 60 s bound ends it)."""
    try:
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _temp_lifetime(finals: list, write, seconds: float) -> float:
    """The shortest lifetime of a temporary seen while a forked writer runs (polling): a kill
    that follows a temporary's appearance within this time lands inside that write. 0 when no
    temporary was seen."""
    pid = os.fork()
    if pid == 0:
        _die_with_parent()
        try:
            deadline = time.time() + seconds + 5
            while time.time() < deadline:
                write(5)
        finally:
            os._exit(0)
    born: dict[str, float] = {}
    spans = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        now_present = _temporaries_of(finals, pid)
        now = time.perf_counter()
        for name in now_present - set(born):
            born[name] = now
        for name in set(born) - now_present:
            spans.append(now - born.pop(name))
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return min(spans) if spans else 0.0


def _temporaries_of(finals: list, pid: int) -> set[str]:
    """Temporaries the writer process ``pid`` has open now (not those of writers killed before)."""
    return {t.name for f in finals for t in temporaries(f) if t.name.startswith(f".{Path(f).name}.{pid}-")}


def _wait_for_temporary(finals: list, pid: int, timeout: float) -> bool:
    end = time.perf_counter() + timeout
    while time.perf_counter() < end:
        if _temporaries_of(finals, pid):
            return True
    return False


def harness(work: Path, trials: int, seed: int, names: list[str]) -> dict:
    """Kill each writer ``trials`` times: even trials at a uniformly random moment of its write
    cycle, odd ones inside the I/O window (once a temporary has appeared, after a random part of
    the shortest lifetime a temporary had), where a non-atomic writer would tear."""
    rng = random.Random(seed)
    writers = _writers(work)
    out = {}
    for name in names:
        finals, write, check = writers[name]
        write(0)
        write(1)
        t = time.perf_counter()
        write(2)
        period = time.perf_counter() - t
        window = _temp_lifetime(finals, write, min(1.5, max(0.3, 4 * period))) if name != CONTROL else 0.0
        last: dict = check()
        res = {
            "trials": trials,
            "write_ms": round(1000 * period, 1),
            "io_window_ms": round(1000 * window, 2),
            "mid_write": 0,
            "completed_before_kill": 0,
            "torn": 0,
            "went_back": 0,
            "unexpected_entries": 0,
            "errors": [],
        }
        for trial in range(trials):
            pid = os.fork()
            if pid == 0:  # the writer: rewrite the artifact until killed (bounded, and dies with the harness)
                code = 0
                _die_with_parent()
                try:
                    deadline = time.time() + 60
                    j = 0
                    while time.time() < deadline:
                        j += 1
                        write((trial + 1) * 1_000_000 + j)
                except BaseException:  # noqa: BLE001
                    code = 1
                os._exit(code)
            if trial % 2 and window > 0 and _wait_for_temporary(finals, pid, 10 * period + 1):
                until = time.perf_counter() + rng.uniform(0, window)
                while time.perf_counter() < until:  # spin: a sleep this short overshoots on a busy machine
                    pass
            else:
                time.sleep(rng.uniform(0, 4 * period))
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            versions, error, temps, unexpected = _inspect(finals, check)
            res["mid_write"] += any(f".{pid}-" in t for t in temps)  # the killed writer's own temporary
            res["unexpected_entries"] += len(unexpected)
            if error is not None:
                res["torn"] += 1
                res["errors"].append(error)
                continue
            for f, v in versions.items():
                if v is not None and last.get(f) is not None and v < last[f]:
                    res["went_back"] += 1
                    res["errors"].append(f"{f}: version {v} after {last[f]}")
            res["completed_before_kill"] += any(
                v is not None and v > 2 and v != last.get(f) for f, v in versions.items()
            )
            last = versions
        if name != CONTROL:
            write(3)  # a successful write cleans up what killed writers left
            res["left_after_next_write"] = sum(len(temporaries(f)) for f in finals)
            _, error, _, _ = _inspect(finals, check)
            res["final_check"] = error or "ok"
        res["errors"] = res["errors"][:5]
        out[name] = res
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workdir", type=Path, required=True, help="where the writers write (emptied artifacts land here)")
    p.add_argument("--trials", type=int, default=100, help="kills per writer")
    p.add_argument("--seed", type=int, default=None, help="seed of the kill times (default: the clock)")
    p.add_argument("--writers", default=",".join(WRITERS), help=f"comma-separated, of {', '.join(WRITERS)}")
    p.add_argument("--threads", type=int, default=1)


def main(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[dict]:
    names = [n for n in args.writers.split(",") if n]
    unknown = sorted(set(names) - set(WRITERS))
    if unknown:
        parser.error(f"--writers: unknown {unknown}; choose from {', '.join(WRITERS)}")
    if args.trials < 1:
        parser.error("--trials: at least 1")
    seed = args.seed if args.seed is not None else int(time.time())
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    args.workdir.mkdir(parents=True, exist_ok=True)
    result = harness(args.workdir, args.trials, seed, names)
    return [{"benchmark": "atomic-kills", "writer": name, "seed": seed, **row} for name, row in result.items()]
