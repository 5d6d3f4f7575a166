"""Reaching the shared Redis: connecting in time, noticing it is gone, coming back.

txredisapi, left to reconnect by itself, makes every command wait until a connection is
back: a write during an outage hung for seconds and then failed as a 500. So the store
and the chat bus open their connections with ``reconnect=False``: once every connection
of a pool is lost, a command fails at once, and its owner's ``Outage`` takes over. It
logs the outage once, refuses what needs Redis (``StoreUnavailableError``, a 503) while
it lasts, and every ``RETRY_INTERVAL`` seconds checks whether the server accepts TCP
connections again (a silent check: a failed txredisapi connection attempt logs a line
each time) before it opens fresh connections and logs the end of the outage.
"""

from __future__ import annotations

import copy
import functools
import inspect
from collections.abc import Awaitable, Callable, Coroutine, Hashable
from typing import Any

import txredisapi
from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger

from owncast.core.errors import ApiError
from owncast.store.redisconfig import RedisConfig

_log = Logger()

#: Seconds between two checks whether Redis is back.
RETRY_INTERVAL = 1.0
#: Seconds a command may wait for its reply before Redis counts as gone (a hung server).
REPLY_TIMEOUT = 5.0


class RedisUnavailableError(ConnectionError):
    """Redis could not be reached when the store or the chat bus started."""


class StoreUnavailableError(ApiError):
    """Redis is unreachable right now: the request needs it and is refused (503)."""

    status = 503

    def __init__(self) -> None:
        super().__init__("the shared store (Redis) is unreachable: try again in a few seconds")


async def connect(
    config: RedisConfig,
    reactor: IReactorTime,
    *,
    poolsize: int = 1,
    reply_timeout: float | None = REPLY_TIMEOUT,
) -> Any:
    """A txredisapi connection pool to ``config``'s server with every connection open,
    none of them reconnecting by itself (see the module's docstring).

    Gives up after ``connect_timeout`` (``reactor`` times it) with a
    ``RedisUnavailableError``.
    """
    pool = txredisapi.ConnectionPool(
        host=config.host,
        port=config.port,
        dbid=config.dbid,
        poolsize=poolsize,
        reconnect=False,
        password=config.password,
        connectTimeout=config.connect_timeout,
        replyTimeout=reply_timeout,
        convertNumbers=False,
    )
    # A pool that failed closed itself; one still connecting gives up within the timeout.
    return await in_time(pool, config, reactor, "could not reach Redis", _nothing)


async def _nothing() -> None:
    pass


async def in_time(
    d: Deferred,
    config: RedisConfig,
    reactor: IReactorTime,
    what: str,
    undo: Callable[[], Awaitable[Any]],
) -> Any:
    """``d``'s result; if it fails or ``config.connect_timeout`` passes first, ``undo()``
    (close what was opened) and raise ``RedisUnavailableError`` saying ``what``."""
    try:
        return await d.addTimeout(config.connect_timeout, reactor)
    except Exception as e:
        await undo()
        why = "no connection" if isinstance(e, defer.TimeoutError) else repr(e)
        raise RedisUnavailableError(
            f"{what} at {config.address} within {config.connect_timeout}s: {why}"
        ) from e


class _Probe(Factory):
    """Connects once to see whether Redis listens; quiet (a factory logs each start)."""

    noisy = False
    protocol = Protocol


