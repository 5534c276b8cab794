"""The shared journey store: Redis, for several service replicas (``store=redis store.url=...``).

Keys (``P`` = ``store.prefix``; ``S`` a subject's pseudonym, ``A`` an anonymous one)::

    P:ev:S      sorted set of the recent events (score: time; member: zero-padded sequence + ":" + JSON)
    P:buy:S     sorted set of the purchases, the same way
    P:subj:S    hash: kind (customer | anonymous), consent (1 | 0), search (JSON), search_ts
    P:link:A    the customer pseudonym an anonymous visitor was linked to
    P:anons:S   set of the anonymous pseudonyms linked to a customer
    P:customers set of customer pseudonyms
    P:seq       event sequence counter (members stay unique, so equal events are both kept)
    P:cat:items hash item id -> JSON of its live fields;  P:cat:log sorted set item id by version;
    P:cat:version
    P:counters  hash of named counters

Writes that read what they change (a batch of events: links, consent, trimming; forgetting) run as
Lua scripts, which Redis executes atomically; the rest are MULTI/EXEC transactions. How durable
an acknowledged write is depends on the server's persistence (``appendonly yes`` with
``appendfsync always`` for the embedded backend's guarantee). Forgetting deletes the keys; an
append-only file keeps the history until the server rewrites it (``BGREWRITEAOF``).
"""

from __future__ import annotations

import json
from typing import Any, Iterator, Mapping, Sequence

import redis as redis_client

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

__all__ = ["RedisStore"]

_COMMON = """
local P = ARGV[1]
local function subj(s) return P .. ':subj:' .. s end
local function ev(s) return P .. ':ev:' .. s end
local function buy(s) return P .. ':buy:' .. s end
local function ensure(s, kind)
  if kind == 'customer' then
    redis.call('HSET', subj(s), 'kind', 'customer')
    redis.call('SADD', P .. ':customers', s)
  else
    redis.call('HSETNX', subj(s), 'kind', kind)
  end
end
local function trim(s, cutoff, max_events, max_purchases)
  redis.call('ZREMRANGEBYSCORE', ev(s), '-inf', '(' .. cutoff)
  redis.call('ZREMRANGEBYRANK', ev(s), 0, -(max_events + 1))
  redis.call('ZREMRANGEBYSCORE', buy(s), '-inf', '(' .. cutoff)
  redis.call('ZREMRANGEBYRANK', buy(s), 0, -(max_purchases + 1))
end
local function set_search(s, body, ts)
  local cur = redis.call('HGET', subj(s), 'search_ts')
  if (not cur) or tonumber(cur) <= ts then
    redis.call('HSET', subj(s), 'search', body, 'search_ts', ts)
  end
end
local function link(anon, cust, cutoff, max_events, max_purchases)
  redis.call('SET', P .. ':link:' .. anon, cust)
  redis.call('SADD', P .. ':anons:' .. cust, anon)
  ensure(cust, 'customer')
  if anon == cust then return 0 end
  if redis.call('HGET', subj(cust), 'consent') == '0' then
    redis.call('DEL', ev(anon), buy(anon), subj(anon))
    return 0
  end
  local moved = redis.call('ZCARD', ev(anon))
  if moved > 0 then redis.call('ZUNIONSTORE', ev(cust), 2, ev(cust), ev(anon)) end
  if redis.call('ZCARD', buy(anon)) > 0 then redis.call('ZUNIONSTORE', buy(cust), 2, buy(cust), buy(anon)) end
  local s = redis.call('HMGET', subj(anon), 'search', 'search_ts')
  if s[1] then set_search(cust, s[1], tonumber(s[2])) end
  redis.call('DEL', ev(anon), buy(anon), subj(anon))
  trim(cust, cutoff, max_events, max_purchases)
  return moved
end
"""

