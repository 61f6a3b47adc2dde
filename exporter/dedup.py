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
import sys
import time
from array import array
from collections.abc import Callable
from datetime import datetime
from typing import Final, assert_never

from exporter.events import (
    AbuseEvent,
    BounceEvent,
    ClickEvent,
    DeliveryEvent,
    Event,
    FailureEvent,
    OpenEvent,
)
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


#: 64-bit words per digest in the ring.
_WORDS: Final = DIGEST_SIZE // 8
#: A ring slot whose event was released out of order: skipped when the front reaches it.
_HOLE: Final = float("-inf")


class MemoryDeduplicator:
    """Remembers event keys in this process for ``window`` seconds, ``max_entries`` at most.

    Everything lives in three flat arrays allocated at start, so an entry costs no Python
    object at all (about 33 bytes, against about 100 for a set of ``bytes`` and two deques):

    - a ring of ``max_entries`` slots holding the 16-byte digests in claim order, beside an
      array of their expiry times. The clock is monotonic and the window fixed, so claim
      order is expiry order: the oldest entry is both the first to expire and the first to
      evict, and either is a step of the ring's front, O(1) per event;
    - an open-addressing hash table (linear probing, at most half full) of ring positions,
      keyed by the digest's first bytes, which answers "seen?". Each look-up compares the
      whole digest, so the store itself adds no false positives; forgetting an entry shifts
      the entries probed after it back (no tombstones), so the table never degrades.

    A released entry that is not the newest (rare: only a failed record releases, right
    after its claim) leaves a hole in the ring until the front reaches it; until then the
    store holds one entry fewer than ``max_entries``.
    """

    __slots__ = (
        "_clock",
        "_digests",
        "_expiries",
        "_head",
        "_index",
        "_live",
        "_mask",
        "_max_entries",
        "_used",
        "_window",
        "_words",
    )

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
        self._digests = bytearray(max_entries * DIGEST_SIZE)
        #: The same bytes as 64-bit words: a digest's first word, its hash, without a copy.
        self._words = memoryview(self._digests).cast("Q")
        self._expiries = array("d", bytes(8 * max_entries))
        # Ring position + 1 per slot (0: empty); at least twice the entries, a power of two.
        slots = 1 << max(3, (2 * max_entries - 1).bit_length())
        typecode = "I" if max_entries < 2**32 - 1 else "Q"
        self._index = array(typecode, bytes(array(typecode).itemsize * slots))
        self._mask = slots - 1
        #: Ring position of the oldest slot, slots in use (entries and holes), and entries.
        self._head = 0
        self._used = 0
        self._live = 0

    def __len__(self) -> int:
        """Entries held now, including expired ones later events have yet to forget."""
        return self._live

    @property
    def nbytes(self) -> int:
        """Bytes of the store's arrays, allocated at start whatever it holds."""
        index, expiries = self._index, self._expiries
        return len(self._digests) + len(expiries) * expiries.itemsize + len(index) * index.itemsize

    async def claim(self, event: Event) -> bool:
        return self.claim_key(await key_of(event))

    def claim_key(self, key: bytes) -> bool:
        """``True`` when ``key`` is new or its entry has expired; it is remembered from now."""
        now = self._clock()
        slot = self._find(key)
        if slot >= 0:
            if self._expiries[self._index[slot] - 1] > now:
                return False
            # Expired behind a backlog the batches have not reached: forget every expired
            # entry first. Each entry is forgotten once, so this stays O(1) amortized.
            self._forget_expired(now, self._used)
            slot = self._find(key)
        elif self._used and self._expiries[self._head] <= now:
            self._forget_expired(now, _CLEANUP_BATCH)
            slot = self._find(key)
        capacity = self._max_entries
        if self._used >= capacity:
            # Full: the oldest slot makes room (an entry, or a hole before one).
            while self._used >= capacity or self._live >= capacity:
                self._pop_front()
            slot = self._find(key)
        position = self._head + self._used
        if position >= capacity:
            position -= capacity
        start = position * DIGEST_SIZE
        self._digests[start : start + DIGEST_SIZE] = key
        self._expiries[position] = now + self._window
        self._index[-1 - slot] = position + 1
        self._used += 1
        self._live += 1
        return True

    async def release(self, event: Event) -> None:
        self.release_key(await key_of(event))

    def release_key(self, key: bytes) -> None:
        """Forget ``key`` (claimed, but its event could not be recorded)."""
        slot = self._find(key)
        if slot < 0:
            return
        position = self._index[slot] - 1
        self._unindex(slot)
        self._live -= 1
        self._expiries[position] = _HOLE
        # Released right after it was claimed, the entry is nearly always the newest: its
        # slot (and any hole before it) is given back at once.
        capacity = self._max_entries
        while self._used and self._expiries[(self._head + self._used - 1) % capacity] == _HOLE:
            self._used -= 1

    async def close(self) -> None:
        self._words.release()
        self._digests = bytearray()
        self._words = memoryview(self._digests).cast("Q")
        self._expiries = array("d")
        self._index = array(self._index.typecode, [0])
        self._mask = 0
        self._head = self._used = self._live = 0

    def _find(self, key: bytes) -> int:
        """The table slot holding ``key``, or ``-1 - slot`` of the empty slot it would take."""
        index, digests, mask = self._index, self._digests, self._mask
        slot = int.from_bytes(key[:8], sys.byteorder) & mask
        while entry := index[slot]:
            if digests.startswith(key, (entry - 1) * DIGEST_SIZE):
                return slot
            slot = (slot + 1) & mask
        return -1 - slot

    def _unindex(self, slot: int) -> None:
        """Empty ``slot``, moving back the entries probed past it (Knuth's algorithm R)."""
        index, mask, words = self._index, self._mask, self._words
        probe = slot
        while entry := index[probe := (probe + 1) & mask]:
            home = words[(entry - 1) * _WORDS] & mask
            # The entry may fill the gap when its probe sequence passes through it.
            if (probe - home) & mask >= (probe - slot) & mask:
                index[slot] = entry
                slot = probe
        index[slot] = 0

    def _pop_front(self) -> None:
        """Forget the oldest slot of the ring (an entry, or a hole)."""
        position = self._head
        if self._expiries[position] != _HOLE:
            index, mask, wanted = self._index, self._mask, position + 1
            slot = self._words[position * _WORDS] & mask
            while index[slot] != wanted:
                slot = (slot + 1) & mask
            self._unindex(slot)
            self._live -= 1
        self._head = position + 1 if position + 1 < self._max_entries else 0
        self._used -= 1

    def _forget_expired(self, now: float, limit: int) -> int:
        """Forget up to ``limit`` expired slots from the front; how many were forgotten."""
        expiries = self._expiries
        forgotten = 0
        while forgotten < limit and self._used and expiries[self._head] <= now:
            self._pop_front()
            forgotten += 1
        return forgotten


def build_deduplicator(settings: Settings, metrics: Metrics) -> Deduplicator:
    """The duplicate store the settings name: Redis when a URL is given (shared by replicas),
    else memory, or none when ``--dedup.max-entries=0``."""
    if settings.dedup_redis_url is not None:
        # Only here: the Redis client is a few megabytes a single replica does not need.
        from exporter.dedup_redis import RedisDeduplicator, connect_redis  # noqa: PLC0415

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
