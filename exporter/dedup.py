"""The deduplicate step: a retried event is counted once.

SMTPeter posts a webhook again when it did not see the first post answered, so the same
event can arrive twice (or at two replicas). Each event is reduced to a fixed-size digest of
the fields that identify it (:func:`event_key`) and *claimed* before it is recorded: the
first claim wins, a second one within the window is a duplicate, answered 200 and not
counted again.

Claiming before recording, rather than recording and then remembering, is what makes two
concurrent posts of one event (a retry racing the original, or two replicas) count once: the
claim is one atomic test-and-set, so exactly one of them goes on to record; remembering after
recording would let both pass the check first and both count. The price is the gap between
claim and record: when recording raises, the pipeline calls ``release`` so SMTPeter's retry
is counted; when the process dies in that gap (killed, out of memory), the event is claimed
but not counted. A claim in memory dies with the process, so the retry is counted by the
restarted exporter; a claim in Redis outlives it, the retry is taken for a duplicate and that
one event's count is lost. The gap is a fraction of a millisecond of in-memory work, and
losing one count on a crash is better than counting raced retries twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import Final, Protocol, assert_never

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from exporter.events import (
    AbuseEvent,
    BounceEvent,
    ClickEvent,
    DeliveryEvent,
    Event,
    FailureEvent,
    OpenEvent,
)
from exporter.logs import log
from exporter.metrics import Metrics
from exporter.pipeline import Deduplicator, NoDeduplication
from exporter.settings import Settings

#: Bytes of the digest kept per event: 128 bits, so a collision between two real events is
#: out of reach (about 10^-26 for a million remembered events).
DIGEST_SIZE: Final = 16
_PERSON: Final = b"smtpeter-dedup"


def identifying_fields(event: Event) -> tuple[object, ...]:
    """What tells one event from another, per kind (the README's "same event" table).

    A retry repeats every field, so any of them differing means a different event: a failure
    that later bounces asynchronously has another state and counts again. Bounces and
    complaints are told apart by their raw message (``mime``), which is hashed into the key.
    Opens and clicks carry when and from where they happened, so a recipient opening a
    message twice is two events while a retry of one open is not.
    """
    match event:
        case FailureEvent():
            return (event.message_id, event.recipient, event.state_raw, event.code, event.extended)
        case DeliveryEvent():
            return (event.message_id, event.recipient, event.code, event.extended)
        case OpenEvent():
            return (
                event.message_id,
                event.recipient,
                event.occurred_at,
                event.ip,
                event.useragent,
                event.referer,
            )
        case ClickEvent():
            return (
                event.message_id,
                event.recipient,
                event.occurred_at,
                event.ip,
                event.useragent,
                event.referer,
                event.original,
            )
        case BounceEvent():
            return (event.message_id, event.recipient, event.mime)
        case AbuseEvent():
            return (event.message_id, event.mime)
        case _:
            assert_never(event)


def event_key(event: Event) -> bytes:
    """A 16-byte BLAKE2b digest of ``event``'s identifying fields.

    Only the digest is stored, never the recipient or message in clear. Each field is
    length-prefixed, so no two different field lists give the same input.
    """
    digest = hashlib.blake2b(digest_size=DIGEST_SIZE, person=_PERSON)
    # Hashed as one input (the same digest as field by field, at a sixth of the calls); a
    # raw message is passed as it is rather than copied into it.
    parts: list[bytes] = []
    for part in (event.kind.value, *identifying_fields(event)):
        data = _bytes_of(part)
        parts.append(len(data).to_bytes(8, "big"))
        if len(data) > _JOIN_BYTES:
            digest.update(b"".join(parts))
            digest.update(data)
            parts.clear()
        else:
            parts.append(data)
    digest.update(b"".join(parts))
    return digest.digest()


#: Fields up to this size are joined into one input for the digest; larger ones are not copied.
_JOIN_BYTES: Final = 4096


#: Raw messages larger than this are hashed in a worker thread (hashlib lets go of the GIL):
#: BLAKE2b takes about 0.75 ms per MiB on a CI-like machine, and a 10 MiB bounce would hold
#: the event loop for 7 ms.
HASH_IN_THREAD_BYTES: Final = 1024 * 1024


async def key_of(event: Event) -> bytes:
    """:func:`event_key`, off the event loop when the event carries a large raw message."""
    if isinstance(event, BounceEvent | AbuseEvent) and len(event.mime) > HASH_IN_THREAD_BYTES:
        return await asyncio.to_thread(event_key, event)
    return event_key(event)


def _bytes_of(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, datetime):
        return value.isoformat().encode()
    if value is None:
        return b""
    # JSON bodies may carry lone surrogates; they must hash, not fail the request.
    return str(value).encode("utf-8", "surrogatepass")


#: Expired entries forgotten per new event at most: more than the one it adds, so a backlog
#: drains, yet the first event after a quiet day does not pay for the whole day's expiry.
_CLEANUP_BATCH: Final = 16


class MemoryDeduplicator:
    """Remembers event keys in this process for ``window`` seconds, ``max_entries`` at most.

    A set answers "seen?"; two deques hold the keys in claim order and when each expires.
    The clock is monotonic and the window fixed, so claim order is expiry order: the oldest
    entry is both the first to expire and the first to evict, and either is a pop from the
    front, O(1) per event. An entry takes about 100 bytes (a set slot, two deque slots and
    the 16-byte key object, measured with tracemalloc at 500,000 entries), under two thirds
    of an ``OrderedDict`` of key to expiry, whose table doubles once eviction churns it.
    """

    __slots__ = ("_clock", "_expiries", "_keys", "_last_expiry", "_max_entries", "_seen", "_window")

    def __init__(
        self,
        window: float,
        max_entries: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries <= 0:
            raise ValueError("max_entries must be positive (use NoDeduplication to turn off)")
        self._window = window
        self._max_entries = max_entries
        self._clock = clock
        self._seen: set[bytes] = set()
        self._keys: deque[bytes] = deque()
        self._expiries: deque[int] = deque()
        self._last_expiry = 0

    def __len__(self) -> int:
        """Entries held now, including expired ones later events have yet to forget."""
        return len(self._seen)

    async def claim(self, event: Event) -> bool:
        return self.claim_key(await key_of(event))

    def claim_key(self, key: bytes) -> bool:
        """``True`` when ``key`` is new or its entry has expired; it is remembered from now."""
        now = self._clock()
        if key in self._seen:
            # It may have expired behind a backlog the batches have not reached: forget every
            # expired entry first. Each entry is forgotten once, so this stays O(1) amortized.
            self._forget_expired(now, len(self._seen))
            if key in self._seen:
                return False
        else:
            self._forget_expired(now, _CLEANUP_BATCH)
        if len(self._seen) >= self._max_entries:
            self._seen.discard(self._keys.popleft())
            self._expiries.popleft()
        # Whole seconds, rounded up: events claimed within one second share one int object
        # (saving 32 bytes each), and an event is never forgotten before its window is over.
        expires = math.ceil(now + self._window)
        if expires != self._last_expiry:
            self._last_expiry = expires
        self._seen.add(key)
        self._keys.append(key)
        self._expiries.append(self._last_expiry)
        return True

    async def release(self, event: Event) -> None:
        key = await key_of(event)
        if key not in self._seen:
            return
        self._seen.discard(key)
        # Released right after it was claimed, the key is nearly always the newest: found at
        # once from the back. Releases only follow a failed record, so the rare scan is fine.
        for back, held in enumerate(reversed(self._keys), start=1):
            if held == key:
                del self._keys[-back]
                del self._expiries[-back]
                return

    async def close(self) -> None:
        self._seen.clear()
        self._keys.clear()
        self._expiries.clear()

    def _forget_expired(self, now: float, limit: int) -> None:
        keys, expiries = self._keys, self._expiries
        for _ in range(limit):
            if not expiries or expiries[0] > now:
                return
            expiries.popleft()
            self._seen.discard(keys.popleft())


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


def build_deduplicator(settings: Settings, metrics: Metrics) -> Deduplicator:
    """The duplicate store the settings name: Redis when a URL is given (shared by replicas),
    else memory, or none when ``--dedup.max-entries=0``."""
    if settings.dedup_redis_url is not None:
        return RedisDeduplicator(
            connect_redis(settings.dedup_redis_url),
            window=settings.dedup_window,
            unavailable=metrics.dedup_unavailable,
        )
    if settings.dedup_max_entries == 0:
        return NoDeduplication()
    store = MemoryDeduplicator(settings.dedup_window, settings.dedup_max_entries)
    # Read at scrape time: nothing is written per event.
    metrics.dedup_entries.set_function(store.__len__)
    return store
