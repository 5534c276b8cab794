"""The embedded journey store: one SQLite file in WAL mode, no server, survives restarts.

Durability: every method is one transaction committed with ``synchronous=FULL`` before it returns,
so an event acknowledged to a client survives a crash of the process (and of the machine).
Forgetting: ``secure_delete`` overwrites deleted rows with zeros and a ``TRUNCATE`` checkpoint
empties the write-ahead log, so a forgotten customer's pseudonym is in none of the store's files.

Connections are per thread (SQLite's rule); WAL lets readers run beside the one writer, and a
writer waits up to ``busy_timeout_ms`` for another (another thread or another process on the
same file).

The feedback loop's writes (impressions, feedback) go through a second connection per thread with
``synchronous=NORMAL``: committed atomically and safe from a crash of the process, but not synced
to disk on every commit, so a power loss may take the last moments of statistics with it, never
an acknowledged event (a recommendation must not wait for a disk sync to be counted). Carts and
purchases attributed on arrival are part of the event's own ``FULL`` transaction.

Checkpoints (copying the write-ahead log into the database file, with a disk sync) run on a
background thread every ``checkpoint_seconds``, never inside a request: SQLite's automatic
checkpoint would run in whichever commit crossed its threshold, and on a disk that syncs slowly
that request (and every request queued behind it on the event loop) waited for the sync.
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
import weakref
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from journeyrec.serving.online import ItemCTR, Trending, decay_factor, landmark_factor
from journeyrec.serving.store.base import (
    _COUNT,
    _UNIT,
    ATTRIBUTED_EVENTS,
    DAY_MS,
    OPTED_OUT_EVENTS,
    POSITIVE_REACTIONS,
    SKEW_MS,
    TRENDING_EVENTS,
    AppendResult,
    Arrival,
    CatalogChanges,
    Impression,
    Journey,
    JourneyStore,
    Reaction,
    ReactionResult,
    SlotCTR,
    StoredEvent,
    StoredImpression,
)

__all__ = ["SQLiteStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY AUTOINCREMENT, subject TEXT NOT NULL, ts INTEGER NOT NULL,
                                   body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_subject_ts ON events (subject, ts);
CREATE TABLE IF NOT EXISTS purchases (seq INTEGER PRIMARY KEY AUTOINCREMENT, subject TEXT NOT NULL, ts INTEGER NOT NULL,
                                      body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS purchases_subject_ts ON purchases (subject, ts);
CREATE TABLE IF NOT EXISTS subjects (subject TEXT PRIMARY KEY, kind TEXT NOT NULL, consent INTEGER,
                                     search TEXT, search_ts INTEGER);
CREATE TABLE IF NOT EXISTS links (anonymous TEXT PRIMARY KEY, customer TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS links_customer ON links (customer);
CREATE TABLE IF NOT EXISTS catalog (item_id TEXT PRIMARY KEY, version INTEGER NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS catalog_version ON catalog (version);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS impressions (request_id TEXT PRIMARY KEY, ts INTEGER NOT NULL, subject TEXT,
                                        meta TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS impressions_ts ON impressions (ts);
CREATE INDEX IF NOT EXISTS impressions_subject ON impressions (subject, ts) WHERE subject IS NOT NULL;
CREATE TABLE IF NOT EXISTS shown (request_id TEXT NOT NULL, item_id TEXT NOT NULL, position INTEGER NOT NULL,
                                  PRIMARY KEY (request_id, item_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS reactions (request_id TEXT NOT NULL, item_id TEXT NOT NULL, type TEXT NOT NULL,
                                      ts INTEGER NOT NULL, source TEXT NOT NULL,
                                      PRIMARY KEY (request_id, item_id, type)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS item_ctr (context TEXT NOT NULL, item_id TEXT NOT NULL, impressions INTEGER NOT NULL,
                                     clicks INTEGER NOT NULL, PRIMARY KEY (context, item_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS explore_ctr (context TEXT NOT NULL, key TEXT NOT NULL, impressions INTEGER NOT NULL,
                                        clicks INTEGER NOT NULL, PRIMARY KEY (context, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS slot_ctr (context TEXT NOT NULL, position INTEGER NOT NULL, impressions INTEGER NOT NULL,
                                     clicks INTEGER NOT NULL, PRIMARY KEY (context, position)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS trend (scope TEXT NOT NULL, item_id TEXT NOT NULL, score REAL NOT NULL,
                                  PRIMARY KEY (scope, item_id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS trend_score ON trend (scope, score);
CREATE TABLE IF NOT EXISTS ab (experiment TEXT NOT NULL, variant TEXT NOT NULL, assigned INTEGER NOT NULL,
                               metric TEXT NOT NULL, value INTEGER NOT NULL,
                               PRIMARY KEY (experiment, variant, assigned, metric)) WITHOUT ROWID;
"""

