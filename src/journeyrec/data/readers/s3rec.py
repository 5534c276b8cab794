"""Reader for S3-Rec sequence files (``data=s3rec``), e.g. ``../shared/data/amazon/Beauty.txt``.

Provenance: S3-Rec (Zhou et al., CIKM 2020), https://github.com/RUCAIBox/CIKM2020-S3Rec
(``data/<Name>.txt`` and ``data/<Name>_item2attributes.json``), derived from the Amazon review
data of McAuley et al. (https://cseweb.ucsd.edu/~jmcauley/datasets/amazon/links.html). Licence:
the repository's code is MIT-licensed; the Amazon review data is provided for research use only.

Format: one user per line, ``user item item ...``, items in time order, whitespace-separated.
The files carry no timestamps, so an event's timestamp is its position in the user's sequence
(milliseconds since the epoch): order is exact, wall-clock gaps are unknown, and no date range
applies (``SourceScan.clock_time``). If
``<name>_item2attributes.json`` (``{"item": [attribute ids]}``) lies beside ``<name>.txt``,
the attribute ids become the items' ``tags`` in the catalogue. A line with a user but no item,
or a second line for the same user, goes to quarantine with its line number.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import pyarrow as pa

from journeyrec.data.readers import ReaderError, SourceScan, parse_options
from journeyrec.data.readers.common import constant, find_file, make_batch
from journeyrec.data.schema import conform_catalog


@dataclass
class S3RecOptions:
    event_type: str = "purchase"  # what one position means (Amazon reviews ~ purchases)
    attributes: bool = True  # read <name>_item2attributes.json when present


def scan(path: str | None, options: Mapping[str, Any]) -> SourceScan:
    opts = parse_options(S3RecOptions, options, "s3rec")
    if not path:
        raise ReaderError("data.path is required for data=s3rec (a file with lines 'user item item ...')")
    p = find_file(path, ["*.txt"], "s3rec", "sequence")
    stats: dict[str, Any] = {"rows_read": 0, "lines": 0}
    item_set: set[str] = set()

    def batches() -> Iterator[pa.Table]:
        users: list[str] = []
        lengths: list[int] = []
        items: list[str] = []
        item_lines: list[int] = []
        malformed: list[tuple[int, str]] = []
        duplicate: list[tuple[int, int]] = []  # (line, number of items on it)
        seen: dict[str, int] = {}
        with open(p, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                tokens = line.split()
                if not tokens:
                    continue
                stats["lines"] += 1
                if len(tokens) < 2:
                    malformed.append(
                        (lineno, "expected 'user item [item ...]' (a user id followed by at least one item id)")
                    )
                    continue
                if tokens[0] in seen:
                    duplicate.append((lineno, seen[tokens[0]]))
                    continue
                seen[tokens[0]] = lineno
                users.append(tokens[0])
                lengths.append(len(tokens) - 1)
                items.extend(tokens[1:])
                item_lines.extend([lineno] * (len(tokens) - 1))
        if not users and not malformed and not duplicate:
            raise ReaderError(f"{p}: no sequences found (empty file?)")
        stats["rows_read"] = len(items) + len(malformed) + len(duplicate)
        item_set.update(items)
        lens = np.asarray(lengths, dtype=np.int64)
        starts = np.repeat(np.cumsum(lens) - lens, lens)
        position = np.arange(len(items), dtype=np.int64) - starts
        n = len(items)
        batch = make_batch(
            {
                "user_id": pa.array(np.repeat(np.asarray(users, dtype=object), lens).tolist(), pa.string()),
                "item_id": pa.array(items, pa.string()),
                "event_type": constant(opts.event_type, n),
                "timestamp": pa.array(position, pa.timestamp("ms", tz="UTC")),
            },
            file=str(p),
            lines=np.asarray(item_lines, dtype=np.int64),
            malformed=malformed,
        )
        if duplicate:  # the line is quarantined whole; its user id is not copied (privacy)
            dup = make_batch(
                {},
                file=str(p),
                lines=np.asarray([d[0] for d in duplicate], dtype=np.int64),
                reasons=constant("duplicate_user_line", len(duplicate)),
            )
            dup = dup.set_column(
                dup.column_names.index("_detail"),
                "_detail",
                pa.array(
                    [f"this user already has line {d[1]}; S3-Rec files hold one line per user" for d in duplicate]
                ),
            )
            batch = pa.concat_tables([batch, dup], promote_options="default")
        yield batch

    def catalog() -> pa.Table:
        return _catalog(p, sorted(item_set), opts.attributes)

    return SourceScan(source=str(p), batches=batches(), catalog=catalog, stats=stats, clock_time=False)


def _catalog(p: Path, item_ids: list[str], attributes: bool) -> pa.Table:
    attr_file = p.with_name(f"{p.stem}_item2attributes.json")
    tags = None
    if attributes and attr_file.is_file():
        try:
            raw = json.loads(attr_file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ReaderError(f'{attr_file}: not valid JSON ({exc}); expected {{"item": [attribute ids]}}') from exc
        if not isinstance(raw, dict):
            raise ReaderError(
                f'{attr_file}: expected a JSON object {{"item": [attribute ids]}}, got {type(raw).__name__}'
            )
        tags = [[str(a) for a in raw.get(i, [])] for i in item_ids]
    return conform_catalog(
        {
            "item_id": pa.array(item_ids, pa.string()),
            "tags": pa.array(tags, pa.list_(pa.string())) if tags else pa.nulls(len(item_ids), pa.list_(pa.string())),
        },
        source=str(p),
    )
