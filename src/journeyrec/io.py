"""Atomic file and directory writes.

Every artifact journeyrec writes (prepared data, checkpoints, metrics, curves, bundles, reports,
per-case tables) goes through these helpers so that a process killed at any moment leaves either
the previous complete version or the new complete version under the final name, never a torn
file. The recipe: write to a temporary sibling in the same directory (same filesystem, so the
rename cannot degrade into a copy), flush + fsync, then rename over the final name.

* Files: ``os.replace`` (atomic on POSIX).
* Directories: built aside, then swapped with the old version in one step by Linux
  ``renameat2(RENAME_EXCHANGE)``; where that is unavailable, the old directory is moved aside
  and the new one moved in (two renames: a kill exactly between them leaves the final name
  absent and the complete old version in a ``.<name>.<pid>-<hex>.old`` sibling).

Temporaries are hidden siblings named ``.<name>.<pid>-<hex>.tmp`` (readers never see them under
the final name). A writer killed mid-write leaves one behind; the next write of the same name
deletes those whose writer process is gone, so repeated kills do not fill the disk.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import re
import shutil
import sys
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

__all__ = ["atomic_write_bytes", "atomic_write_text", "atomic_write_json", "atomic_path", "atomic_dir", "temporaries"]


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _temp_sibling(target: Path, suffix: str = "tmp") -> Path:
    return target.with_name(f".{target.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.{suffix}")


def temporaries(target: str | os.PathLike[str]) -> list[Path]:
    """The temporary siblings of ``target`` (from writers running now or killed earlier)."""
    target = Path(target)
    pattern = re.compile(re.escape(f".{target.name}.") + r"(\d+)-[0-9a-f]{8}\.(tmp|old)")
    if not target.parent.is_dir():
        return []
    return sorted(p for p in target.parent.iterdir() if pattern.fullmatch(p.name))


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _remove_stale(target: Path) -> None:
    """Delete temporaries of ``target`` left by writers that no longer run (killed mid-write)."""
    for p in temporaries(target):
        pid = int(p.name[len(target.name) + 2 :].split("-", 1)[0])
        if _alive(pid):
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path`` atomically.

    Use it for writers that insist on a file name (``np.save``, ``pq.write_table``,
    ``faiss.write_index``, ``torch.save``, ``savefig``). On error the temporary file is removed
    and ``path`` is untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(target)
    tmp = _temp_sibling(target)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    # numpy scalars and paths show up in metrics and manifests; keep the writer forgiving.
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100
_renameat2_fn: Callable[..., int] | None | bool = False  # False: not looked up yet


def _renameat2() -> Callable[..., int] | None:
    global _renameat2_fn
    if _renameat2_fn is False:
        _renameat2_fn = None
        if sys.platform.startswith("linux"):
            with contextlib.suppress(OSError, AttributeError):
                fn = ctypes.CDLL(None, use_errno=True).renameat2
                fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
                fn.restype = ctypes.c_int
                _renameat2_fn = fn
    return _renameat2_fn  # type: ignore[return-value]


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one atomic step; False where the OS or filesystem cannot."""
    fn = _renameat2()
    if fn is None:
        return False
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):  # old kernel, or a filesystem without exchange
        return False
    raise OSError(err, os.strerror(err), str(b))


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Build a directory in a temporary sibling and swap it into place on success.

    If ``path`` already exists, the old version stays readable under ``path`` until the new one
    is complete and is then exchanged with it in one step (see the module docstring). A crash
    during the build leaves only a hidden ``.<name>.<pid>-<hex>.tmp`` sibling, never a
    half-written ``path``.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(target)
    tmp = _temp_sibling(target)
    tmp.mkdir()
    try:
        yield tmp
        for root, dirs, files in os.walk(tmp):
            for name in files:
                with open(os.path.join(root, name), "rb") as fh:
                    os.fsync(fh.fileno())
            for name in dirs:
                _fsync_dir(Path(root) / name)
        _fsync_dir(tmp)
        if target.exists() and _exchange(tmp, target):
            _fsync_dir(target.parent)  # tmp now holds the old version; removed below
        else:
            old = None
            if target.exists():
                old = _temp_sibling(target, "old")
                os.replace(target, old)
            os.replace(tmp, target)
            _fsync_dir(target.parent)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
