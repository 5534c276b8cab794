"""The dataset card: what went into a prepared store, for people and for MLflow.

``dataset_card.json`` (machine-readable), ``dataset_card.md`` (the same as a page) and
``sequence_lengths.png`` (histogram of events per user) are written into the prepared store by
preparation; ``scripts/prepare_data.py`` and training log them to MLflow (one experiment per
dataset, ``journeyrec.tracking.experiment_name_for``). The card holds counts only: never an id, never the key.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from journeyrec.data.schema import iso_ms
from journeyrec.errors import MissingInputError
from journeyrec.io import atomic_path, atomic_write_json, atomic_write_text

__all__ = ["CARD_FILES", "build_card", "write_card", "load_card", "card_metrics", "card_summary"]

CARD_FILES = ("dataset_card.json", "dataset_card.md", "sequence_lengths.png")


def _get(cfg: Any, key: str, default: Any = None) -> Any:
    if isinstance(cfg, Mapping):
        return cfg.get(key, default)
    return getattr(cfg, key, default)


def _iso(ms: int | None) -> str | None:
    return None if ms is None else iso_ms(int(ms))


def build_card(
    dataset: str,
    source: str,
    stats: Mapping[str, Any],
    lengths: np.ndarray,
    split: Mapping[str, Any],
    settings: Mapping[str, Any],
    fingerprint: str,
) -> dict[str, Any]:
    """The card from ingestion + assembly statistics (see ``prepare.prepare_store``)."""
    q = dict(stats.get("quarantined") or {})
    first, last = stats.get("first_ms"), stats.get("last_ms")
    lengths = np.asarray(lengths)
    return {
        "dataset": dataset,
        "source": source,
        "created": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "rows_read": int(stats.get("rows_read", 0)),
        "rows_quarantined": {"total": int(sum(q.values())), "by_reason": q},
        "rows_filtered_by_reader": dict(stats.get("filtered_by_reader") or {}),
        "privacy": {
            "user_ids": "HMAC-SHA256 pseudonyms",
            "opted_out_users": int(stats.get("opted_out_users", 0)),
            "opted_out_rows": int(stats.get("opted_out_rows", 0)),
            "retention_days": settings.get("retention_days"),
            "rows_outside_retention": int(stats.get("rows_outside_retention", 0)),
            "forgotten_users": int(stats.get("forgotten_users", 0)),
        },
        "duplicates_removed": int(stats.get("duplicates_removed", 0)),
        "events": {
            "total": int(stats.get("events_kept", 0)),
            "users": int(stats.get("users_kept", 0)),
            "sessions": int(stats.get("sessions", 0)),
            "by_type": dict(stats.get("events_by_type") or {}),
            "by_channel": dict(stats.get("events_by_channel") or {}),
            "time_span": {
                "first": _iso(first),
                "last": _iso(last),
                "days": None if first is None else round((last - first) / 86_400_000, 3),
            },
        },
        "sequences": {
            "item_events": int(stats.get("sequence_events", 0)),
            "users": int(stats.get("users", 0)),
            "items": int(stats.get("items", 0)),
            "sessions": int(stats.get("sequence_sessions", 0)),
            "kcore_removed_events": int(stats.get("kcore_removed_events", 0)),
            "consecutive_merged": int(stats.get("consecutive_merged", 0)),
            "length": {
                "mean": float(lengths.mean()) if len(lengths) else 0.0,
                "median": float(np.median(lengths)) if len(lengths) else 0.0,
                "p90": float(np.quantile(lengths, 0.9)) if len(lengths) else 0.0,
                "max": int(lengths.max()) if len(lengths) else 0,
            },
        },
        "split": dict(split),
        "settings": dict(settings),
        "fingerprint": fingerprint,
    }


def card_metrics(card: Mapping[str, Any]) -> dict[str, float]:
    """Flat numbers of the card for MLflow (``data/...``)."""
    out = {
        "data/rows_read": card["rows_read"],
        "data/rows_quarantined": card["rows_quarantined"]["total"],
        "data/opted_out_rows": card["privacy"]["opted_out_rows"],
        "data/rows_outside_retention": card["privacy"]["rows_outside_retention"],
        "data/duplicates_removed": card["duplicates_removed"],
        "data/events": card["events"]["total"],
        "data/sessions": card["events"]["sessions"],
        "data/users": card["sequences"]["users"],
        "data/items": card["sequences"]["items"],
        "data/item_events": card["sequences"]["item_events"],
        "data/mean_length": card["sequences"]["length"]["mean"],
    }
    for role in ("valid", "test"):  # cards written before the share was recorded lack it
        if f"{role}_repeat_target_share" in card["split"]:
            out[f"data/{role}_repeat_target_share"] = card["split"][f"{role}_repeat_target_share"]
    for reason, n in card["rows_quarantined"]["by_reason"].items():
        out[f"data/quarantined/{reason}"] = n
    for name, n in card["events"]["by_type"].items():
        out[f"data/events_by_type/{name}"] = n
    for name, n in card["events"]["by_channel"].items():
        out[f"data/events_by_channel/{name}"] = n
    return {k: float(v) for k, v in out.items()}


def _table(rows: list[tuple[str, Any]]) -> str:
    return "\n".join(
        ["| | |", "|---|---:|"]
        + [f"| {k} | {v:,} |" if isinstance(v, (int, float)) else f"| {k} | {v} |" for k, v in rows]
    )


def _markdown(card: Mapping[str, Any]) -> str:
    ev, sq, pr = card["events"], card["sequences"], card["privacy"]
    q = card["rows_quarantined"]
    lines = [
        f"# Dataset card: {card['dataset']}",
        "",
        f"Source: `{card['source']}`  ",
        f"Prepared: {card['created']}, fingerprint `{card['fingerprint']}`",
        "",
        "## Rows",
        "",
        _table(
            [("rows read", card["rows_read"]), ("rows quarantined", q["total"])]
            + [(f"quarantined: {r}", n) for r, n in q["by_reason"].items()]
            + [(f"filtered by reader: {r}", n) for r, n in card["rows_filtered_by_reader"].items()]
            + [
                ("opted-out users (events dropped)", pr["opted_out_users"]),
                ("opted-out rows", pr["opted_out_rows"]),
                ("rows outside retention window", pr["rows_outside_retention"]),
                ("exact duplicates removed", card["duplicates_removed"]),
                ("forgotten users", pr["forgotten_users"]),
            ]
        ),
        "",
        "## Event store",
        "",
        _table(
            [
                ("events", ev["total"]),
                ("users", ev["users"]),
                ("sessions", ev["sessions"]),
                ("first event", ev["time_span"]["first"]),
                ("last event", ev["time_span"]["last"]),
                ("days", ev["time_span"]["days"]),
            ]
            + [(f"type: {k}", v) for k, v in ev["by_type"].items()]
            + [(f"channel: {k}", v) for k, v in ev["by_channel"].items()]
        ),
        "",
        "## Sequences (item events)",
        "",
        _table(
            [
                ("item events", sq["item_events"]),
                ("users", sq["users"]),
                ("items", sq["items"]),
                ("sessions", sq["sessions"]),
                ("removed by k-core", sq["kcore_removed_events"]),
                ("merged consecutive repeats", sq["consecutive_merged"]),
                ("length mean", round(sq["length"]["mean"], 2)),
                ("length median", sq["length"]["median"]),
                ("length p90", sq["length"]["p90"]),
                ("length max", sq["length"]["max"]),
            ]
        ),
        "",
        "![events per user](sequence_lengths.png)",
        "",
        "## Split",
        "",
        _table([(k, v) for k, v in card["split"].items()]),
        "",
        "## Settings",
        "",
        _table([(k, "null" if v is None else v) for k, v in card["settings"].items()]),
        "",
    ]
    return "\n".join(lines)


def _histogram(lengths: np.ndarray, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lengths = np.asarray(lengths)
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=100)
    fig.subplots_adjust(left=0.1, right=0.97, bottom=0.15, top=0.9)
    if len(lengths):
        top = max(int(lengths.max()), 2)
        bins = np.unique(np.round(np.logspace(0, np.log10(top + 1), 40)).astype(int))
        ax.hist(lengths, bins=bins.tolist(), color="#3b6ea5")
        ax.set_xscale("log")
    ax.set_xlabel("item events per user (log scale)")
    ax.set_ylabel("users")
    ax.set_title(title)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def write_card(card: Mapping[str, Any], directory: str | Path, lengths: np.ndarray) -> list[Path]:
    """Write the card's three files into ``directory``; returns their paths."""
    d = Path(directory)
    atomic_write_json(d / "dataset_card.json", card)
    atomic_write_text(d / "dataset_card.md", _markdown(card))
    _histogram(lengths, d / "sequence_lengths.png", f"{card['dataset']}: sequence lengths")
    return [d / name for name in CARD_FILES]


