"""The distributed store: ``IStore`` on a Redis server that several owncast nodes share.

Every key starts with ``key_prefix`` (``owncast:`` by default), so several deployments,
or several test runs, can share one Redis database. The layout, after the prefix::

    settings            hash    setting name -> JSON value
    tokens              hash    token -> JSON {token, name, scopes, timestamp}
    tokens:order        zset    token, scored by timestamp (ties: by token)
    tokens:used         hash    token -> lastUsed (a float, as text)
    webhooks:next       string  INCR counter of webhook ids; never reset, so ids are not reused
    webhooks            hash    id -> JSON {url, events, timestamp}
    webhooks:order      zset    id, scored by id
    webhooks:used       hash    id -> lastUsed (a float, as text)
    messages:next       string  INCR counter: the order messages were added in
    messages            hash    message id -> JSON message (``visible`` is its one mutable field)
    messages:order      zset    message id, scored by that counter
    messages:time       zset    message id, scored by timestamp (for ``since``)
    samples:next        string  INCR counter that keeps sample members unique
    samples:kinds       set     every kind that has samples
    samples:kind:K      zset    "when value n" for kind K, scored by when

A write that touches several keys (a record and its indexes) is one Lua script, so other
nodes see all of it or none of it. Lua only moves the JSON text around, never re-encodes
it (Redis's cjson would round floats to 14 digits and turn ``[]`` into ``{}``), which is
why ``lastUsed`` lives in its own hash: touching a token or webhook is one atomic write.
``set_visibility`` reads the JSON, changes ``visible`` in Python and writes it back only
where the message still exists; ``visible`` is the only field that ever changes, so
concurrent writers end in the state of one of them.

Durability is the operator's job: a write is durable once its Deferred fires only as far
as the Redis server's persistence (AOF with ``appendfsync everysec`` or ``always``, or RDB
snapshots) makes it so. A Redis without persistence loses everything when it restarts.

``start`` gives up after ``connect_timeout`` seconds, so a misconfigured node fails at
startup, loudly. Once running, losing Redis is an outage (``owncast.store.redislink``):
logged once, writes refused at once with ``StoreUnavailableError`` (a 503), the last
answer of each read (settings, tokens, webhooks, chat history, stats) served from
memory, and the best-effort writes (``lastUsed`` touches, stats samples) dropped, until
Redis is back and the store reconnects by itself.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Coroutine, Hashable
from typing import Any

import txredisapi
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer

from owncast.interfaces import IStore
from owncast.store.redisconfig import RedisConfig
from owncast.store.redislink import (
    REPLY_TIMEOUT,
    Outage,
    RedisUnavailableError,
    StoreUnavailableError,
    best_effort,
    connect,
    newer_than,
    remembered,
)

__all__ = ["DuplicateRecordError", "RedisStore", "RedisUnavailableError", "StoreUnavailableError"]


class DuplicateRecordError(ValueError):
    """A token or message with that id is already stored."""


# -- scripts (KEYS and ARGV documented on each; every key is passed in KEYS) ----------------

# KEYS: records hash, order zset, used hash. ARGV: id, JSON, score, lastUsed or ''.
_ADD_RECORD = """
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then
  return redis.error_reply('DUPLICATE ' .. ARGV[1])
end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
if ARGV[4] ~= '' then redis.call('HSET', KEYS[3], ARGV[1], ARGV[4]) end
return 1
"""

# KEYS: records hash, order zset, used hash. ARGV: id. Returns 1 when it existed.
_DELETE_RECORD = """
local existed = redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
return existed
"""

# KEYS: records hash, used hash. ARGV: id, lastUsed. A deleted record stays deleted.
_TOUCH_RECORD = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
end
return 0
"""

# KEYS: order zset, records hash, used hash. Returns [id, JSON, lastUsed or ''] * n in order.
_LIST_RECORDS = """
local out = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local raw = redis.call('HGET', KEYS[2], id)
  if raw then
    out[#out + 1] = id
    out[#out + 1] = raw
    out[#out + 1] = redis.call('HGET', KEYS[3], id) or ''
  end
end
return out
"""

# KEYS: id counter, records hash, order zset. ARGV: JSON. Returns the new id.
_ADD_WEBHOOK = """
local id = redis.call('INCR', KEYS[1])
redis.call('HSET', KEYS[2], id, ARGV[1])
redis.call('ZADD', KEYS[3], id, id)
return id
"""

