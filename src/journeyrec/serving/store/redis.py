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

The feedback loop (``R`` a request id, ``C`` a context)::

    P:imp:R         hash: m (the impression's JSON but its subject), s (subject), i:<item> -> position,
                    r:<item>:<type> -> "<time>:<source>" (one per reaction), f:<type> (first of its type);
                    expires two reaction windows after it was written
    P:isub:S        sorted set of a customer's request ids by time (attribution of events)
    P:ictr:C        hash <item>:n / <item>:c impressions / clicks per item
    P:ectr:C        hash, exploration slots only: i:<item>:n / :c, g:<group>:n / :c, *:n / *:c
    P:sctr:C        hash <position>:n / <position>:c per slot, n / c for the whole context
    P:trend:all     sorted set: forward-decayed item event counts (P:trend:C: reactions in C);
    P:trend:landmark, P:trend:scopes (the sorted sets to rescale on a new landmark)
    P:ab:E          hash <variant>|<assigned 1|0>|<metric> -> count (journeyrec.serving.store.base.AB_METRICS)

Writes that read what they change (a batch of events: links, consent, trimming; forgetting) run as
Lua scripts, which Redis executes atomically; the rest are MULTI/EXEC transactions. How durable
an acknowledged write is depends on the server's persistence (``appendonly yes`` with
``appendfsync always`` for the embedded backend's guarantee). Forgetting deletes the keys; an
append-only file keeps the history until the server rewrites it (``BGREWRITEAOF``).
"""

from __future__ import annotations

import json
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import redis as redis_client

from journeyrec.serving.online import ItemCTR, Trending, landmark_factor
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

__all__ = ["RedisStore"]


def _lua_set(names: Sequence[str]) -> str:
    return "{" + ", ".join(f"['{n}'] = true" for n in names) + "}"


def _lua_map(mapping: Mapping[str, str]) -> str:
    return "{" + ", ".join(f"['{k}'] = '{v}'" for k, v in mapping.items()) + "}"


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
""" + (
    """
local function imp(rid) return P .. ':imp:' .. rid end
local function ms(x) return string.format('%d', x) end
local function num(x) return string.format('%.17g', x) end
local function drop_impressions(s)
  local z = P .. ':isub:' .. s
  for _, rid in ipairs(redis.call('ZRANGE', z, 0, -1)) do redis.call('DEL', imp(rid)) end
  redis.call('DEL', z)
end
local function landmark(t, hl)
  local key = P .. ':trend:landmark'
  local l = redis.call('GET', key)
  if not l then redis.call('SET', key, ms(t)); return t end
  l = tonumber(l)
  if (t - l) / hl > __REBASE__ then
    local f = num(2 ^ (-(t - l) / hl))
    for _, k in ipairs(redis.call('SMEMBERS', P .. ':trend:scopes')) do
      redis.call('ZUNIONSTORE', k, 1, k, 'WEIGHTS', f)
    end
    redis.call('SET', key, ms(t))
    return t
  end
  return l
end
local function trend_add(scope, item, t, l, hl)
  local key = P .. ':trend:' .. scope
  redis.call('SADD', P .. ':trend:scopes', key)
  redis.call('ZINCRBY', key, num(2 ^ ((t - l) / hl)), item)
end
local UNIT, COUNT, POSITIVE = __UNIT__, __COUNT__, __POSITIVE__
local function explore_count(ctx, item, groups, position, part)
  local g = (type(groups) == 'table' and groups[position + 1]) or ''
  local key = P .. ':ectr:' .. ctx
  redis.call('HINCRBY', key, 'i:' .. item .. ':' .. part, 1)
  redis.call('HINCRBY', key, 'g:' .. g .. ':' .. part, 1)
  redis.call('HINCRBY', key, '*:' .. part, 1)
end
local function apply(rid, meta, pos, item, kind, t, source, l, hl, latest)
  local k = imp(rid)
  if redis.call('HSETNX', k, 'r:' .. item .. ':' .. kind, ms(t) .. ':' .. source) == 0 then return 'duplicate' end
  local first = redis.call('HSETNX', k, 'f:' .. kind, 1)
  local ctx = meta['context']
  if kind == 'click' then
    redis.call('HINCRBY', P .. ':ictr:' .. ctx, item .. ':c', 1)
    redis.call('HINCRBY', P .. ':sctr:' .. ctx, pos .. ':c', 1)
    redis.call('HINCRBY', P .. ':sctr:' .. ctx, 'c', 1)
    for _, e in ipairs(meta['explore'] or {}) do
      if e == tonumber(pos) then explore_count(ctx, item, meta['groups'], e, 'c') end
    end
  end
  if POSITIVE[kind] then trend_add(ctx, item, math.min(t, latest), l, hl) end
  local unit = P .. ':ab:' .. meta['experiment']
  local prefix = meta['variant'] .. '|' .. (meta['assigned'] and '1' or '0') .. '|'
  redis.call('HINCRBY', unit, prefix .. COUNT[kind], 1)
  if first == 1 then redis.call('HINCRBY', unit, prefix .. UNIT[kind], 1) end
  return 'attributed'
end
local function attribute(subject, item, kind, t, window, l, hl, latest)
  local best, best_pos
  for _, rid in ipairs(redis.call('ZREVRANGEBYSCORE', P .. ':isub:' .. subject, ms(t), ms(t - window))) do
    local pos = redis.call('HGET', imp(rid), 'i:' .. item)
    if pos then
      if redis.call('HEXISTS', imp(rid), 'r:' .. item .. ':click') == 1 then best, best_pos = rid, pos; break end
      if not best then best, best_pos = rid, pos end
    end
  end
  if not best then return false end
  local m = redis.call('HGET', imp(best), 'm')
  return m and apply(best, cjson.decode(m), best_pos, item, kind, t, 'event', l, hl, latest) == 'attributed'
end
""".replace("__REBASE__", "256")
    .replace("__UNIT__", _lua_map(_UNIT))
    .replace("__COUNT__", _lua_map(_COUNT))
    .replace("__POSITIVE__", _lua_set(POSITIVE_REACTIONS))
)

# ARGV: prefix, cutoff, max_events, max_purchases, reaction window, trending half-life, the batch's latest
# time, the latest time the decayed statistics count (now + skew), then per arrival: customer,
# anonymous, ts, event type, body, item
# (reply per arrival: 1 stored, 4 stored and attributed to a list, 2 opted out, 3 expired)
_APPEND = (
    _COMMON
    + """
local cutoff, max_events, max_purchases = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local window, hl, latest = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[8])
local l = landmark(math.min(tonumber(ARGV[7]), latest), hl)
local TRENDING, ATTRIBUTED = """
    + _lua_set(TRENDING_EVENTS)
    + ", "
    + _lua_set(ATTRIBUTED_EVENTS)
    + """
local out, touched, opted = {}, {}, 0
local i = 9
while i <= #ARGV do
  local cust, anon, ts, etype, body = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]), ARGV[i + 3], ARGV[i + 4]
  local item = ARGV[i + 5]
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
    local code = 1
    if item ~= '' and TRENDING[etype] then trend_add('all', item, math.min(ts, latest), l, hl) end
    if item ~= '' and ATTRIBUTED[etype] and kind == 'customer'
       and attribute(subject, item, etype, ts, window, l, hl, latest) then
      code = 4
    end
    out[#out + 1] = code
  end
  i = i + 6
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
  drop_impressions(x)
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
drop_impressions(s)
return n
"""
)

# ARGV: prefix, ttl (ms), then per impression: request id, time, subject, context, experiment, variant,
# assigned (1 | 0), the impression's JSON without subject (explore positions and groups read from it),
# number of items, the items
_IMPRESSIONS = (
    _COMMON
    + """
local ttl = tonumber(ARGV[2])
local i = 3
while i <= #ARGV do
  local rid, ts, subject, ctx = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2], ARGV[i + 3]
  local experiment, variant, assigned = ARGV[i + 4], ARGV[i + 5], ARGV[i + 6]
  local meta, n = ARGV[i + 7], tonumber(ARGV[i + 8])
  local first_item = i + 9
  local k = imp(rid)
  if redis.call('EXISTS', k) == 0 then
    if subject ~= '' and redis.call('HGET', subj(subject), 'consent') == '0' then subject = '' end
    redis.call('HSET', k, 'm', meta)
    if subject ~= '' then
      local z = P .. ':isub:' .. subject
      redis.call('HSET', k, 's', subject)
      redis.call('ZADD', z, ms(ts), rid)
      redis.call('ZREMRANGEBYSCORE', z, '-inf', '(' .. ms(ts - ttl))
      redis.call('PEXPIRE', z, ttl)
    end
    for j = 0, n - 1 do
      local item = ARGV[first_item + j]
      redis.call('HSET', k, 'i:' .. item, j)
      redis.call('HINCRBY', P .. ':ictr:' .. ctx, item .. ':n', 1)
      redis.call('HINCRBY', P .. ':sctr:' .. ctx, j .. ':n', 1)
    end
    local decoded = cjson.decode(meta)
    for _, e in ipairs(decoded['explore'] or {}) do
      if e < n then explore_count(ctx, ARGV[first_item + e], decoded['groups'], e, 'n') end
    end
    redis.call('HINCRBY', P .. ':sctr:' .. ctx, 'n', n)
    redis.call('PEXPIRE', k, ttl)
    redis.call('HINCRBY', P .. ':ab:' .. experiment, variant .. '|' .. assigned .. '|impressions', 1)
  end
  i = first_item + n
end
return 1
"""
)

# ARGV: prefix, reaction window, trending half-life, allowed clock skew, the batch's latest time, the latest
# time the decayed statistics count, then per reaction: request id, item, type, time. Reply per
# reaction: outcome, position, context, variant ('' if none)
_REACT = (
    _COMMON
    + """
local window, hl, skew, latest = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[6])
local l = landmark(math.min(tonumber(ARGV[5]), latest), hl)
local out = {}
local i = 7
while i <= #ARGV do
  local rid, item, kind, t = ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3])
  local m = redis.call('HGET', imp(rid), 'm')
  local outcome, pos, ctx, variant = 'unknown_request', '', '', ''
  if m then
    local meta = cjson.decode(m)
    ctx, variant = meta['context'], meta['variant']
    if t - meta['timestamp_ms'] > window then outcome = 'expired'
    elseif t < meta['timestamp_ms'] - skew then outcome = 'before_impression'
    else
      local p = redis.call('HGET', imp(rid), 'i:' .. item)
      if not p then outcome = 'not_shown'
      else pos = p; outcome = apply(rid, meta, p, item, kind, t, 'feedback', l, hl, latest) end
    end
  end
  out[#out + 1] = outcome
  out[#out + 1] = pos
  out[#out + 1] = ctx
  out[#out + 1] = variant
  i = i + 4
end
return out
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
        reaction_window_minutes: float = 1440.0,
        trending_half_life_hours: float = 168.0,
    ) -> None:
        self.url = url
        self.reaction_window_ms = int(reaction_window_minutes * 60_000)
        self.trend_half_life_ms = int(trending_half_life_hours * 3_600_000)
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
        self._impressions = self.r.register_script(_IMPRESSIONS)
        self._react = self.r.register_script(_REACT)

    def _k(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    def _limits(self, now_ms: int) -> list[Any]:
        return [self.prefix, now_ms - self.retention_ms, self.max_events, self.max_purchases]

    # ------------------------------------------------------------------ journeys
    def append(self, arrivals: Sequence[Arrival], now_ms: int) -> AppendResult:
        latest = max((a.event.timestamp_ms for a in arrivals), default=now_ms)
        args = [*self._limits(now_ms), self.reaction_window_ms, self.trend_half_life_ms, latest, now_ms + SKEW_MS]
        for a in arrivals:
            e = a.event
            args += [a.customer or "", a.anonymous or "", e.timestamp_ms, e.event_type, e.to_json(), e.item_id or ""]
        codes = self._append(args=args) if arrivals else []
        result = AppendResult()
        for i, c in enumerate(codes):
            (result.stored if c in (1, 4) else result.opted_out if c == 2 else result.expired).append(i)
            if c == 4:
                result.attributed.append(i)
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

    # ------------------------------------------------------------------ feedback loop
    def record_impressions(self, impressions: Sequence[Impression], now_ms: int) -> None:
        if not impressions:
            return
        args: list[Any] = [self.prefix, 2 * self.reaction_window_ms]
        for imp in impressions:
            args += [
                imp.request_id,
                int(imp.timestamp_ms),
                imp.subject or "",
                imp.context,
                imp.experiment,
                imp.variant,
                "1" if imp.assigned else "0",
                imp.meta_json(),
                len(imp.items),
                *imp.items,
            ]
        self._impressions(args=args)

    def react(self, reactions: Sequence[Reaction], now_ms: int) -> list[ReactionResult]:
        if not reactions:
            return []
        args: list[Any] = [
            self.prefix,
            self.reaction_window_ms,
            self.trend_half_life_ms,
            SKEW_MS,
            max(r.timestamp_ms for r in reactions),
            now_ms + SKEW_MS,
        ]
        for r in reactions:
            args += [r.request_id, r.item_id, r.type, int(r.timestamp_ms)]
        reply = [_text(x) for x in self._react(args=args)]
        return [
            ReactionResult(
                reply[j], int(reply[j + 1]) if reply[j + 1] else None, reply[j + 2] or None, reply[j + 3] or None
            )
            for j in range(0, len(reply), 4)
        ]

    def impression(self, request_id: str) -> StoredImpression | None:
        fields = {_text(k): _text(v) for k, v in self.r.hgetall(self._k("imp", request_id)).items()}
        if "m" not in fields:
            return None
        reactions = []
        for name, value in fields.items():
            if name.startswith("r:"):
                item, kind = name[2:].rsplit(":", 1)
                t, source = value.split(":", 1)
                reactions.append((item, kind, int(t), source))
        return StoredImpression(
            Impression.from_meta(fields["m"], fields.get("s")), sorted(reactions, key=lambda r: (r[2], r[0], r[1]))
        )

    def trending(self, now_ms: int, n: int, context: str | None = None) -> Trending:
        with self.r.pipeline(transaction=True) as pipe:
            pipe.get(self._k("trend", "landmark"))
            pipe.zrevrange(self._k("trend", "all"), 0, int(n) - 1, withscores=True)
            if context:
                pipe.zrevrange(self._k("trend", context), 0, int(n) - 1, withscores=True)
            landmark, *tops = pipe.execute()
        if landmark is None:
            return Trending()
        factor = landmark_factor(now_ms, int(landmark), self.trend_half_life_ms)
        raw = np.asarray([s for _, s in tops[0]], np.float64)
        out = Trending([_text(i) for i, _ in tops[0]], raw * factor, raw=raw, landmark_ms=int(landmark))
        if context:
            out.context_items = [_text(i) for i, _ in tops[1]]
            out.context_raw = np.asarray([s for _, s in tops[1]], np.float64)
            out.context_scores = out.context_raw * factor
        return out

    def item_ctr(self, context: str, item_ids: Sequence[str]) -> ItemCTR:
        fields = [f"{i}:{part}" for i in item_ids for part in ("n", "c")]
        with self.r.pipeline(transaction=False) as pipe:
            pipe.hmget(self._k("sctr", context), ["n", "c"])
            if fields:
                pipe.hmget(self._k("ictr", context), fields)
            total, *values = pipe.execute()
        counts = np.asarray([int(v or 0) for v in (values[0] if values else [])], np.int64).reshape(-1, 2)
        return ItemCTR(counts[:, 1].copy(), counts[:, 0].copy(), int(total[1] or 0), int(total[0] or 0))

    def explore_ctr(self, context: str, item_ids: Sequence[str], groups: Sequence[str]) -> ItemCTR:
        keys = [f"i:{i}" for i in item_ids] + [f"g:{g}" for g in groups] + ["*"]
        values = self.r.hmget(self._k("ectr", context), [f"{k}:{part}" for k in keys for part in ("n", "c")])
        counts = np.asarray([int(v or 0) for v in values], np.int64).reshape(-1, 2)
        n_items, n_groups = len(item_ids), len(groups)
        items, grps, total = counts[:n_items], counts[n_items : n_items + n_groups], counts[-1]
        return ItemCTR(
            items[:, 1].copy(), items[:, 0].copy(), int(total[1]), int(total[0]), grps[:, 1].copy(), grps[:, 0].copy()
        )

    def slot_ctr(self, context: str) -> list[SlotCTR]:
        slots: dict[int, list[int]] = {}
        for k, v in self.r.hgetall(self._k("sctr", context)).items():
            name = _text(k)
            if ":" in name:
                pos, part = name.split(":")
                slots.setdefault(int(pos), [0, 0])[0 if part == "n" else 1] = int(v)
        return [SlotCTR(p, n, c) for p, (n, c) in sorted(slots.items())]

    def ab_counts(self, experiment: str) -> dict[tuple[str, bool], dict[str, int]]:
        out: dict[tuple[str, bool], dict[str, int]] = {}
        for k, v in self.r.hgetall(self._k("ab", experiment)).items():
            variant, assigned, metric = _text(k).rsplit("|", 2)
            out.setdefault((variant, assigned == "1"), {})[metric] = int(v)
        return out

    # ------------------------------------------------------------------ counters
    def counters(self) -> dict[str, int]:
        return {_text(k): int(v) for k, v in self.r.hgetall(self._k("counters")).items()}

    def close(self) -> None:
        self.r.close()