def load_card(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / "dataset_card.json"
    if not path.is_file():
        raise MissingInputError(f"{path}: no dataset card (prepare the data with scripts/prepare_data.py)")
    return json.loads(path.read_text())


def card_summary(card: Mapping[str, Any]) -> str:
    """A few lines for the console."""
    ev, sq = card["events"], card["sequences"]
    q = card["rows_quarantined"]
    reasons = ", ".join(f"{r} {n}" for r, n in q["by_reason"].items()) or "none"
    types = ", ".join(f"{k} {v}" for k, v in ev["by_type"].items())
    return "\n".join(
        [
            f"dataset {card['dataset']}: {card['rows_read']:,} rows read from {card['source']}",
            f"  quarantined {q['total']:,} ({reasons}); opted-out rows {card['privacy']['opted_out_rows']:,}; "
            f"outside retention {card['privacy']['rows_outside_retention']:,}; "
            f"duplicates {card['duplicates_removed']:,}",
            f"  event store: {ev['total']:,} events, {ev['users']:,} users, {ev['sessions']:,} sessions; {types}",
            f"  sequences: {sq['item_events']:,} item events, {sq['users']:,} users, {sq['items']:,} items, "
            f"{sq['sessions']:,} sessions, mean length {sq['length']['mean']:.2f}",
            f"  split {card['split'].get('kind')}: {card['split'].get('valid_cases', 0):,} valid / "
            f"{card['split'].get('test_cases', 0):,} test cases"
            + (
                f"; {card['split']['test_repeat_target_share']:.1%} of test targets repeat an earlier item "
                "(misses when seen items are excluded)"
                if "test_repeat_target_share" in card["split"]
                else ""
            ),
        ]
    )
