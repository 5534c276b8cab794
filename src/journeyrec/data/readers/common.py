"""Building blocks shared by the readers: locating files, streaming delimited text with line
numbers, lenient vectorised parsing (a bad value becomes null plus a reason, never an
exception), and collecting item attributes while streaming.

Streaming text is pyarrow's incremental CSV reader with every column read as a string: parsing
values is done afterwards by Arrow kernels, so one odd value cannot abort a 10 GB file, and
rows with the wrong number of fields are handed back with their physical line number (the
reader runs single-threaded for that: pyarrow knows line numbers only then).
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from journeyrec.data.readers import ReaderError
from journeyrec.data.schema import EVENT_SCHEMA, SchemaError

__all__ = [
    "BLOCK_BYTES",
    "find_file",
    "find_files",
    "read_header",
    "DelimitedChunk",
    "iter_delimited",
    "parse_epoch",
    "parse_datetime",
    "parse_float",
    "map_values",
    "constant",
    "make_batch",
    "flag_value",
    "Structural",
    "CatalogCollector",
    "JsonChunk",
    "iter_jsonl",
    "records_as_strings",
]

# A line that is not a row: (line, detail), reason ``malformed_row``; or (line, detail, reason)
# with another of schema.READER_REASONS.
Structural = tuple[int, str] | tuple[int, str, str]

BLOCK_BYTES = 32 << 20  # bytes of text per streamed block (~1M rows of a typical log)
_UNITS_MS = {"s": 1000.0, "ms": 1.0, "us": 1e-3, "ns": 1e-6}
_TS = pa.timestamp("ms", tz="UTC")


def find_file(path: str | None, candidates: Sequence[str], reader: str, what: str = "events") -> Path:
    """``path`` itself when it is a file, else the first of ``candidates`` (glob patterns, in
    order of preference) inside the directory ``path``."""
    found = find_files(path, candidates, reader, what, first_only=True)
    return found[0]


def find_files(
    path: str | None, candidates: Sequence[str], reader: str, what: str = "events", first_only: bool = False
) -> list[Path]:
    """All files matching the first candidate pattern that matches anything (sorted by name)."""
    if not path:
        raise ReaderError(
            f"data.path is required for data={reader}: the {what} file or the directory holding {list(candidates)}"
        )
    p = Path(path)
    if p.is_file():
        return [p]
    if not p.is_dir():
        raise ReaderError(f"{p}: no such file or directory (set data.path for data={reader})")
    for pattern in candidates:
        hits = sorted(x for x in p.glob(pattern) if x.is_file())
        if hits:
            return hits[:1] if first_only else hits
    raise ReaderError(f"{p}: no {what} file for data={reader}; looked for {list(candidates)}")


def _open_text(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def read_header(path: Path, delimiter: str, encoding: str = "utf-8") -> list[str]:
    """Column names from the first line of a delimited text file (gzip allowed)."""
    with _open_text(path) as fh:
        first = fh.readline().decode(encoding, errors="replace").rstrip("\r\n")
    if not first:
        raise ReaderError(f"{path}: empty file (expected a header line)")
    return [c.strip().strip('"') for c in first.split(delimiter)]


@dataclass
class DelimitedChunk:
    """One streamed block: string columns, the line number of every row, and the lines that are
    not rows and were therefore not parsed: (line, detail) for the wrong number of fields
    (``malformed_row``), (line, detail, reason) for ``blank_line`` and ``repeated_header``."""

    table: pa.Table
    lines: np.ndarray
    malformed: list[Structural] = field(default_factory=list)


def iter_delimited(
    path: Path,
    *,
    delimiter: str,
    usecols: Sequence[str],
    names: Sequence[str] | None = None,
    encoding: str = "utf-8",
    quoting: bool = True,
    block_bytes: int = BLOCK_BYTES,
) -> Iterator[DelimitedChunk]:
    """Stream a delimited text file (gzip allowed) as string columns with line numbers.

    ``names`` given: the file has no header and these are its columns; otherwise the first line
    is the header and every name in ``usecols`` must be in it (else SchemaError naming the file,
    the missing column and the columns it has).
    """
    header = names is None
    if names is None:
        file_names = read_header(path, delimiter, encoding)
        missing = [c for c in usecols if c not in file_names]
        if missing:
            raise SchemaError(f"{path}: missing required column(s) {missing}; the file has {file_names}")
    else:
        file_names = list(names)
    first_line = 2 if header else 1
    bad: list[Structural] = []
    expected = len(file_names)

    def on_invalid(row: pacsv.InvalidRow) -> str:
        bad.append((int(row.number), f"expected {expected} fields, got {row.actual_columns}"))
        return "skip"

    read_opts = pacsv.ReadOptions(
        use_threads=False,
        block_size=block_bytes,
        encoding=encoding,
        column_names=None if header else list(file_names),
        skip_rows=0,
    )
    parse_opts = pacsv.ParseOptions(
        delimiter=delimiter,
        quote_char='"' if quoting else False,
        ignore_empty_lines=False,
        invalid_row_handler=on_invalid,
    )
    convert_opts = pacsv.ConvertOptions(
        column_types={c: pa.string() for c in file_names},
        include_columns=list(usecols),
        strings_can_be_null=True,
        null_values=[""],
        quoted_strings_can_be_null=True,
    )
    try:
        stream = pa.input_stream(str(path), compression="detect")
        reader = pacsv.open_csv(stream, read_options=read_opts, parse_options=parse_opts, convert_options=convert_opts)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ReaderError(f"{path}: cannot read as delimited text ({exc})") from exc
    rows_before = 0
    reported = 0
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            break
        except (pa.ArrowInvalid, OSError) as exc:
            raise ReaderError(f"{path}: cannot read after line ~{first_line + rows_before}: {exc}") from exc
        n = batch.num_rows
        # line of data row r = first_line + r + (number of skipped lines before it). With S the
        # skipped lines (0-based from first_line, ascending), hole j precedes S[j] - j data rows.
        skipped = np.asarray([b[0] - first_line for b in bad], dtype=np.int64)
        holes_before = skipped - np.arange(len(skipped))
        r = rows_before + np.arange(n, dtype=np.int64)
        lines = first_line + r + np.searchsorted(holes_before, r, side="right")
        new_bad: list[Structural] = list(bad[reported:])
        reported = len(bad)
        rows_before += n
        table = pa.Table.from_batches([batch])
        table, lines, not_rows = _drop_non_rows(table, lines, header)
        yield DelimitedChunk(table, lines, sorted(new_bad + not_rows))
    if len(bad) > reported:
        empty = pa.table({c: pa.array([], pa.string()) for c in usecols})
        yield DelimitedChunk(empty, np.zeros(0, np.int64), bad[reported:])


def _drop_non_rows(table: pa.Table, lines: np.ndarray, header: bool) -> tuple[pa.Table, np.ndarray, list[Structural]]:
    """Take blank lines and repeated header lines out of a block, as structural rows with their
    reason: parsed, a blank line is a row of nulls (Arrow keeps it to keep line numbers exact)
    and a repeated header a row of column names, and either would otherwise be reported for
    whichever of its values a later check reads first."""
    if table.num_rows == 0 or table.num_columns == 0:
        return table, lines, []
    blank = np.ones(table.num_rows, dtype=bool)
    for col in table.columns:
        blank &= np.asarray(pc.is_null(col), dtype=bool)
    again = np.zeros(table.num_rows, dtype=bool)
    if header:
        again = np.ones(table.num_rows, dtype=bool)
        for name in table.column_names:
            again &= np.asarray(pc.fill_null(pc.equal(pc.utf8_trim(table.column(name), '" '), name), False), dtype=bool)
    drop = blank | again
    if not drop.any():
        return table, lines, []
    out: list[Structural] = [
        (int(x), f"no value in the columns read ({', '.join(table.column_names)})", "blank_line") for x in lines[blank]
    ]
    out += [
        (int(x), "the header line again (files concatenated with their headers?)", "repeated_header")
        for x in lines[again]
    ]
    return table.filter(pa.array(~drop)), lines[~drop], out


def parse_epoch(col: pa.ChunkedArray | pa.Array, unit: str, source: str = "") -> tuple[pa.Array, pa.Array]:
    """Epoch numbers (as text or numbers) in ``unit`` -> (timestamp[ms, UTC] with nulls where the
    value does not parse, the source text of exactly those values)."""
    if unit not in _UNITS_MS:
        raise ReaderError(f"{source}: timestamp_unit must be one of {sorted(_UNITS_MS) + ['iso']}, got {unit!r}")
    values = parse_float(col)
    ms = values.to_numpy(zero_copy_only=False) * _UNITS_MS[unit]
    ok = np.isfinite(ms) & (np.abs(ms) < 9e15)
    ts = pa.array(np.round(np.where(ok, ms, 0)).astype(np.int64), type=pa.int64(), mask=~ok).cast(_TS)
    return ts, _raw_where_failed(col, ts)


def parse_datetime(col: pa.ChunkedArray | pa.Array, fmt: str | None = None) -> tuple[pa.Array, pa.Array]:
    """Date-time text -> (timestamp[ms, UTC], source text where it failed). ``fmt``: a strptime
    format (UTC assumed), or None for ISO-8601 (with optional fraction and 'Z' / offset)."""
    s = _as_string(col)
    if fmt is not None:
        ts = pc.strptime(s, format=fmt, unit="ms", error_is_null=True)
        ts = pc.cast(ts, pa.timestamp("ms")).cast(_TS) if ts.type.tz is None else ts.cast(_TS)
        return ts, _raw_where_failed(s, ts)
    try:
        ts = _iso_cast(s)
    except pa.ArrowInvalid:  # some value is bad: parse the distinct values one by one
        from datetime import datetime

        uniq = pc.unique(s).drop_null()
        parsed: list[int | None] = []
        for v in uniq.to_pylist():
            try:
                d = datetime.fromisoformat(v.strip())
                d = d.replace(tzinfo=UTC) if d.tzinfo is None else d.astimezone(UTC)
                parsed.append(int(round(d.timestamp() * 1000)))
            except (ValueError, OverflowError):
                parsed.append(None)
        ts = pc.take(pa.array(parsed, pa.int64()), pc.index_in(s, value_set=uniq)).cast(_TS)
    return ts, _raw_where_failed(s, ts)


def _iso_cast(s: pa.Array) -> pa.Array:
    try:
        return pc.cast(s, _TS)
    except pa.ArrowInvalid:
        return pc.cast(pc.cast(s, pa.timestamp("ms")), _TS)  # naive ISO text: assume UTC


def _as_string(col: pa.ChunkedArray | pa.Array) -> pa.Array:
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    return pc.cast(col, pa.string())


def _raw_where_failed(col: pa.ChunkedArray | pa.Array, parsed: pa.Array) -> pa.Array:
    s = _as_string(col)
    failed = pc.and_(pc.is_null(parsed), pc.is_valid(s))
    return pc.if_else(failed, s, pa.scalar(None, pa.string()))


_NUMBER = r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$"


def parse_float(col: pa.ChunkedArray | pa.Array) -> pa.Array:
    """Numbers (text or numeric) -> float64, null where the text is not a number."""
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
        return pc.cast(col, pa.float64())
    s = pc.cast(col, pa.string())
    ok = pc.fill_null(pc.match_substring_regex(s, _NUMBER), False)
    return pc.cast(pc.utf8_trim_whitespace(pc.if_else(ok, s, pa.scalar(None, pa.string()))), pa.float64())


def map_values(col: pa.ChunkedArray | pa.Array, mapping: Mapping[str, str]) -> pa.Array:
    """Map source values to canonical ones; values not in ``mapping`` keep their spelling (so
    validation can report them as unknown)."""
    s = _as_string(col)
    if not mapping:
        return s
    keys = pa.array(list(mapping), pa.string())
    vals = pa.array(list(mapping.values()), pa.string())
    idx = pc.index_in(s, value_set=keys)
    return pc.if_else(pc.is_null(idx), s, pc.take(vals, idx))


def constant(value: str | None, n: int) -> pa.Array:
    return pa.nulls(n, pa.string()) if value is None else pa.repeat(pa.scalar(value, pa.string()), n)


def _file_column(file: str, n: int) -> pa.Array:
    """The source file of every row, dictionary-encoded: one string per batch, not per row."""
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, dtype=np.int32)), pa.array([file], pa.string()))


def make_batch(
    columns: Mapping[str, pa.Array | pa.ChunkedArray],
    *,
    file: str,
    lines: np.ndarray | pa.Array,
    malformed: Sequence[Structural] = (),
    reasons: pa.Array | None = None,
    values: pa.Array | None = None,
    ts_raw: pa.Array | None = None,
) -> pa.Table:
    """A reader batch: canonical columns (names from EVENT_SCHEMA) + ``_file``, ``_line``,
    ``_reason``, ``_detail``, ``_value`` (the source text behind a reason, see :func:`flag_value`),
    ``_ts_raw``; lines that are not rows (``malformed``) are appended as rows whose only content
    is their line, detail and reason (``malformed_row`` unless given)."""
    unknown = sorted(set(columns) - set(EVENT_SCHEMA.names))
    if unknown:
        raise ValueError(f"make_batch: not canonical columns {unknown}")
    n = len(lines)
    cols: dict[str, pa.Array] = {}
    for f in EVENT_SCHEMA:
        if f.name in columns:
            c = columns[f.name]
            c = c.combine_chunks() if isinstance(c, pa.ChunkedArray) else c
            cols[f.name] = pc.cast(c, f.type)
    cols["_file"] = _file_column(file, n)
    cols["_line"] = (
        pa.array(np.asarray(lines, dtype=np.int64)) if not isinstance(lines, pa.Array) else pc.cast(lines, pa.int64())
    )
    cols["_reason"] = reasons if reasons is not None else pa.nulls(n, pa.string())
    cols["_detail"] = pa.nulls(n, pa.string())
    cols["_value"] = values if values is not None else pa.nulls(n, pa.string())
    cols["_ts_raw"] = ts_raw if ts_raw is not None else pa.nulls(n, pa.string())
    table = pa.table(cols)
    if malformed:
        k = len(malformed)
        extra = {name: pa.nulls(k, table.schema.field(name).type) for name in table.column_names}
        extra["_file"] = _file_column(file, k)
        extra["_line"] = pa.array([m[0] for m in malformed], pa.int64())
        extra["_reason"] = pa.array([m[2] if len(m) > 2 else "malformed_row" for m in malformed], pa.string())
        extra["_detail"] = pa.array([m[1] for m in malformed], pa.string())
        table = pa.concat_tables([table, pa.table(extra, schema=table.schema)])
    return table


def flag_value(
    reasons: pa.Array | None,
    values: pa.Array | None,
    mask: pa.Array | np.ndarray,
    reason: str,
    text: pa.Array | pa.ChunkedArray | None,
) -> tuple[pa.Array | None, pa.Array | None]:
    """Set ``reason`` where ``mask`` is true and no earlier reason was set, and ``text`` (the
    source value, e.g. a price that is not a number) as the quarantine's ``value`` of those rows."""
    m = pa.array(np.asarray(mask, dtype=bool)) if not isinstance(mask, pa.Array) else pc.fill_null(mask, False)
    if not pc.any(m).as_py():
        return reasons, values
    n = len(m)
    base = reasons if reasons is not None else pa.nulls(n, pa.string())
    new = pc.and_(m, pc.is_null(base))
    reasons = pc.if_else(new, pa.scalar(reason, pa.string()), base)
    if text is not None:
        values = pc.if_else(new, _as_string(text), values if values is not None else pa.nulls(n, pa.string()))
    return reasons, values