# the customer's latest list within the window that showed the item, one where it was clicked first
_ATTRIBUTE = """
SELECT i.request_id, s.position, i.meta,
       EXISTS (SELECT 1 FROM reactions r WHERE r.request_id = i.request_id AND r.item_id = s.item_id
               AND r.type = 'click') AS clicked
FROM impressions i JOIN shown s ON s.request_id = i.request_id AND s.item_id = ?
WHERE i.subject = ? AND i.ts <= ? AND i.ts >= ?
ORDER BY clicked DESC, i.ts DESC LIMIT 1
"""


def _explore_keys(item: str, groups: Sequence[str], position: int) -> tuple[str, str, str]:
    """The exploration counters a slot feeds: its item's, its item group's, the context's."""
    return f"i:{item}", f"g:{groups[position] if position < len(groups) else ''}", "*"


def _explore_counts(found: Mapping[str, tuple[int, int]], item_ids: Sequence[str], groups: Sequence[str]) -> ItemCTR:
    items = [found.get(f"i:{i}", (0, 0)) for i in item_ids]
    grps = [found.get(f"g:{g}", (0, 0)) for g in groups]
    total = found.get("*", (0, 0))
    return ItemCTR(
        np.asarray([c for _, c in items], np.int64),
        np.asarray([n for n, _ in items], np.int64),
        total[1],
        total[0],
        np.asarray([c for _, c in grps], np.int64),
        np.asarray([n for n, _ in grps], np.int64),
    )


_REBASE_HALF_LIVES = 256.0  # forward-decay scores are rescaled to a new landmark before they could overflow
_PRUNE_EVERY_MS = 60_000


# (part, value, body): 0 events and 1 purchases in time order, 2 the subject (consent, last search),
# 3 the catalogue version
_JOURNEY = """
SELECT 0, ts, body, seq FROM events WHERE subject = ? AND ts >= ?
UNION ALL SELECT 1, ts, body, seq FROM purchases WHERE subject = ? AND ts >= ?
UNION ALL SELECT 2, consent, search, 0 FROM subjects WHERE subject = ?
UNION ALL SELECT 3, value, NULL, 0 FROM meta WHERE key = 'catalog_version'
ORDER BY 1, 2, 4
"""


def _checkpoint_every(path: Path, seconds: float, stop: threading.Event) -> None:
    """Checkpoint the write-ahead log every ``seconds`` until ``stop`` (and once more then), on a
    connection of its own. PASSIVE: it never waits for a writer, and writers never wait for it.
    Holds no reference to the store, so a store never closed is still collected (and stops it)."""
    con = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        while True:
            stopping = stop.wait(seconds)
            try:
                con.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error:  # a locked or vanished file: the next round tries again
                pass
            if stopping:
                return
    finally:
        con.close()


