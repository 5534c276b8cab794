"""Reader for S3-Rec sequence files (``data=s3rec``), e.g. ``../shared/data/amazon/Beauty.txt``.

Format (S3-Rec, Zhou et al., CIKM 2020; https://github.com/RUCAIBox/CIKM2020-S3Rec): one user per
line, ``user item item ...``, items in time order, whitespace-separated. The files carry no
timestamps, so an event's timestamp is its position in the user's sequence (milliseconds since
the epoch): order is exact, wall-clock gaps are unknown. If ``<name>_item2attributes.json``
(``{"item": [attribute ids]}``) lies beside ``<name>.txt``, the attribute ids become the items'
``tags`` in the catalogue.

Licence: the Amazon review data (McAuley et al.) is for research use; see the S3-Rec repository.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pyarrow as pa

from journeyrec.data.readers import ReaderError, SourceData, parse_options
from journeyrec.data.schema import conform_catalog, conform_events


@dataclass
class S3RecOptions:
    event_type: str = "purchase"  # what one position means (Amazon reviews ~ purchases)
    attributes: bool = True  # read <name>_item2attributes.json when present


def read(path: str | None, options: Mapping[str, Any]) -> SourceData:
    opts = parse_options(S3RecOptions, options, "s3rec")
    if not path:
        raise ReaderError("data.path is required for data=s3rec (a file with lines 'user item item ...')")
    p = Path(path)
    if not p.is_file():
        raise ReaderError(f"{p}: no such file (set data.path to an S3-Rec sequence file)")
    users: list[str] = []
    lengths: list[int] = []
    items: list[str] = []
    seen: dict[str, int] = {}
    with open(p, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            tokens = line.split()
            if not tokens:
                continue
            if len(tokens) < 2:
                raise ReaderError(
                    f"{p}:{lineno}: malformed line {line.strip()[:60]!r}: expected 'user item [item ...]' "
                    "(a user id followed by at least one item id, whitespace-separated)"
                )
            if tokens[0] in seen:
                raise ReaderError(
                    f"{p}:{lineno}: user {tokens[0]!r} already has a line ({seen[tokens[0]]}); "
                    "S3-Rec files hold one line per user"
                )
            seen[tokens[0]] = lineno
            users.append(tokens[0])
            lengths.append(len(tokens) - 1)
            items.extend(tokens[1:])
    if not users:
        raise ReaderError(f"{p}: no sequences found (empty file?)")
    lens = np.asarray(lengths, dtype=np.int64)
    starts = np.repeat(np.cumsum(lens) - lens, lens)
    position = np.arange(len(items), dtype=np.int64) - starts
    user_col = np.repeat(np.asarray(users, dtype=object), lens)
    events = pa.table(
        {
            "user_id": pa.array(user_col.tolist(), pa.string()),
            "item_id": pa.array(items, pa.string()),
            "event_type": pa.array(np.full(len(items), opts.event_type, dtype=object).tolist(), pa.string()),
            "timestamp": pa.array(position, pa.timestamp("ms", tz="UTC")),
        }
    )
    events = conform_events(events, source=str(p))
    catalog = _catalog(p, sorted(set(items)), opts.attributes)
    return SourceData(events=events, catalog=catalog, source=str(p), stats={"rows_read": len(items), "lines": len(users)})


def _catalog(p: Path, item_ids: list[str], attributes: bool) -> pa.Table:
    attr_file = p.with_name(f"{p.stem}_item2attributes.json")
    tags = None
    if attributes and attr_file.is_file():
        try:
            raw = json.loads(attr_file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ReaderError(f"{attr_file}: not valid JSON ({exc}); expected {{\"item\": [attribute ids]}}") from exc
        tags = [[str(a) for a in raw.get(i, [])] for i in item_ids]
    return conform_catalog(
        {"item_id": pa.array(item_ids, pa.string()), "tags": pa.array(tags, pa.list_(pa.string())) if tags else pa.nulls(len(item_ids), pa.list_(pa.string()))},
        source=str(p),
    )
