"""The embedded journey store: one SQLite file in WAL mode, no server, survives restarts.

Durability: every method is one transaction committed with ``synchronous=FULL`` before it returns,
so an event acknowledged to a client survives a crash of the process (and of the machine).
Forgetting: ``secure_delete`` overwrites deleted rows with zeros and a ``TRUNCATE`` checkpoint
empties the write-ahead log, so a forgotten customer's pseudonym is in none of the store's files.

Connections are per thread (SQLite's rule); WAL lets readers run beside the one writer, and a
writer waits up to ``busy_timeout_ms`` for another (another thread or another process on the
same file).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from journeyrec.serving.store.base import (
    DAY_MS,
    OPTED_OUT_EVENTS,
    AppendResult,
    Arrival,
    CatalogChanges,
    Journey,
    JourneyStore,
    StoredEvent,
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
"""


# (part, value, body): 0 events and 1 purchases in time order, 2 the subject (consent, last search),
# 3 the catalogue version
_JOURNEY = """
SELECT 0, ts, body, seq FROM events WHERE subject = ? AND ts >= ?
UNION ALL SELECT 1, ts, body, seq FROM purchases WHERE subject = ? AND ts >= ?
UNION ALL SELECT 2, consent, search, 0 FROM subjects WHERE subject = ?
UNION ALL SELECT 3, value, NULL, 0 FROM meta WHERE key = 'catalog_version'
ORDER BY 1, 2, 4
"""


class SQLiteStore(JourneyStore):
    def __init__(
        self,
        path: str | Path,
        max_events: int = 200,
        max_purchases: int = 500,
        retention_days: float = 400.0,
        busy_timeout_ms: int = 10_000,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_events = int(max_events)
        self.max_purchases = int(max_purchases)
        self.retention_ms = int(retention_days * DAY_MS)
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

    # ------------------------------------------------------------------ plumbing
    def _con(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            # one connection per thread; check_same_thread off only so that close() may run anywhere
            con = sqlite3.connect(
                self.path, isolation_level=None, timeout=self._busy_ms / 1000, check_same_thread=False
            )
            con.execute("PRAGMA synchronous=FULL")
            con.execute("PRAGMA secure_delete=ON")
            con.execute(f"PRAGMA busy_timeout={self._busy_ms}")
            self._local.con = con
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

    def _tx(self, con: sqlite3.Connection | None = None, mode: str = "IMMEDIATE") -> "SQLiteStore._Tx":
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
        n = con.execute("DELETE FROM events WHERE subject = ?", (subject,)).rowcount
        n += con.execute("DELETE FROM purchases WHERE subject = ?", (subject,)).rowcount
        con.execute("UPDATE subjects SET search = NULL, search_ts = NULL WHERE subject = ?", (subject,))
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
        with self._tx() as con:
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
        with self._lock:
            for con in self._all:
                con.close()
            self._all.clear()
        self._local = threading.local()
