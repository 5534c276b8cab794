"""Jobs started together on a new SQLite MLflow store (two trainings launched from one shell line,
a sweep's parallel launcher) all open it: the first creates the tables while the others wait,
instead of every process creating them and all but one failing ("table runs already exists")."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

PROCESSES = 4


def _open_store(uri: str, barrier, results) -> None:  # pragma: no cover - runs in a child process
    from journeyrec.tracking import mlflow_client

    barrier.wait()  # every process opens the store at the same moment
    try:
        mlflow_client(uri).search_experiments()
        results.put("ok")
    except Exception as exc:  # noqa: BLE001 - the failure is the finding
        results.put(f"{type(exc).__name__}: {str(exc).splitlines()[0]}")


def test_processes_opening_a_new_sqlite_store_at_once_all_succeed(tmp_path: Path):
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(PROCESSES), ctx.Queue()
    procs = [ctx.Process(target=_open_store, args=(uri, barrier, results)) for _ in range(PROCESSES)]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert outcomes == ["ok"] * PROCESSES
    assert (tmp_path / ".mlruns.db.lock").is_file()  # the lock beside the store, hidden