class CatalogCollector:
    """Item attributes seen while streaming events (e.g. Taobao's category per item): each
    batch is reduced to one row per item at once, the latest value of each attribute wins."""

    def __init__(self, columns: Sequence[str]) -> None:
        self.columns = list(columns)
        self.parts: list[pa.Table] = []
        self.rows = 0

    def add(self, table: pa.Table) -> None:
        t = table.filter(pc.is_valid(table.column("item_id")))
        if t.num_rows == 0:
            return
        self.parts.append(self._reduce(t))
        self.rows += self.parts[-1].num_rows
        if len(self.parts) > 64 or self.rows > 4_000_000:
            self.parts = [self._reduce(pa.concat_tables(self.parts))]
            self.rows = self.parts[0].num_rows

    def _reduce(self, t: pa.Table) -> pa.Table:
        if not self.columns:
            return pa.table({"item_id": pc.unique(t.column("item_id"))})
        agg = t.group_by("item_id", use_threads=False).aggregate([(c, "last") for c in self.columns])
        return agg.rename_columns(["item_id" if c == "item_id" else c.removesuffix("_last") for c in agg.column_names])

    def table(self) -> pa.Table:
        if not self.parts:
            return pa.table(
                {"item_id": pa.array([], pa.string()), **{c: pa.array([], pa.string()) for c in self.columns}}
            )
        out = self._reduce(pa.concat_tables(self.parts)) if len(self.parts) > 1 else self.parts[0]
        return out.sort_by("item_id")