class Outage:
    """Whether the connections of one owner (the store, the chat bus) reach Redis.

    ``lost(why)`` is called when a command finds its connections gone; from then on
    ``up`` is False until ``reopen()`` (the owner's: fresh connections, or an exception)
    has succeeded. ``announce``: log the start and the end (the store does; the chat bus,
    which loses Redis at the same moment, stays quiet).
    """

    def __init__(
        self,
        reactor: Any,
        config: RedisConfig,
        reopen: Callable[[], Awaitable[None]],
        *,
        announce: bool = True,
        retry: float = RETRY_INTERVAL,
    ):
        self._reactor = reactor
        self._config = config
        self._reopen = reopen
        self._announce = announce
        self._retry = retry
        #: when the current outage began; None while Redis is reachable
        self.since: float | None = None
        self._call: Any = None
        self._stopped = False

    @property
    def up(self) -> bool:
        return self.since is None

    def lost(self, why: str) -> None:
        if self.since is not None or self._stopped:
            return
        self.since = self._reactor.seconds()
        if self._announce:
            _log.error(
                "Redis at {address} is unreachable ({why}): changes are refused (503) and "
                "reads are served from memory until it is back",
                address=self._config.address,
                why=why,
            )
        self._schedule()

    def stop(self) -> None:
        self._stopped = True
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def _schedule(self) -> None:
        if not self._stopped:
            self._call = self._reactor.callLater(self._retry, self._attempt)

    def _attempt(self) -> None:
        self._call = None
        d = Deferred.fromCoroutine(self._try())
        d.addErrback(lambda f: _log.failure("Checking whether Redis is back failed", f))

    async def _try(self) -> None:
        if self._stopped:
            return
        if await self._accepts() and await self._reopened():
            if self._stopped or self.since is None:
                return
            lasted = self._reactor.seconds() - self.since
            self.since = None
            if self._announce:
                _log.info(
                    "Redis at {address} is reachable again, after {lasted:.0f} s",
                    address=self._config.address,
                    lasted=lasted,
                )
            return
        self._schedule()

    async def _accepts(self) -> bool:
        """Whether Redis's port accepts a TCP connection (closed again at once)."""
        endpoint = HostnameEndpoint(
            self._reactor, self._config.host, self._config.port, timeout=self._retry
        )
        try:
            protocol: Any = await endpoint.connect(_Probe())
        except Exception:  # refused, timed out, no route: still down
            return False
        protocol.transport.loseConnection()
        return True

    async def _reopened(self) -> bool:
        try:
            await self._reopen()
        except Exception as e:
            _log.debug("Reconnecting to Redis failed: {e!r}", e=e)
            return False
        return not self._stopped


# -- what a store does while Redis is down (methods of an owner with ``_guarded``, which
# turns a lost connection into an outage and a ``StoreUnavailableError``, and ``_memory``)
def remembered(
    key: Callable[..., Hashable],
    served: Callable[[tuple, Any, tuple], Any] = lambda then, last, now: last,
) -> Callable[[Callable[..., Coroutine]], Callable[..., Coroutine]]:
    """A read whose last answer is kept, by ``key(*arguments)``, and served while Redis is
    down: ``served(arguments then, answer then, arguments now)`` makes it the answer now
    (None: it cannot be, and the call fails). Arguments are all passed, defaults filled."""

    def decorate(method: Callable[..., Coroutine]) -> Callable[..., Coroutine]:
        signature = inspect.signature(method)

        @functools.wraps(method)
        async def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            bound = signature.bind(self, *args, **kwargs)
            bound.apply_defaults()
            values = tuple(bound.arguments.values())[1:]
            slot = (method.__name__, key(*values))
            try:
                answer = await self._guarded(method(self, *values))
            except StoreUnavailableError:
                kept = self._memory.get(slot)
                answer = None if kept is None else served(kept[0], kept[1], values)
                if answer is None:
                    raise
                return copy.deepcopy(answer)
            self._memory[slot] = (values, answer)
            return answer

        return wrapper

    return decorate


def best_effort(method: Callable[..., Coroutine]) -> Callable[..., Coroutine]:
    """A write that may be lost (a ``lastUsed`` touch, a stats sample): dropped, silently,
    while Redis is down."""

    @functools.wraps(method)
    async def wrapper(self: Any, *args: Any, **kwargs: Any) -> None:
        try:
            await self._guarded(method(self, *args, **kwargs))
        except StoreUnavailableError:
            pass

    return wrapper


def newer_than(then: tuple, last: list, now: tuple, when: Callable[[Any], float]) -> list | None:
    """``last`` (read with ``since`` = ``then[0]``) cut to what is newer than ``now[0]``;
    None when ``last`` began later than that, so it cannot tell."""
    since_then, since_now = then[0], now[0]
    if since_then is not None and (since_now is None or since_now < since_then):
        return None
    return [item for item in last if since_now is None or when(item) > since_now]