# ARGV: prefix, cutoff, max_events, max_purchases, then per arrival: customer, anonymous, ts, event type, body
_APPEND = (
    _COMMON
    + """
local cutoff, max_events, max_purchases = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local out, touched, opted = {}, {}, 0
local i = 5
while i <= #ARGV do
  local cust, anon, ts, etype, body = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]), ARGV[i + 3], ARGV[i + 4]
  local subject, kind
  if cust ~= '' then
    subject, kind = cust, 'customer'
    if anon ~= '' and redis.call('GET', P .. ':link:' .. anon) ~= cust then
      link(anon, cust, cutoff, max_events, max_purchases)
      touched[cust] = true
    end
  else
    local linked = redis.call('GET', P .. ':link:' .. anon)
    if linked then subject, kind = linked, 'customer' else subject, kind = anon, 'anonymous' end
  end
  if redis.call('HGET', subj(subject), 'consent') == '0' then
    out[#out + 1] = 2
    opted = opted + 1
  elseif ts < cutoff then
    out[#out + 1] = 3
  else
    ensure(subject, kind)
    local member = string.format('%016d', redis.call('INCR', P .. ':seq')) .. ':' .. body
    redis.call('ZADD', ev(subject), ts, member)
    if etype == 'purchase' then redis.call('ZADD', buy(subject), ts, member)
    elseif etype == 'search' then set_search(subject, body, ts) end
    touched[subject] = true
    out[#out + 1] = 1
  end
  i = i + 5
end
for s, _ in pairs(touched) do trim(s, cutoff, max_events, max_purchases) end
if opted > 0 then redis.call('HINCRBY', P .. ':counters', '"""
    + OPTED_OUT_EVENTS
    + """', opted) end
return out
"""
)

# ARGV: prefix, cutoff, max_events, max_purchases, anonymous, customer
_LINK = (
    _COMMON
    + """
return link(ARGV[5], ARGV[6], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]))
"""
)

# ARGV: prefix, subject
_FORGET = (
    _COMMON
    + """
local s = ARGV[2]
local removed = 0
local subjects = redis.call('SMEMBERS', P .. ':anons:' .. s)
subjects[#subjects + 1] = s
for _, x in ipairs(subjects) do
  removed = removed + redis.call('ZCARD', ev(x)) + redis.call('ZCARD', buy(x))
  redis.call('DEL', ev(x), buy(x), subj(x))
  if x ~= s then redis.call('DEL', P .. ':link:' .. x) end
end
redis.call('DEL', P .. ':anons:' .. s, P .. ':link:' .. s)
redis.call('SREM', P .. ':customers', s)
return removed
"""
)

# ARGV: prefix, subject, personalisation (1 | 0)
_CONSENT = (
    _COMMON
    + """
local s = ARGV[2]
ensure(s, 'customer')
redis.call('HSET', subj(s), 'consent', ARGV[3])
if ARGV[3] == '1' then return 0 end
local n = redis.call('ZCARD', ev(s)) + redis.call('ZCARD', buy(s))
redis.call('DEL', ev(s), buy(s))
redis.call('HDEL', subj(s), 'search', 'search_ts')
return n
"""
)


def _body(member: bytes) -> bytes:
    return member.split(b":", 1)[1]


def _text(value: bytes | str) -> str:
    """Replies are bytes (the client does not decode them); keys and members here are UTF-8."""
    return value.decode() if isinstance(value, bytes) else value