@dataclass
class JsonChunk:
    """One streamed block of a JSON Lines file. Fast path: ``table`` parsed by Arrow, one row per
    line, ``lines`` their line numbers. If Arrow rejects the block (a broken line, a value of
    the wrong type), the block is parsed line by line instead: ``records`` holds the objects
    that parsed, ``lines`` their line numbers, and ``malformed`` the lines that did not."""

    lines: np.ndarray
    table: pa.Table | None = None
    records: list[dict] | None = None
    malformed: list[tuple[int, str]] = field(default_factory=list)


def iter_jsonl(path: Path, schema: pa.Schema | None = None, block_bytes: int = BLOCK_BYTES) -> Iterator[JsonChunk]:
    """Stream a JSON Lines file (gzip allowed) in blocks of whole lines."""
    import json

    import pyarrow.json as pajson

    parse_opts = pajson.ParseOptions(
        explicit_schema=schema, unexpected_field_behavior="ignore" if schema is not None else "infer"
    )
    line_no = 1
    with _open_text(path) as fh:
        while True:
            data = fh.read(block_bytes)
            if not data:
                break
            if not data.endswith(b"\n"):
                data += fh.readline()
            n_lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
            clean = b"\n\n" not in data and not data.startswith(b"\n") and not data.strip(b"\n").endswith(b"\r")
            if clean:
                try:
                    table = pajson.read_json(
                        pa.BufferReader(data),
                        parse_options=parse_opts,
                        read_options=pajson.ReadOptions(use_threads=False, block_size=max(len(data), 1)),
                    )
                    if table.num_rows == n_lines:
                        yield JsonChunk(lines=line_no + np.arange(n_lines, dtype=np.int64), table=table)
                        line_no += n_lines
                        continue
                except (pa.ArrowInvalid, pa.ArrowTypeError):
                    pass
            records, lines, malformed = [], [], []
            for i, raw in enumerate(data.split(b"\n")[:n_lines]):
                if not raw.strip():
                    continue  # a blank line is not a row
                try:
                    obj = json.loads(raw)
                except (ValueError, UnicodeDecodeError) as exc:
                    malformed.append((line_no + i, f"not valid JSON: {str(exc)[:80]}"))
                    continue
                if not isinstance(obj, dict):
                    malformed.append((line_no + i, f"expected a JSON object, got {type(obj).__name__}"))
                    continue
                records.append(obj)
                lines.append(line_no + i)
            yield JsonChunk(lines=np.asarray(lines, dtype=np.int64), records=records, malformed=malformed)
            line_no += n_lines


def records_as_strings(records: Sequence[dict], keys: Sequence[str]) -> pa.Table:
    """Objects from a line-by-line parse as a table of text columns (lenient parsing follows)."""
    cols = {k: [None if r.get(k) is None else str(r.get(k)) for r in records] for k in keys}
    return pa.table({k: pa.array(v, pa.string()) for k, v in cols.items()})