# KEYS: messages hash, order zset, time zset, sequence counter. ARGV: id, JSON, timestamp.
_ADD_MESSAGE = """
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then
  return redis.error_reply('DUPLICATE ' .. ARGV[1])
end
local seq = redis.call('INCR', KEYS[4])
redis.call('ZADD', KEYS[2], seq, ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
return seq
"""

# KEYS: messages hash, order zset, time zset. ARGV: since or '', '1' for visible only,
# limit or ''. Returns the JSON of the matching messages, newest first, at most limit.
_LIST_MESSAGES = """
local visible_only = ARGV[2] == '1'
local limit = tonumber(ARGV[3])
local picked = {}
local function full(id)
  local raw = redis.call('HGET', KEYS[1], id)
  if raw and (not visible_only or cjson.decode(raw)['visible'] == true) then
    picked[#picked + 1] = raw
  end
  return limit ~= nil and #picked >= limit
end
if limit ~= nil and limit <= 0 then return picked end
if ARGV[1] == '' then
  local start = 0
  while true do
    local ids = redis.call('ZREVRANGE', KEYS[2], start, start + 99)
    if #ids == 0 then break end
    for _, id in ipairs(ids) do
      if full(id) then return picked end
    end
    start = start + 100
  end
else
  local ids = redis.call('ZRANGEBYSCORE', KEYS[3], '(' .. ARGV[1], '+inf')
  local seq = {}
  for _, id in ipairs(ids) do seq[id] = tonumber(redis.call('ZSCORE', KEYS[2], id)) end
  table.sort(ids, function(a, b) return seq[a] > seq[b] end)
  for _, id in ipairs(ids) do
    if full(id) then return picked end
  end
end
return picked
"""

# KEYS: messages hash. ARGV: id, JSON, id, JSON... Returns 1 or 0 per id: written or gone.
_REPLACE_EXISTING = """
local written = {}
for i = 1, #ARGV, 2 do
  if redis.call('HEXISTS', KEYS[1], ARGV[i]) == 1 then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
    written[#written + 1] = 1
  else
    written[#written + 1] = 0
  end
end
return written
"""

# KEYS: samples zset of the kind, counter, kinds set. ARGV: when, value, kind.
_ADD_SAMPLE = """
local n = redis.call('INCR', KEYS[2])
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[1] .. ' ' .. ARGV[2] .. ' ' .. n)
redis.call('SADD', KEYS[3], ARGV[3])
return n
"""


def _as_deferred(method: Callable[..., Coroutine]) -> Callable[..., Deferred]:
    """Make an ``async def`` method return a Deferred, as IStore promises; a lost
    connection starts an outage and fails the call with ``StoreUnavailableError``."""

    @functools.wraps(method)
    def wrapper(self: RedisStore, *args: Any, **kwargs: Any) -> Deferred:
        return Deferred.fromCoroutine(self._guarded(method(self, *args, **kwargs)))

    return wrapper


def _number(value: Any) -> str:
    """A float as text Redis parses back to the same double."""
    return repr(float(value))


def _used(text: str) -> float | None:
    return float(text) if text else None


def _duplicates(error: txredisapi.ResponseError) -> bool:
    return str(error).startswith("DUPLICATE")