class RedisStore(JourneyStore):
    def __init__(
        self,
        url: str,
        prefix: str = "jr",
        max_events: int = 200,
        max_purchases: int = 500,
        retention_days: float = 400.0,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.max_events = int(max_events)
        self.max_purchases = int(max_purchases)
        self.retention_ms = int(retention_days * DAY_MS)
        self.r = redis_client.Redis.from_url(url)
        self.r.ping()  # fail at start-up, naming the URL, rather than on the first request
        self._append = self.r.register_script(_APPEND)
        self._link = self.r.register_script(_LINK)
        self._forget = self.r.register_script(_FORGET)
        self._consent = self.r.register_script(_CONSENT)

    def _k(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    def _limits(self, now_ms: int) -> list[Any]:
        return [self.prefix, now_ms - self.retention_ms, self.max_events, self.max_purchases]

    # ------------------------------------------------------------------ journeys
    def append(self, arrivals: Sequence[Arrival], now_ms: int) -> AppendResult:
        args = self._limits(now_ms)
        for a in arrivals:
            e = a.event
            args += [a.customer or "", a.anonymous or "", e.timestamp_ms, e.event_type, e.to_json()]
        codes = self._append(args=args) if arrivals else []
        result = AppendResult()
        for i, c in enumerate(codes):
            (result.stored if c == 1 else result.opted_out if c == 2 else result.expired).append(i)
        return result

    def journey(self, subject: str, now_ms: int) -> Journey:
        cutoff = now_ms - self.retention_ms
        with self.r.pipeline(transaction=True) as pipe:
            pipe.zrangebyscore(self._k("ev", subject), cutoff, "+inf")
            pipe.zrangebyscore(self._k("buy", subject), cutoff, "+inf")
            pipe.hgetall(self._k("subj", subject))
            pipe.get(self._k("cat", "version"))
            events, purchases, info, version = pipe.execute()
        consent = info.get(b"consent")
        search = StoredEvent.from_json(info[b"search"]) if info.get(b"search") else None
        return Journey(
            subject,
            [StoredEvent.from_json(_body(m)) for m in events],
            [StoredEvent.from_json(_body(m)) for m in purchases],
            search if search and search.timestamp_ms >= cutoff else None,
            None if consent is None else consent == b"1",
            known=bool(info),
            catalog_version=int(version or 0),
        )

    def link(self, anonymous: str, customer: str, now_ms: int) -> int:
        return int(self._link(args=[*self._limits(now_ms), anonymous, customer]))

    def set_consent(self, subject: str, personalisation: bool) -> int:
        return int(self._consent(args=[self.prefix, subject, "1" if personalisation else "0"]))

    def forget(self, subject: str) -> int:
        return int(self._forget(args=[self.prefix, subject]))

    def customers(self) -> Iterator[str]:
        yield from sorted(_text(m) for m in self.r.smembers(self._k("customers")))

    # ------------------------------------------------------------------ live catalogue
    def put_items(self, items: Mapping[str, Mapping[str, Any]]) -> int:
        ids = list(items)
        key, version_key = self._k("cat", "items"), self._k("cat", "version")
        with self.r.pipeline(transaction=True) as pipe:
            while True:  # optimistic: another writer of the catalogue in between makes this one retry
                try:
                    pipe.watch(key, version_key)
                    version = int(pipe.get(version_key) or 0) + 1
                    old = dict(zip(ids, pipe.hmget(key, ids))) if ids else {}
                    merged: dict[Any, Any] = {
                        i: json.dumps({**(json.loads(old[i] or "{}")), **dict(items[i])}, sort_keys=True) for i in ids
                    }
                    pipe.multi()
                    pipe.set(version_key, version)
                    if merged:
                        pipe.hset(key, mapping=merged)
                        pipe.zadd(self._k("cat", "log"), {i: version for i in ids})
                    pipe.execute()
                    return version
                except redis_client.WatchError:
                    continue

    def catalog_version(self) -> int:
        return int(self.r.get(self._k("cat", "version")) or 0)

    def catalog_since(self, version: int) -> CatalogChanges:
        with self.r.pipeline(transaction=True) as pipe:
            pipe.get(self._k("cat", "version"))
            pipe.zrangebyscore(self._k("cat", "log"), f"({version}", "+inf")
            current, ids = pipe.execute()
        values = self.r.hmget(self._k("cat", "items"), ids) if ids else []
        return CatalogChanges(
            int(current or 0), {_text(i): json.loads(v) for i, v in zip(ids, values) if v is not None}
        )

    # ------------------------------------------------------------------ counters
    def counters(self) -> dict[str, int]:
        return {_text(k): int(v) for k, v in self.r.hgetall(self._k("counters")).items()}

    def close(self) -> None:
        self.r.close()
