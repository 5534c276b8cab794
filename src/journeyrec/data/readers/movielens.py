"""Reader for MovieLens ratings (``data=movielens``) with genres as item attributes.

Provenance: MovieLens datasets, GroupLens Research, University of Minnesota,
https://grouplens.org/datasets/movielens/ (files under https://files.grouplens.org/datasets/movielens/).
Licence (GroupLens usage licence): research use; no endorsement implied; acknowledge the dataset
in publications (F. M. Harper and J. A. Konstan, 2015, ACM TiiS 5(4)); redistribution only
under the same terms; commercial use needs permission.

``data.path`` is a ratings file or a directory holding one, in any of the published layouts:

``ratings.dat[.gz]``
    ML-1M/10M: ``UserID::MovieID::Rating::Timestamp``;
    item file ``movies.dat`` (Latin-1, ``::``, genres ``a|b``)
``ratings.csv``
    ml-latest(-small), ml-20m/25m: header ``userId,movieId,rating,timestamp``;
    item file ``movies.csv`` (genres ``a|b``)
``u.data``
    ML-100K: tab-separated ``user item rating timestamp``;
    item file ``u.item`` (Latin-1, ``|``, 19 genre flags)
``<name>.inter``
    RecBole atomic file: tab-separated, header ``user_id:token item_id:token rating:float timestamp:float``;
    item file ``<name>.item`` (``class:token_seq`` = genres)

Timestamps are Unix seconds. Every rating is a ``rating`` event (``options.min_rating`` keeps
only ratings at or above a threshold, counted in ``stats["filtered_by_reader"]``). In the
catalogue, ``title`` is the movie title, ``tags`` all its genres and ``category`` the first one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import pyarrow as pa
import pyarrow.compute as pc

from journeyrec.data.readers import ReaderError, SourceScan, parse_options
from journeyrec.data.readers.common import (
    constant,
    find_file,
    flag_value,
    iter_delimited,
    make_batch,
    parse_epoch,
    parse_float,
    read_header,
)
from journeyrec.data.schema import SchemaError, conform_catalog

U_ITEM_GENRES = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)


@dataclass
class MovieLensOptions:
    min_rating: float | None = None  # keep ratings >= this (None: keep all)
    event_type: str = "rating"


def _layout(p: Path) -> str:
    name = p.name.lower()
    if name.startswith("ratings.dat"):
        return "dat"
    if name.endswith(".csv"):
        return "csv"
    if name == "u.data":
        return "udata"
    if name.endswith(".inter"):
        return "recbole"
    raise ReaderError(f"{p}: not a MovieLens ratings file (ratings.dat[.gz], ratings.csv, u.data or <name>.inter)")


def scan(path: str | None, options: Mapping[str, Any]) -> SourceScan:
    opts = parse_options(MovieLensOptions, options, "movielens")
    p = find_file(path, ["ratings.dat", "ratings.dat.gz", "ratings.csv", "u.data", "*.inter"], "movielens", "ratings")
    layout = _layout(p)
    stats: dict[str, Any] = {"rows_read": 0}
    filtered = 0

    def chunks():
        if layout == "dat":  # '::' is two one-character separators: fields 0, 2, 4, 6
            names: tuple[str, ...] = ("user", "_1", "item", "_2", "rating", "_3", "ts")
            return iter_delimited(
                p, delimiter=":", names=names, usecols=("user", "item", "rating", "ts"), quoting=False
            ), ("user", "item", "rating", "ts")
        if layout == "csv":
            return iter_delimited(p, delimiter=",", usecols=("userId", "movieId", "rating", "timestamp")), (
                "userId",
                "movieId",
                "rating",
                "timestamp",
            )
        if layout == "udata":
            names = ("user", "item", "rating", "ts")
            return iter_delimited(p, delimiter="\t", names=names, usecols=names, quoting=False), names
        header = read_header(p, "\t")
        want = []
        for field in ("user_id", "item_id", "rating", "timestamp"):
            hit = [h for h in header if h.split(":")[0] == field]
            if not hit:
                raise SchemaError(
                    f"{p}: missing required column '{field}' (RecBole '{field}:<type>'); the file has {header}"
                )
            want.append(hit[0])
        return iter_delimited(p, delimiter="\t", usecols=want, quoting=False), tuple(want)

    def batches() -> Iterator[pa.Table]:
        nonlocal filtered
        it, (ucol, icol, rcol, tcol) = chunks()
        for chunk in it:
            t = chunk.table
            stats["rows_read"] += t.num_rows + len(chunk.malformed)
            ts, ts_raw = parse_epoch(t.column(tcol), "s")
            lines = chunk.lines
            reasons = values = None
            if opts.min_rating is not None:
                rating = parse_float(t.column(rcol))
                reasons, values = flag_value(
                    pa.nulls(t.num_rows, pa.string()),
                    pa.nulls(t.num_rows, pa.string()),
                    pc.and_(pc.is_valid(t.column(rcol)), pc.is_null(rating)),
                    "unparseable_rating",
                    t.column(rcol),
                )
                assert reasons is not None and values is not None  # arrays given, arrays back
                keep = pc.or_(pc.fill_null(pc.greater_equal(rating, opts.min_rating), False), pc.is_valid(reasons))
                filtered += t.num_rows - pc.sum(keep).as_py() if t.num_rows else 0
                t, ts, ts_raw, reasons, values = (
                    t.filter(keep),
                    ts.filter(keep),
                    ts_raw.filter(keep),
                    reasons.filter(keep),
                    values.filter(keep),
                )
                lines = lines[keep.to_numpy(zero_copy_only=False)]
            stats["filtered_by_reader"] = (
                {f"rating < {opts.min_rating}": filtered} if opts.min_rating is not None else {}
            )
            yield make_batch(
                {
                    "user_id": t.column(ucol),
                    "item_id": t.column(icol),
                    "event_type": constant(opts.event_type, t.num_rows),
                    "timestamp": ts,
                    "channel": constant("unknown", t.num_rows),
                },
                file=str(p),
                lines=lines,
                malformed=chunk.malformed,
                reasons=reasons,
                values=values,
                ts_raw=ts_raw,
            )

    return SourceScan(source=str(p), batches=batches(), catalog=lambda: _catalog(p, layout), stats=stats)


def _genre_table(ids: list[str], titles: list[str | None], genres: list[list[str]], source: str) -> pa.Table:
    return conform_catalog(
        {
            "item_id": pa.array(ids, pa.string()),
            "title": pa.array(titles, pa.string()),
            "category": pa.array([g[0] if g else None for g in genres], pa.string()),
            "tags": pa.array(genres, pa.list_(pa.string())),
        },
        source=source,
    )


def _catalog(p: Path, layout: str) -> pa.Table:
    """The item file beside the ratings (if any): titles and genres."""
    ids: list[str] = []
    titles: list[str | None] = []
    genres: list[list[str]] = []
    if layout == "dat":
        f = p.with_name("movies.dat")
        if f.is_file():
            for line in f.read_text(encoding="latin-1").splitlines():
                parts = line.split("::")
                if len(parts) == 3:
                    ids.append(parts[0])
                    titles.append(parts[1])
                    genres.append([g for g in parts[2].split("|") if g])
    elif layout == "csv":
        f = p.with_name("movies.csv")
        if f.is_file():
            import pyarrow.csv as pacsv

            t = pacsv.read_csv(
                f,
                convert_options=pacsv.ConvertOptions(
                    column_types={"movieId": pa.string(), "title": pa.string(), "genres": pa.string()}
                ),
            )
            ids = t.column("movieId").to_pylist()
            titles = t.column("title").to_pylist()
            genres = [
                [g for g in (x or "").split("|") if g and g != "(no genres listed)"]
                for x in t.column("genres").to_pylist()
            ]
    elif layout == "udata":
        f = p.with_name("u.item")
        if f.is_file():
            for line in f.read_text(encoding="latin-1").splitlines():
                parts = line.split("|")
                if len(parts) >= 5 + len(U_ITEM_GENRES):
                    ids.append(parts[0])
                    titles.append(parts[1])
                    flags = parts[5 : 5 + len(U_ITEM_GENRES)]
                    genres.append([g for g, x in zip(U_ITEM_GENRES, flags) if x.strip() == "1" and g != "unknown"])
    else:
        f = p.with_suffix(".item")
        if f.is_file():
            lines = f.read_text(encoding="utf-8").splitlines()
            header = [h.split(":")[0] for h in lines[0].split("\t")]
            ci = {name: header.index(name) for name in ("item_id", "movie_title", "class") if name in header}
            if "item_id" in ci:
                for line in lines[1:]:
                    parts = line.split("\t")
                    if len(parts) != len(header):
                        continue
                    ids.append(parts[ci["item_id"]])
                    titles.append(parts[ci["movie_title"]] if "movie_title" in ci else None)
                    genres.append(parts[ci["class"]].split() if "class" in ci else [])
    if not ids:
        return conform_catalog({"item_id": pa.array([], pa.string())}, source=str(p))
    return _genre_table(ids, titles, genres, str(p))
