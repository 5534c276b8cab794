"""Readers turn a source format into canonical tables (see ``journeyrec.data.schema``).

Each reader is a function ``read(path, options) -> SourceData`` registered by name; the data
config's ``name`` selects it and ``path`` names the file. Readers are imported lazily so that
adding one costs nothing to the others.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import pyarrow as pa

__all__ = ["SourceData", "READERS", "read_source", "parse_options", "ReaderError"]


class ReaderError(ValueError):
    """A source file cannot be read; the message names the file (and line) and the fix."""


@dataclass
class SourceData:
    """Canonical tables from one source, plus what the reader saw on the way."""

    events: pa.Table
    catalog: pa.Table
    source: str
    stats: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, pa.Table] = field(default_factory=dict)  # e.g. demo ground truth, consent


# name -> "module:function"; the function has signature (path: str | None, options: Mapping) -> SourceData
READERS: dict[str, str] = {
    "demo": "journeyrec.data.readers.demo:read",
    "s3rec": "journeyrec.data.readers.s3rec:read",
    "events": "journeyrec.data.readers.events:read",
}


def read_source(name: str, path: str | None, options: Mapping[str, Any] | None = None) -> SourceData:
    """Read a dataset with the reader registered under ``name``."""
    if name not in READERS:
        raise ReaderError(f"unknown data reader '{name}'; available: {sorted(READERS)}")
    module, func = READERS[name].split(":")
    reader: Callable[[str | None, Mapping[str, Any]], SourceData] = getattr(importlib.import_module(module), func)
    return reader(path, dict(options or {}))


def parse_options(cls: type, options: Mapping[str, Any], reader: str) -> Any:
    """Build a reader's options dataclass, refusing unknown keys with the list of known ones."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ReaderError(
            f"data.options for reader '{reader}' has unknown key(s) {unknown}; known keys: {sorted(known)}"
        )
    return cls(**options)
