"""The deduplicate step's shared store: Redis (``--dedup.redis-url``), for several replicas.

Imported only when a Redis URL is configured: the client library holds about 6 MB that a
single replica remembering events in memory never uses.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Final, Protocol

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from exporter.dedup import key_of
from exporter.events import Event
from exporter.logs import log


class Counts(Protocol):
    """A counter without labels (``smtpeter_dedup_unavailable_total``)."""

    def inc(self, amount: float = 1.0) -> None: ...


#: Redis keys are this prefix and the hex digest, so a shared Redis can tell them apart.
KEY_PREFIX: Final = "smtpeter-exporter:dedup:"
#: Longest a request waits for Redis: a healthy Redis on the same network answers in about
#: a millisecond, and a webhook must not wait on a sick one.
REDIS_TIMEOUT: Final = 0.25
#: After a failure Redis is left alone this long, doubling per failed attempt up to the
#: maximum, so a dead Redis does not add its timeout to every request.
REDIS_BACKOFF: Final = 1.0
REDIS_MAX_BACKOFF: Final = 30.0
#: At most one warning per this many seconds while Redis is unavailable.
REDIS_WARN_EVERY: Final = 60.0

#: What Redis being unreachable, slow or refusing looks like.
_UNAVAILABLE: Final = (RedisError, OSError, TimeoutError)


def connect_redis(url: str, timeout: float = REDIS_TIMEOUT) -> Redis:
    """A client for ``url`` that gives up after ``timeout`` seconds.

    One immediate retry replaces a pooled connection Redis dropped (a restart) within the
    same request; the caller's own timeout bounds both tries.
    """
    client: Redis = Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 1),
    )
    return client


class RedisDeduplicator:
    """Remembers event keys in Redis, shared by every replica: ``SET key 1 NX PX window``.

    ``SET NX`` is atomic, so of two replicas receiving the same event exactly one records it.
    When Redis cannot answer within ``timeout`` the event is accepted unchecked rather than
    refused (a refusal would only lose it), counted in ``smtpeter_dedup_unavailable_total``
    and warned about at most every ``warn_every`` seconds; Redis is then left alone for a
    back-off that doubles per failed attempt, and the first success ends the outage.
    """

    __slots__ = (
        "_backoff",
        "_client",
        "_clock",
        "_failures",
        "_last_warning",
        "_max_backoff",
        "_paused_until",
        "_prefix",
        "_timeout",
        "_unavailable",
        "_unchecked_in_outage",
        "_unchecked_since_warning",
        "_warn_every",
        "_window_ms",
    )

    def __init__(
        self,
        client: Redis,
        *,
        window: float,
        unavailable: Counts,
        timeout: float = REDIS_TIMEOUT,
        backoff: float = REDIS_BACKOFF,
        max_backoff: float = REDIS_MAX_BACKOFF,
        warn_every: float = REDIS_WARN_EVERY,
        prefix: str = KEY_PREFIX,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        # PX rather than EX: whole milliseconds, so windows under a second work too.
        self._window_ms = max(1, round(window * 1000))
        self._unavailable = unavailable
        self._timeout = timeout
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._warn_every = warn_every
        self._prefix = prefix.encode()
        self._clock = clock
        self._failures = 0
        self._paused_until = float("-inf")
        self._last_warning = float("-inf")
        self._unchecked_since_warning = 0
        self._unchecked_in_outage = 0

    async def redis_key(self, event: Event) -> bytes:
        """The Redis key of ``event``: the prefix and its digest in hex."""
        return self._prefix + (await key_of(event)).hex().encode()

    async def claim(self, event: Event) -> bool:
        if self._clock() < self._paused_until:
            self._accept_unchecked(None)
            return True
        key = await self.redis_key(event)
        try:
            async with asyncio.timeout(self._timeout):
                stored = await self._client.set(key, b"1", nx=True, px=self._window_ms)
        except _UNAVAILABLE as exc:
            self._fail()
            self._accept_unchecked(exc)
            return True
        self._succeed()
        return bool(stored)

    async def release(self, event: Event) -> None:
        # Rare (recording failed), and failing costs that event's count: always logged.
        if self._clock() < self._paused_until:
            log.warning("dedup_release_failed", error="Redis is unavailable (backing off)")
            return
        key = await self.redis_key(event)
        try:
            async with asyncio.timeout(self._timeout):
                await self._client.delete(key)
        except _UNAVAILABLE as exc:
            self._fail()
            log.warning("dedup_release_failed", error=_describe(exc))
        else:
            self._succeed()

    async def close(self) -> None:
        await self._client.aclose()

    def _fail(self) -> None:
        now = self._clock()
        # Requests that were already waiting when Redis went away fail together: they are
        # one failed attempt, not many, so the back-off grows once.
        if now >= self._paused_until:
            self._failures += 1
            pause = min(self._backoff * 2 ** (self._failures - 1), self._max_backoff)
            self._paused_until = now + pause

    def _succeed(self) -> None:
        if self._failures:
            log.info("dedup_store_recovered", unchecked_events=self._unchecked_in_outage)
            self._failures = 0
            self._last_warning = float("-inf")
            self._unchecked_since_warning = 0
            self._unchecked_in_outage = 0

    def _accept_unchecked(self, error: BaseException | None) -> None:
        self._unavailable.inc()
        self._unchecked_since_warning += 1
        self._unchecked_in_outage += 1
        now = self._clock()
        if now - self._last_warning < self._warn_every:
            return
        log.warning(
            "dedup_store_unavailable",
            message="Redis did not answer; events are accepted without a duplicate check",
            error=_describe(error) if error is not None else None,
            unchecked_events=self._unchecked_since_warning,
            retry_in_seconds=round(max(self._paused_until - now, 0.0), 3),
        )
        self._last_warning = now
        self._unchecked_since_warning = 0


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
