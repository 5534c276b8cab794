"""Result files for the docs: one JSON per measurement under ``docs/results/``, holding what a
reader needs to trust and repeat a figure (the command, the machine, threads, date, commit) next
to the figures themselves. The docs pages' tables are filled from these files."""

from __future__ import annotations

import os
import platform
import shlex
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Mapping

from journeyrec.io import atomic_write_json

__all__ = ["RESULTS_DIR", "machine", "commit", "started_commit", "command_line", "write_result"]

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "docs" / "results"


def machine() -> str:
    """``"2-core AMD EPYC 7B13 VM, no GPU"``: CPU model and count, and the GPU if torch sees one."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = "no GPU"
    try:
        import torch  # a result file may be written where torch is not imported yet

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return f"{os.cpu_count()}-core {model}, {gpu}"


def commit() -> str:
    """The checked-out commit, with ``-dirty`` when tracked files differ from it."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False).stdout.strip()

    sha = git("rev-parse", "HEAD") or "unknown"
    return sha + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def command_line() -> str:
    """How this process was started, as a shell line (``python -m benchmarks ...``)."""
    argv = list(sys.argv)
    if argv and argv[0].endswith("__main__.py"):
        argv[0] = "-m " + Path(argv[0]).parent.name
    return "python " + " ".join(a if a.startswith("-m ") else shlex.quote(a) for a in argv)


# the commit of the code this process runs, taken when it starts (results are written at the end)
_STARTED_AT = None


def started_commit() -> str:
    global _STARTED_AT
    if _STARTED_AT is None:
        _STARTED_AT = commit()
    return _STARTED_AT


def write_result(
    name: str,
    figures: Mapping[str, Any],
    threads: int,
    path: str | Path | None = None,
    command: str | None = None,
    **extra: Any,
) -> Path:
    """Write ``docs/results/<name>.json`` (or ``path``) atomically and return its path; ``commit``
    is the one checked out when this process first asked (:func:`started_commit`)."""
    out = Path(path) if path is not None else RESULTS_DIR / f"{name}.json"
    record = {
        "name": name,
        "command": command or command_line(),
        "machine": machine(),
        "threads": int(threads),
        "date": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "commit": started_commit(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        **extra,
        "figures": dict(figures),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out, record)
    return out