class SQLiteStore(JourneyStore):
    def __init__(
        self,
        path: str | Path,
        max_events: int = 200,
        max_purchases: int = 500,
        retention_days: float = 400.0,
        busy_timeout_ms: int = 10_000,
        reaction_window_minutes: float = 1440.0,
        trending_half_life_hours: float = 168.0,
        checkpoint_seconds: float = 1.0,
    ) -> None:
        if not checkpoint_seconds > 0:
            raise ValueError(f"checkpoint_seconds={checkpoint_seconds}: must be > 0")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_events = int(max_events)
        self.max_purchases = int(max_purchases)
        self.retention_ms = int(retention_days * DAY_MS)
        self.reaction_window_ms = int(reaction_window_minutes * 60_000)
        self.trend_half_life_ms = int(trending_half_life_hours * 3_600_000)
        self._pruned_at = -math.inf
        self._busy_ms = int(busy_timeout_ms)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        con = self._con()
        con.execute("PRAGMA journal_mode=WAL")
        with self._tx(con):
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    con.execute(statement)
        self._stop = threading.Event()
        self._checkpointer = threading.Thread(
            target=_checkpoint_every,
            args=(self.path, float(checkpoint_seconds), self._stop),
            name="journeyrec-sqlite-checkpoint",
            daemon=True,
        )
        self._checkpointer.start()
        weakref.finalize(self, self._stop.set)  # a store never closed stops its thread when collected

    # ------------------------------------------------------------------ plumbing
    def _con(self, stats: bool = False) -> sqlite3.Connection:
        """This thread's connection; ``stats``: the one for the feedback loop's writes (see the module docstring)."""
        name = "stats" if stats else "con"
        con = getattr(self._local, name, None)
        if con is None:
            # one connection per thread; check_same_thread off only so that close() may run anywhere
            con = sqlite3.connect(
                self.path, isolation_level=None, timeout=self._busy_ms / 1000, check_same_thread=False
            )
            con.execute(f"PRAGMA synchronous={'NORMAL' if stats else 'FULL'}")
            con.execute("PRAGMA secure_delete=ON")
            con.execute(f"PRAGMA busy_timeout={self._busy_ms}")
            con.execute("PRAGMA wal_autocheckpoint=0")  # the background thread checkpoints
            setattr(self._local, name, con)
            with self._lock:
                self._all.append(con)
        return con

    class _Tx:
        def __init__(self, con: sqlite3.Connection, mode: str) -> None:
            self.con, self.mode = con, mode

        def __enter__(self) -> sqlite3.Connection:
            self.con.execute(f"BEGIN {self.mode}")
            return self.con

        def __exit__(self, exc_type: Any, *rest: Any) -> None:
            self.con.execute("ROLLBACK" if exc_type else "COMMIT")

    def _tx(self, con: sqlite3.Connection | None = None, mode: str = "IMMEDIATE") -> SQLiteStore._Tx:
        return self._Tx(con or self._con(), mode)

    @staticmethod
    def _consent(con: sqlite3.Connection, subject: str) -> bool | None:
        row = con.execute("SELECT consent FROM subjects WHERE subject = ?", (subject,)).fetchone()
        return None if row is None or row[0] is None else bool(row[0])

    @staticmethod
    def _ensure(con: sqlite3.Connection, subject: str, kind: str) -> None:
        con.execute("INSERT OR IGNORE INTO subjects (subject, kind) VALUES (?, ?)", (subject, kind))
        if kind == "customer":  # an anonymous subject that turned out to be a customer id stays the customer
            con.execute("UPDATE subjects SET kind = 'customer' WHERE subject = ? AND kind != 'customer'", (subject,))

    def _trim(self, con: sqlite3.Connection, subject: str, now_ms: int) -> None:
        cutoff = now_ms - self.retention_ms
        for table, keep in (("events", self.max_events), ("purchases", self.max_purchases)):
            con.execute(f"DELETE FROM {table} WHERE subject = ? AND ts < ?", (subject, cutoff))
            con.execute(
                f"DELETE FROM {table} WHERE seq IN (SELECT seq FROM {table} WHERE subject = ? "
                "ORDER BY ts DESC, seq DESC LIMIT -1 OFFSET ?)",
                (subject, keep),
            )

    @staticmethod
    def _set_search(con: sqlite3.Connection, subject: str, event: StoredEvent) -> None:
        con.execute(
            "UPDATE subjects SET search = ?, search_ts = ? WHERE subject = ? AND (search_ts IS NULL OR search_ts <= ?)",
            (event.to_json(), event.timestamp_ms, subject, event.timestamp_ms),
        )

    def _delete_journey(self, con: sqlite3.Connection, subject: str) -> int:
        """Events, purchases, last search and the lists shown to the subject (the counts they fed stay)."""
        n = con.execute("DELETE FROM events WHERE subject = ?", (subject,)).rowcount
        n += con.execute("DELETE FROM purchases WHERE subject = ?", (subject,)).rowcount
        con.execute("UPDATE subjects SET search = NULL, search_ts = NULL WHERE subject = ?", (subject,))
        mine = "SELECT request_id FROM impressions WHERE subject = ?"
        con.execute(f"DELETE FROM shown WHERE request_id IN ({mine})", (subject,))
        con.execute(f"DELETE FROM reactions WHERE request_id IN ({mine})", (subject,))
        con.execute("DELETE FROM impressions WHERE subject = ?", (subject,))
        return n

    def _link(self, con: sqlite3.Connection, anonymous: str, customer: str, now_ms: int) -> int:
        self._ensure(con, customer, "customer")
        con.execute("INSERT OR REPLACE INTO links (anonymous, customer) VALUES (?, ?)", (anonymous, customer))
        if anonymous == customer:
            return 0
        if self._consent(con, customer) is False:
            self._delete_journey(con, anonymous)
            con.execute("DELETE FROM subjects WHERE subject = ?", (anonymous,))
            return 0
        moved = con.execute("UPDATE events SET subject = ? WHERE subject = ?", (customer, anonymous)).rowcount
        con.execute("UPDATE purchases SET subject = ? WHERE subject = ?", (customer, anonymous))
        row = con.execute("SELECT search FROM subjects WHERE subject = ?", (anonymous,)).fetchone()
        if row is not None and row[0]:
            self._set_search(con, customer, StoredEvent.from_json(row[0]))
        con.execute("DELETE FROM subjects WHERE subject = ?", (anonymous,))
        self._trim(con, customer, now_ms)
        return moved

    def _checkpoint(self) -> None:
        """Empty the write-ahead log into the (zero-overwritten) main file."""
        con = self._con()
        for _ in range(50):
            busy, _, _ = con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if not busy:
                return
            threading.Event().wait(0.02)
        raise RuntimeError(f"{self.path}: the write-ahead log could not be checkpointed (a reader held it)")

    # ------------------------------------------------------------------ journeys
    def append(self, arrivals: Sequence[Arrival], now_ms: int) -> AppendResult:
        result = AppendResult()
        cutoff = now_ms - self.retention_ms
        touched: set[str] = set()
        trending = frozenset(TRENDING_EVENTS)
        with self._tx() as con:
            latest = now_ms + SKEW_MS  # a clock set ahead counts as now in the decayed statistics
            landmark = self._landmark(con, min(max((a.event.timestamp_ms for a in arrivals), default=now_ms), latest))
            links: dict[str, str | None] = {}
            consent: dict[str, bool | None] = {}
            for i, a in enumerate(arrivals):
                if a.customer is not None:
                    subject, kind = a.customer, "customer"
                    if a.anonymous is not None and links.get(a.anonymous, self._linked(con, a.anonymous)) != a.customer:
                        self._link(con, a.anonymous, a.customer, now_ms)
                        links[a.anonymous] = a.customer
                        touched.add(a.customer)
                else:
                    assert a.anonymous is not None
                    if a.anonymous not in links:
                        links[a.anonymous] = self._linked(con, a.anonymous)
                    linked = links[a.anonymous]
                    subject, kind = (linked, "customer") if linked else (a.anonymous, "anonymous")
                if subject not in consent:
                    consent[subject] = self._consent(con, subject)
                if consent[subject] is False:
                    result.opted_out.append(i)
                    continue
                e = a.event
                if e.timestamp_ms < cutoff:
                    result.expired.append(i)
                    continue
                self._ensure(con, subject, kind)
                body = e.to_json()
                con.execute("INSERT INTO events (subject, ts, body) VALUES (?, ?, ?)", (subject, e.timestamp_ms, body))
                if e.event_type == "purchase":
                    con.execute(
                        "INSERT INTO purchases (subject, ts, body) VALUES (?, ?, ?)", (subject, e.timestamp_ms, body)
                    )
                elif e.event_type == "search":
                    self._set_search(con, subject, e)
                if e.item_id is not None and e.event_type in trending:
                    self._trend_add(con, "", e.item_id, min(e.timestamp_ms, latest), landmark)
                if e.item_id is not None and e.event_type in ATTRIBUTED_EVENTS and kind == "customer":
                    if self._attribute(con, subject, e, landmark, latest):
                        result.attributed.append(i)
                touched.add(subject)
                result.stored.append(i)
            for subject in touched:
                self._trim(con, subject, now_ms)
            if result.opted_out:
                self._increment(con, OPTED_OUT_EVENTS, len(result.opted_out))
        return result

    @staticmethod
    def _linked(con: sqlite3.Connection, anonymous: str) -> str | None:
        row = con.execute("SELECT customer FROM links WHERE anonymous = ?", (anonymous,)).fetchone()
        return None if row is None else str(row[0])

    def journey(self, subject: str, now_ms: int) -> Journey:
        cutoff = now_ms - self.retention_ms
        # one statement, so one consistent snapshot and one round through SQLite: the serving path's only read
        rows = self._con().execute(_JOURNEY, (subject, cutoff, subject, cutoff, subject)).fetchall()
        events, purchases = [], []
        consent = search = None
        known, version = False, 0
        for part, value, body, _ in rows:
            if part == 0:
                events.append(StoredEvent.from_json(body))
            elif part == 1:
                purchases.append(StoredEvent.from_json(body))
            elif part == 2:
                known = True
                consent = None if value is None else bool(value)
                search = StoredEvent.from_json(body) if body else None
            else:
                version = int(value)
        return Journey(
            subject,
            events,
            purchases,
            search if search and search.timestamp_ms >= cutoff else None,
            consent,
            known=known,
            catalog_version=version,
        )

    def link(self, anonymous: str, customer: str, now_ms: int) -> int:
        with self._tx() as con:
            return self._link(con, anonymous, customer, now_ms)

    def set_consent(self, subject: str, personalisation: bool) -> int:
        with self._tx() as con:
            self._ensure(con, subject, "customer")
            con.execute("UPDATE subjects SET consent = ? WHERE subject = ?", (int(personalisation), subject))
            deleted = 0 if personalisation else self._delete_journey(con, subject)
        if deleted:
            self._checkpoint()
        return deleted

    def forget(self, subject: str) -> int:
        with self._tx() as con:
            anons = [a for (a,) in con.execute("SELECT anonymous FROM links WHERE customer = ?", (subject,))]
            removed = 0
            for s in [subject, *anons]:
                removed += self._delete_journey(con, s)
                con.execute("DELETE FROM subjects WHERE subject = ?", (s,))
            con.execute("DELETE FROM links WHERE customer = ? OR anonymous = ?", (subject, subject))
        self._checkpoint()
        return removed

    def customers(self) -> Iterator[str]:
        con = self._con()
        last = ""
        while True:  # pages, so a long iteration holds no read snapshot open
            rows = con.execute(
                "SELECT subject FROM subjects WHERE kind = 'customer' AND subject > ? ORDER BY subject LIMIT 1000",
                (last,),
            ).fetchall()
            if not rows:
                return
            for (s,) in rows:
                yield str(s)
            last = str(rows[-1][0])

    # ------------------------------------------------------------------ live catalogue
    def put_items(self, items: Mapping[str, Mapping[str, Any]]) -> int:
        with self._tx() as con:
            row = con.execute("SELECT value FROM meta WHERE key = 'catalog_version'").fetchone()
            version = (int(row[0]) if row else 0) + 1
            for item_id, fields in items.items():
                old = con.execute("SELECT body FROM catalog WHERE item_id = ?", (item_id,)).fetchone()
                merged = {**(json.loads(old[0]) if old else {}), **dict(fields)}
                con.execute(
                    "INSERT OR REPLACE INTO catalog (item_id, version, body) VALUES (?, ?, ?)",
                    (item_id, version, json.dumps(merged, sort_keys=True)),
                )
            con.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('catalog_version', ?)", (version,))
        return version

    def catalog_version(self) -> int:
        row = self._con().execute("SELECT value FROM meta WHERE key = 'catalog_version'").fetchone()
        return int(row[0]) if row else 0

    def catalog_since(self, version: int) -> CatalogChanges:
        with self._tx(mode="DEFERRED") as con:
            rows = con.execute(
                "SELECT item_id, body FROM catalog WHERE version > ? ORDER BY version, item_id", (version,)
            ).fetchall()
            row = con.execute("SELECT value FROM meta WHERE key = 'catalog_version'").fetchone()
        return CatalogChanges(int(row[0]) if row else 0, {str(i): json.loads(b) for i, b in rows})

    # ------------------------------------------------------------------ feedback loop
    def _landmark(self, con: sqlite3.Connection, t: int) -> int:
        """The forward-decay landmark for increments up to time ``t``, rebased (every score
        rescaled in this transaction) when ``t`` is too far past it."""
        row = con.execute("SELECT value FROM meta WHERE key = 'trend_landmark'").fetchone()
        if row is None:
            con.execute("INSERT INTO meta (key, value) VALUES ('trend_landmark', ?)", (int(t),))
            return int(t)
        landmark = int(row[0])
        if (t - landmark) / self.trend_half_life_ms > _REBASE_HALF_LIVES:
            con.execute("UPDATE trend SET score = score * ?", (decay_factor(t - landmark, self.trend_half_life_ms),))
            con.execute("UPDATE meta SET value = ? WHERE key = 'trend_landmark'", (int(t),))
            landmark = int(t)
        return landmark

    def _trend_add(self, con: sqlite3.Connection, scope: str, item: str, t: int, landmark: int) -> None:
        con.execute(
            "INSERT INTO trend (scope, item_id, score) VALUES (?, ?, ?) "
            "ON CONFLICT(scope, item_id) DO UPDATE SET score = score + excluded.score",
            (scope, item, 1.0 / decay_factor(t - landmark, self.trend_half_life_ms)),
        )

    @staticmethod
    def _ab_add(con: sqlite3.Connection, meta: Mapping[str, Any], metric: str) -> None:
        con.execute(
            "INSERT INTO ab (experiment, variant, assigned, metric, value) VALUES (?, ?, ?, ?, 1) "
            "ON CONFLICT DO UPDATE SET value = value + 1",
            (meta["experiment"], meta["variant"], int(bool(meta["assigned"])), metric),
        )

    def _apply(
        self,
        con: sqlite3.Connection,
        request_id: str,
        meta: Mapping[str, Any],
        position: int,
        item: str,
        kind: str,
        t: int,
        source: str,
        landmark: int,
        latest: int,
    ) -> str:
        """Record one reaction to a list that showed ``item`` at ``position`` and count it; a
        (request, item, type) already recorded is a duplicate and counts nothing."""
        first = (
            con.execute(
                "SELECT 1 FROM reactions WHERE request_id = ? AND type = ? LIMIT 1", (request_id, kind)
            ).fetchone()
            is None
        )
        added = con.execute(
            "INSERT OR IGNORE INTO reactions (request_id, item_id, type, ts, source) VALUES (?, ?, ?, ?, ?)",
            (request_id, item, kind, int(t), source),
        ).rowcount
        if not added:
            return "duplicate"
        context = meta["context"]
        if kind == "click":
            con.execute("UPDATE item_ctr SET clicks = clicks + 1 WHERE context = ? AND item_id = ?", (context, item))
            con.execute(
                "UPDATE slot_ctr SET clicks = clicks + 1 WHERE context = ? AND position = ?", (context, position)
            )
            if position in (meta.get("explore") or ()):
                con.executemany(
                    "UPDATE explore_ctr SET clicks = clicks + 1 WHERE context = ? AND key = ?",
                    [(context, key) for key in _explore_keys(item, meta.get("groups") or (), position)],
                )
        if kind in POSITIVE_REACTIONS:
            self._trend_add(con, context, item, min(t, latest), landmark)
        self._ab_add(con, meta, _COUNT[kind])
        if first:
            self._ab_add(con, meta, _UNIT[kind])
        return "attributed"

    def _attribute(self, con: sqlite3.Connection, subject: str, e: StoredEvent, landmark: int, latest: int) -> bool:
        t = e.timestamp_ms
        row = con.execute(_ATTRIBUTE, (e.item_id, subject, t, t - self.reaction_window_ms)).fetchone()
        if row is None:
            return False
        request_id, position, meta, _ = row
        return (
            self._apply(
                con,
                request_id,
                json.loads(meta),
                int(position),
                str(e.item_id),
                e.event_type,
                t,
                "event",
                landmark,
                latest,
            )
            == "attributed"
        )

    def _prune(self, con: sqlite3.Connection, now_ms: int) -> None:
        """Lists older than two reaction windows are forgotten (at most once a minute, or half a window)."""
        if now_ms - self._pruned_at < min(_PRUNE_EVERY_MS, self.reaction_window_ms / 2) and now_ms >= self._pruned_at:
            return
        self._pruned_at = now_ms
        cutoff = (now_ms - 2 * self.reaction_window_ms,)
        old = "SELECT request_id FROM impressions WHERE ts < ?"
        con.execute(f"DELETE FROM shown WHERE request_id IN ({old})", cutoff)
        con.execute(f"DELETE FROM reactions WHERE request_id IN ({old})", cutoff)
        con.execute("DELETE FROM impressions WHERE ts < ?", cutoff)

    def record_impressions(self, impressions: Sequence[Impression], now_ms: int) -> None:
        if not impressions:
            return
        with self._tx(self._con(stats=True)) as con:
            for imp in impressions:
                subject = imp.subject if imp.subject and self._consent(con, imp.subject) is not False else None
                if not con.execute(
                    "INSERT OR IGNORE INTO impressions (request_id, ts, subject, meta) VALUES (?, ?, ?, ?)",
                    (imp.request_id, int(imp.timestamp_ms), subject, imp.meta_json()),
                ).rowcount:
                    continue  # a request id seen before: its list was counted then
                con.executemany(
                    "INSERT OR IGNORE INTO shown (request_id, item_id, position) VALUES (?, ?, ?)",
                    [(imp.request_id, item, p) for p, item in enumerate(imp.items)],
                )
                con.executemany(
                    "INSERT INTO item_ctr (context, item_id, impressions, clicks) VALUES (?, ?, 1, 0) "
                    "ON CONFLICT DO UPDATE SET impressions = impressions + 1",
                    [(imp.context, item) for item in imp.items],
                )
                con.executemany(
                    "INSERT INTO slot_ctr (context, position, impressions, clicks) VALUES (?, ?, 1, 0) "
                    "ON CONFLICT DO UPDATE SET impressions = impressions + 1",
                    [(imp.context, p) for p in range(len(imp.items))],
                )
                con.executemany(
                    "INSERT INTO explore_ctr (context, key, impressions, clicks) VALUES (?, ?, 1, 0) "
                    "ON CONFLICT DO UPDATE SET impressions = impressions + 1",
                    [
                        (imp.context, key)
                        for p in imp.explore
                        if p < len(imp.items)
                        for key in _explore_keys(imp.items[p], imp.groups, p)
                    ],
                )
                self._ab_add(
                    con, {"experiment": imp.experiment, "variant": imp.variant, "assigned": imp.assigned}, "impressions"
                )
            self._prune(con, now_ms)

    def react(self, reactions: Sequence[Reaction], now_ms: int) -> list[ReactionResult]:
        out: list[ReactionResult] = []
        if not reactions:
            return out
        latest = now_ms + SKEW_MS
        with self._tx(self._con(stats=True)) as con:
            landmark = self._landmark(con, min(max(r.timestamp_ms for r in reactions), latest))
            for r in reactions:
                row = con.execute("SELECT ts, meta FROM impressions WHERE request_id = ?", (r.request_id,)).fetchone()
                if row is None or r.timestamp_ms - int(row[0]) > 2 * self.reaction_window_ms:  # as if pruned
                    out.append(ReactionResult("unknown_request"))
                    continue
                shown_at, meta = int(row[0]), json.loads(row[1])
                result = ReactionResult("attributed", None, meta["context"], meta["variant"])
                if r.timestamp_ms - shown_at > self.reaction_window_ms:
                    result.outcome = "expired"
                elif r.timestamp_ms < shown_at - SKEW_MS:
                    result.outcome = "before_impression"
                else:
                    pos = con.execute(
                        "SELECT position FROM shown WHERE request_id = ? AND item_id = ?", (r.request_id, r.item_id)
                    ).fetchone()
                    if pos is None:
                        result.outcome = "not_shown"
                    else:
                        result.position = int(pos[0])
                        result.outcome = self._apply(
                            con,
                            r.request_id,
                            meta,
                            result.position,
                            r.item_id,
                            r.type,
                            r.timestamp_ms,
                            "feedback",
                            landmark,
                            latest,
                        )
                out.append(result)
        return out

    def impression(self, request_id: str) -> StoredImpression | None:
        con = self._con()
        row = con.execute("SELECT subject, meta FROM impressions WHERE request_id = ?", (request_id,)).fetchone()
        if row is None:
            return None
        reactions = con.execute(
            "SELECT item_id, type, ts, source FROM reactions WHERE request_id = ? ORDER BY ts, item_id, type",
            (request_id,),
        ).fetchall()
        return StoredImpression(
            Impression.from_meta(row[1], row[0]), [(str(i), str(k), int(t), str(s)) for i, k, t, s in reactions]
        )

    def trending(self, now_ms: int, n: int, context: str | None = None) -> Trending:
        con = self._con()
        row = con.execute("SELECT value FROM meta WHERE key = 'trend_landmark'").fetchone()
        if row is None:
            return Trending()
        factor = landmark_factor(now_ms, int(row[0]), self.trend_half_life_ms)
        out = Trending(landmark_ms=int(row[0]))
        for scope in ("", context) if context else ("",):
            rows = con.execute(
                "SELECT item_id, score FROM trend WHERE scope = ? ORDER BY score DESC LIMIT ?", (scope, int(n))
            ).fetchall()
            items, raw = [str(r[0]) for r in rows], np.asarray([r[1] for r in rows], np.float64)
            if scope:
                out.context_items, out.context_raw, out.context_scores = items, raw, raw * factor
            else:
                out.items, out.raw, out.scores = items, raw, raw * factor
        return out

    def _counts(self, table: str, column: str, context: str, keys: Sequence[str]) -> dict[str, tuple[int, int]]:
        con = self._con()
        found: dict[str, tuple[int, int]] = {}
        unique = list(dict.fromkeys(str(k) for k in keys))
        for start in range(0, len(unique), 500):  # within SQLite's bound on statement parameters
            part = unique[start : start + 500]
            marks = ",".join("?" * len(part))
            for key, n, c in con.execute(
                f"SELECT {column}, impressions, clicks FROM {table} WHERE context = ? AND {column} IN ({marks})",
                (context, *part),
            ):
                found[str(key)] = (int(n), int(c))
        return found

    def item_ctr(self, context: str, item_ids: Sequence[str]) -> ItemCTR:
        items = self._counts("item_ctr", "item_id", context, item_ids)
        total = (
            self._con()
            .execute(
                "SELECT COALESCE(SUM(impressions), 0), COALESCE(SUM(clicks), 0) FROM slot_ctr WHERE context = ?",
                (context,),
            )
            .fetchone()
        )
        pairs = [items.get(str(i), (0, 0)) for i in item_ids]
        return ItemCTR(
            np.asarray([c for _, c in pairs], np.int64),
            np.asarray([n for n, _ in pairs], np.int64),
            int(total[1]),
            int(total[0]),
        )

    def explore_ctr(self, context: str, item_ids: Sequence[str], groups: Sequence[str]) -> ItemCTR:
        keys = [f"i:{i}" for i in item_ids] + [f"g:{g}" for g in groups] + ["*"]
        found = self._counts("explore_ctr", "key", context, keys)
        return _explore_counts(found, item_ids, groups)

    def slot_ctr(self, context: str) -> list[SlotCTR]:
        rows = (
            self._con()
            .execute(
                "SELECT position, impressions, clicks FROM slot_ctr WHERE context = ? ORDER BY position", (context,)
            )
            .fetchall()
        )
        return [SlotCTR(int(p), int(n), int(c)) for p, n, c in rows]

    def ab_counts(self, experiment: str) -> dict[tuple[str, bool], dict[str, int]]:
        out: dict[tuple[str, bool], dict[str, int]] = {}
        for variant, assigned, metric, value in self._con().execute(
            "SELECT variant, assigned, metric, value FROM ab WHERE experiment = ?", (experiment,)
        ):
            out.setdefault((str(variant), bool(assigned)), {})[str(metric)] = int(value)
        return out

    # ------------------------------------------------------------------ counters
    @staticmethod
    def _increment(con: sqlite3.Connection, name: str, n: int) -> None:
        con.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = value + excluded.value",
            (f"counter:{name}", int(n)),
        )

    def counters(self) -> dict[str, int]:
        rows = self._con().execute("SELECT key, value FROM meta WHERE key LIKE 'counter:%'").fetchall()
        return {str(k)[len("counter:") :]: int(v) for k, v in rows}

    def close(self) -> None:
        self._stop.set()
        self._checkpointer.join()
        with self._lock:
            for con in self._all:
                con.close()
            self._all.clear()
        self._local = threading.local()