@implementer(IStore)
class RedisStore:
    """``IStore`` on Redis through a txredisapi connection pool opened by ``start``.

    ``reactor`` times the connection attempt; ``config.key_prefix`` namespaces every key.
    """

    def __init__(
        self,
        reactor: IReactorTime,
        config: RedisConfig | None = None,
        *,
        poolsize: int = 4,
        reply_timeout: float | None = REPLY_TIMEOUT,
    ):
        self._reactor = reactor
        self._config = config or RedisConfig()
        self._prefix = self._config.key_prefix
        self._poolsize = poolsize
        self._reply_timeout = reply_timeout
        self._redis: Any = None
        self.outage = Outage(reactor, self._config, self._reopen)
        #: (read, key) -> (its arguments, its answer), for reads served while Redis is down
        self._memory: dict[tuple[str, Hashable], tuple[tuple, Any]] = {}

    def _key(self, *parts: str) -> str:
        return self._prefix + ":".join(parts)

    @property
    def _r(self) -> Any:
        if self._redis is None:
            raise RuntimeError("store is not open")
        if not self.outage.up:
            raise StoreUnavailableError()
        return self._redis

    async def _guarded(self, call: Coroutine) -> Any:
        try:
            return await call
        except txredisapi.ConnectionError as e:  # lost, never connected, or no reply
            self.outage.lost(str(e) or type(e).__name__)
            raise StoreUnavailableError() from e

    # -- lifecycle ---------------------------------------------------------------------
    def _connect(self) -> Coroutine:
        return connect(
            self._config, self._reactor, poolsize=self._poolsize, reply_timeout=self._reply_timeout
        )

    @_as_deferred
    async def start(self) -> None:
        self._redis = await self._connect()

    async def _reopen(self) -> None:
        """Fresh connections once Redis is back (``Outage`` calls it)."""
        redis = await self._connect()
        old, self._redis = self._redis, redis
        if old is None:  # stopped meanwhile
            self._redis = None
            await redis.disconnect()
        else:
            old.disconnect().addErrback(lambda _: None)

    @_as_deferred
    async def stop(self) -> None:
        self.outage.stop()
        redis, self._redis = self._redis, None
        if redis is not None:
            await redis.disconnect()

    # -- settings ----------------------------------------------------------------------
    @_as_deferred
    @remembered(lambda: None)
    async def get_settings(self) -> dict:
        stored = await self._r.hgetall(self._key("settings"))
        return {name: json.loads(value) for name, value in stored.items()}

    @_as_deferred
    async def set_settings(self, values: dict) -> None:
        if not values:
            return
        pairs: list[str] = []
        for name, value in values.items():
            pairs += [name, json.dumps(value)]
        await self._r.execute_command("HSET", self._key("settings"), *pairs)

    # -- records with an order and a lastUsed: tokens and webhooks ---------------------
    def _record_keys(self, kind: str) -> tuple[str, str, str]:
        return self._key(kind), self._key(kind, "order"), self._key(kind, "used")

    async def _list_records(self, kind: str) -> list[tuple[str, dict, float | None]]:
        records, order, used = self._record_keys(kind)
        flat = await self._r.eval(_LIST_RECORDS, [order, records, used])
        return [
            (flat[i], json.loads(flat[i + 1]), _used(flat[i + 2])) for i in range(0, len(flat), 3)
        ]

    async def _delete_record(self, kind: str, record_id: str) -> bool:
        return bool(await self._r.eval(_DELETE_RECORD, list(self._record_keys(kind)), [record_id]))

    async def _touch_record(self, kind: str, record_id: str, when: float) -> None:
        records, _, used = self._record_keys(kind)
        await self._r.eval(_TOUCH_RECORD, [records, used], [record_id, _number(when)])

    # -- access tokens -----------------------------------------------------------------
    @_as_deferred
    async def add_token(self, record: dict) -> None:
        token = record["token"]
        stored = {
            "token": token,
            "name": record["name"],
            "scopes": record["scopes"],
            "timestamp": float(record["timestamp"]),
        }
        last_used = record.get("lastUsed")
        args = [
            token,
            json.dumps(stored),
            _number(stored["timestamp"]),
            "" if last_used is None else _number(last_used),
        ]
        try:
            await self._r.eval(_ADD_RECORD, list(self._record_keys("tokens")), args)
        except txredisapi.ResponseError as e:
            if _duplicates(e):
                raise DuplicateRecordError(f"token {token!r} exists") from None
            raise

    @_as_deferred
    async def delete_token(self, token: str) -> bool:
        return await self._delete_record("tokens", token)

    @_as_deferred
    @remembered(lambda: None)
    async def list_tokens(self) -> list[dict]:
        return [
            dict(stored, lastUsed=last_used)
            for _, stored, last_used in await self._list_records("tokens")
        ]

    @_as_deferred
    @best_effort
    async def touch_token(self, token: str, when: float) -> None:
        await self._touch_record("tokens", token, when)

    # -- webhooks ----------------------------------------------------------------------
    @_as_deferred
    async def add_webhook(self, url: str, events: list, timestamp: float) -> dict:
        stored = {"url": url, "events": list(events), "timestamp": float(timestamp)}
        records, order, _ = self._record_keys("webhooks")
        new_id = await self._r.eval(
            _ADD_WEBHOOK, [self._key("webhooks", "next"), records, order], [json.dumps(stored)]
        )
        return {"id": str(new_id), **stored, "lastUsed": None}

    @_as_deferred
    async def delete_webhook(self, webhook_id: str) -> bool:
        return await self._delete_record("webhooks", str(webhook_id))

    @_as_deferred
    @remembered(lambda: None)
    async def list_webhooks(self) -> list[dict]:
        return [
            {"id": webhook_id, **stored, "lastUsed": last_used}
            for webhook_id, stored, last_used in await self._list_records("webhooks")
        ]

    @_as_deferred
    @best_effort
    async def touch_webhook(self, webhook_id: str, when: float) -> None:
        await self._touch_record("webhooks", str(webhook_id), when)

    # -- chat messages -----------------------------------------------------------------
    def _message_keys(self) -> list[str]:
        return [
            self._key("messages"),
            self._key("messages", "order"),
            self._key("messages", "time"),
        ]

    @_as_deferred
    async def add_message(self, record: dict) -> None:
        stored = dict(
            record,
            author=record.get("author"),
            visible=bool(record.get("visible", True)),
            timestamp=float(record["timestamp"]),
        )
        message_id = str(record["id"])
        keys = [*self._message_keys(), self._key("messages", "next")]
        args = [message_id, json.dumps(stored), _number(stored["timestamp"])]
        try:
            await self._r.eval(_ADD_MESSAGE, keys, args)
        except txredisapi.ResponseError as e:
            if _duplicates(e):
                raise DuplicateRecordError(f"message {message_id!r} exists") from None
            raise

    @_as_deferred
    @remembered(
        lambda since=None, visible_only=False, limit=None: (visible_only, limit),
        lambda then, last, now: newer_than(then, last, now, lambda m: m["timestamp"]),
    )
    async def list_messages(
        self, since: float | None = None, visible_only: bool = False, limit: int | None = None
    ) -> list[dict]:
        args = [
            "" if since is None else _number(since),
            "1" if visible_only else "0",
            "" if limit is None or limit < 0 else str(int(limit)),
        ]
        newest_first = await self._r.eval(_LIST_MESSAGES, self._message_keys(), args)
        return [json.loads(raw) for raw in reversed(newest_first)]

    @_as_deferred
    async def set_visibility(self, ids: list, visible: bool) -> list[dict]:
        unique = [str(message_id) for message_id in dict.fromkeys(ids)]
        if not unique:
            return []
        key = self._key("messages")
        found = []
        for message_id, raw in zip(unique, await self._r.hmget(key, unique), strict=True):
            if raw is not None:
                found.append((message_id, dict(json.loads(raw), visible=bool(visible))))
        if not found:
            return []
        args: list[str] = []
        for message_id, record in found:
            args += [message_id, json.dumps(record)]
        written = await self._r.eval(_REPLACE_EXISTING, [key], args)
        return [record for (_, record), ok in zip(found, written, strict=True) if ok]

    # -- stats samples -----------------------------------------------------------------
    @_as_deferred
    @best_effort
    async def add_sample(self, kind: str, when: float, value: float) -> None:
        keys = [
            self._key("samples", "kind", kind),
            self._key("samples", "next"),
            self._key("samples", "kinds"),
        ]
        await self._r.eval(_ADD_SAMPLE, keys, [_number(when), _number(value), kind])

    @_as_deferred
    @remembered(
        lambda kind, since: kind,
        lambda then, last, now: newer_than(then[1:], last, now[1:], lambda sample: sample[0]),
    )
    async def list_samples(self, kind: str, since: float) -> list[tuple[float, float]]:
        members = await self._r.zrangebyscore(
            self._key("samples", "kind", kind), "(" + _number(since), "+inf"
        )
        samples = []
        for member in members:
            when, value, _ = member.split(" ")
            samples.append((float(when), float(value)))
        return samples

    @_as_deferred
    @best_effort
    async def prune_samples(self, before: float) -> None:
        # Idempotent, so one command per kind is enough: no script needed.
        for kind in await self._r.smembers(self._key("samples", "kinds")):
            await self._r.zremrangebyscore(
                self._key("samples", "kind", kind), "-inf", "(" + _number(before)
            )
