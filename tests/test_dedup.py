"""Duplicate detection in memory: what counts as the same event, the window, the bound, and
a retried webhook answered ``duplicate`` and counted once by the real app."""

from __future__ import annotations

import dataclasses
import hashlib
import random
import tracemalloc
from datetime import UTC, datetime
from typing import Any

import pytest
import structlog
from prometheus_client import CollectorRegistry

from exporter.dedup import (
    HASH_IN_THREAD_BYTES,
    MemoryDeduplicator,
    build_deduplicator,
    event_key,
)
from exporter.dedup_redis import RedisDeduplicator
from exporter.events import (
    AbuseEvent,
    BounceEvent,
    ClickEvent,
    DeliveryEvent,
    Event,
    FailureEvent,
    Kind,
    OpenEvent,
)
from exporter.metrics import Metrics
from exporter.pipeline import NoDeduplication
from exporter.recorder import Recorder
from exporter.settings import Settings
from tests.conftest import Exporter

WINDOW = 3600.0


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


_COMMON: dict[str, Any] = {
    "message_id": "m-1",
    "occurred_at": datetime(2024, 3, 1, 12, tzinfo=UTC),
    "tags": ("newsletter",),
    "extra": (),
    "truncated": (),
}
_RECIPIENT: dict[str, Any] = {"recipient": "john@gmail.com", "domain": "gmail.com"}
EVENTS: dict[Kind, Event] = {
    Kind.FAILURE: FailureEvent(
        **_COMMON,
        **_RECIPIENT,
        action="failed",
        state_raw="rcpt to",
        state="rcpt",
        code="550",
        extended="5.1.1",
        description="5.1.1 no such user",
    ),
    Kind.DELIVERY: DeliveryEvent(
        **_COMMON, **_RECIPIENT, code="250", extended="2.0.0", description="queued"
    ),
    Kind.OPEN: OpenEvent(
        **_COMMON, **_RECIPIENT, ip="192.0.2.1", useragent="Mozilla/5.0", referer=""
    ),
    Kind.CLICK: ClickEvent(
        **_COMMON,
        **_RECIPIENT,
        ip="192.0.2.1",
        useragent="Mozilla/5.0",
        referer="",
        original="https://example.org/a",
    ),
    Kind.BOUNCE: BounceEvent(
        **_COMMON,
        **_RECIPIENT,
        envelope="bounces@smtpeter.example",
        mailfrom="",
        rcptto="",
        mime=b"From: MAILER-DAEMON\r\n\r\nuser unknown\r\n",
    ),
    Kind.ABUSE: AbuseEvent(
        **_COMMON, emailfrom="news@sender.example", mime=b"Feedback-Type: abuse\r\n\r\n"
    ),
}


def changed(kind: Kind, **changes: Any) -> Event:  # noqa: ANN401 - any field's type
    return dataclasses.replace(EVENTS[kind], **changes)


def memory_store(clock: FakeClock | None = None, max_entries: int = 1000) -> MemoryDeduplicator:
    return MemoryDeduplicator(WINDOW, max_entries, clock=clock or FakeClock())


@pytest.mark.parametrize("kind", list(Kind))
async def test_the_same_event_twice_is_a_duplicate_the_second_time(kind: Kind) -> None:
    store = memory_store()
    assert await store.claim(EVENTS[kind]) is True
    assert await store.claim(dataclasses.replace(EVENTS[kind])) is False


@pytest.mark.parametrize(
    ("kind", "field", "value"),
    [
        (Kind.FAILURE, "message_id", "m-2"),
        (Kind.FAILURE, "recipient", "jane@gmail.com"),
        # The same failure, bounced asynchronously later: another state, another event.
        (Kind.FAILURE, "state_raw", "bounce"),
        (Kind.FAILURE, "code", "551"),
        (Kind.FAILURE, "extended", "5.1.2"),
        (Kind.DELIVERY, "message_id", "m-2"),
        (Kind.DELIVERY, "recipient", "jane@gmail.com"),
        (Kind.DELIVERY, "code", "251"),
        (Kind.DELIVERY, "extended", "2.1.5"),
        (Kind.OPEN, "message_id", "m-2"),
        (Kind.OPEN, "recipient", "jane@gmail.com"),
        (Kind.OPEN, "occurred_at", datetime(2024, 3, 1, 13, tzinfo=UTC)),
        (Kind.OPEN, "ip", "192.0.2.2"),
        (Kind.OPEN, "useragent", "curl"),
        (Kind.OPEN, "referer", "https://example.org/"),
        (Kind.CLICK, "message_id", "m-2"),
        (Kind.CLICK, "recipient", "jane@gmail.com"),
        (Kind.CLICK, "occurred_at", None),
        (Kind.CLICK, "ip", "192.0.2.2"),
        (Kind.CLICK, "useragent", "curl"),
        (Kind.CLICK, "referer", "https://example.org/"),
        (Kind.CLICK, "original", "https://example.org/b"),
        (Kind.BOUNCE, "message_id", "m-2"),
        (Kind.BOUNCE, "recipient", "jane@gmail.com"),
        (Kind.BOUNCE, "mime", b"From: MAILER-DAEMON\r\n\r\nmailbox full\r\n"),
        (Kind.ABUSE, "message_id", "m-2"),
        (Kind.ABUSE, "mime", b"Feedback-Type: fraud\r\n\r\n"),
    ],
    ids=lambda value: str(value)[:20],
)
async def test_changing_any_key_field_makes_a_new_event(
    kind: Kind,
    field: str,
    value: object,
) -> None:
    store = memory_store()
    assert await store.claim(EVENTS[kind]) is True
    assert await store.claim(changed(kind, **{field: value})) is True


@pytest.mark.parametrize(
    ("kind", "field", "value"),
    [
        (Kind.FAILURE, "description", "something else"),
        (Kind.FAILURE, "occurred_at", datetime(2024, 3, 1, 13, tzinfo=UTC)),
        (Kind.FAILURE, "tags", ("other",)),
        (Kind.FAILURE, "state", "other"),
        (Kind.DELIVERY, "description", "accepted"),
        (Kind.BOUNCE, "envelope", "other@smtpeter.example"),
        (Kind.BOUNCE, "tags", ()),
        (Kind.ABUSE, "emailfrom", "other@sender.example"),
        (Kind.OPEN, "truncated", ("useragent",)),
        (Kind.CLICK, "extra", (("x", "y"),)),
    ],
    ids=lambda value: str(value)[:20],
)
async def test_fields_outside_the_key_do_not_make_a_new_event(
    kind: Kind, field: str, value: object
) -> None:
    store = memory_store()
    assert await store.claim(EVENTS[kind]) is True
    assert await store.claim(changed(kind, **{field: value})) is False


async def test_a_failure_and_a_delivery_with_the_same_id_and_recipient_are_different() -> None:
    store = memory_store()
    assert await store.claim(EVENTS[Kind.FAILURE]) is True
    assert await store.claim(EVENTS[Kind.DELIVERY]) is True


async def test_bounces_for_one_recipient_with_different_messages_are_different_events() -> None:
    store = memory_store()
    first = changed(Kind.BOUNCE, message_id="", mime=b"first bounce")
    second = changed(Kind.BOUNCE, message_id="", mime=b"second bounce")
    assert await store.claim(first) is True
    assert await store.claim(second) is True
    assert await store.claim(changed(Kind.BOUNCE, message_id="", mime=b"first bounce")) is False


async def test_a_retried_bounce_with_a_message_hashed_off_the_loop_is_a_duplicate() -> None:
    store = memory_store()
    large = b"X-Padding: " + b"x" * (HASH_IN_THREAD_BYTES + 1)
    assert await store.claim(changed(Kind.BOUNCE, mime=large)) is True
    assert await store.claim(changed(Kind.BOUNCE, mime=large + b".")) is True
    assert await store.claim(changed(Kind.BOUNCE, mime=bytes(large))) is False
    await store.release(changed(Kind.BOUNCE, mime=large))
    assert await store.claim(changed(Kind.BOUNCE, mime=large)) is True


def test_the_key_is_a_16_byte_digest_that_does_not_hold_the_recipient() -> None:
    event = changed(Kind.FAILURE, recipient="a.very.long.recipient.address@example.org")
    key = event_key(event)
    assert len(key) == 16
    assert b"example" not in key
    # Lone surrogates can arrive in JSON bodies; they must hash, not fail the request.
    assert len(event_key(changed(Kind.FAILURE, recipient="\ud800@example.org"))) == 16


async def test_an_event_is_new_again_once_the_window_has_passed() -> None:
    clock = FakeClock()
    store = memory_store(clock)
    assert await store.claim(EVENTS[Kind.FAILURE]) is True
    clock.now += WINDOW - 1
    assert await store.claim(EVENTS[Kind.FAILURE]) is False
    clock.now += 1
    assert await store.claim(EVENTS[Kind.FAILURE]) is True
    # Claimed afresh: remembered for a whole window from now.
    clock.now += WINDOW - 1
    assert await store.claim(EVENTS[Kind.FAILURE]) is False


async def test_an_expired_event_is_new_even_before_cleanup_has_reached_it() -> None:
    clock = FakeClock()
    store = memory_store(clock)
    for number in range(100):
        await store.claim(changed(Kind.DELIVERY, message_id=f"m-{number}"))
    clock.now += WINDOW
    # m-99 is behind a backlog of expired entries the claim does not all clean up.
    assert await store.claim(changed(Kind.DELIVERY, message_id="m-99")) is True
    assert await store.claim(changed(Kind.DELIVERY, message_id="m-99")) is False


async def test_at_max_entries_the_oldest_event_is_forgotten_first() -> None:
    clock = FakeClock()
    store = memory_store(clock, max_entries=3)
    ids = ["m-1", "m-2", "m-3", "m-4"]
    for message_id in ids:
        clock.now += 1
        assert await store.claim(changed(Kind.FAILURE, message_id=message_id)) is True
    assert len(store) == 3
    # m-1 made room for m-4; the three newest are still remembered.
    for message_id in ids[1:]:
        assert await store.claim(changed(Kind.FAILURE, message_id=message_id)) is False
    assert await store.claim(changed(Kind.FAILURE, message_id="m-1")) is True
    assert len(store) == 3


async def test_expired_events_are_forgotten_by_later_claims_a_batch_at_a_time() -> None:
    clock = FakeClock()
    store = memory_store(clock)
    for number in range(100):
        await store.claim(changed(Kind.DELIVERY, message_id=f"old-{number}"))
    clock.now += WINDOW
    await store.claim(changed(Kind.DELIVERY, message_id="new-0"))
    # One claim forgets a bounded batch, never the whole store ...
    assert 1 < len(store) < 100
    for number in range(1, 10):
        await store.claim(changed(Kind.DELIVERY, message_id=f"new-{number}"))
    # ... and a few claims drain the backlog: only the new events are left.
    assert len(store) == 10


async def test_a_released_event_is_new_again() -> None:
    store = memory_store()
    assert await store.claim(EVENTS[Kind.BOUNCE]) is True
    await store.release(EVENTS[Kind.BOUNCE])
    assert len(store) == 0
    assert await store.claim(EVENTS[Kind.BOUNCE]) is True
    assert await store.claim(EVENTS[Kind.BOUNCE]) is False


async def test_a_released_event_claimed_again_is_remembered_from_its_new_claim() -> None:
    clock = FakeClock()
    store = memory_store(clock, max_entries=2)
    first, second, third = (changed(Kind.FAILURE, message_id=f"m-{n}") for n in range(3))
    assert await store.claim(first) is True
    await store.release(first)
    clock.now += 10
    assert await store.claim(second) is True
    assert await store.claim(first) is True
    # second is now the oldest: it makes room for third, and first stays remembered ...
    assert await store.claim(third) is True
    assert await store.claim(first) is False
    # ... past the end of the window its released claim would have had.
    clock.now += WINDOW - 5
    assert await store.claim(first) is False


async def test_releasing_an_older_event_keeps_the_order_of_the_others() -> None:
    store = memory_store(max_entries=3)
    events = [changed(Kind.DELIVERY, message_id=f"m-{n}") for n in range(5)]
    for event in events[:3]:
        await store.claim(event)
    await store.release(events[0])
    assert len(store) == 2
    await store.claim(events[3])
    await store.claim(events[4])  # evicts m-1, the oldest left
    assert [await store.claim(event) for event in events[2:]] == [False, False, False]
    assert await store.claim(events[1]) is True


def test_a_remembered_event_costs_under_40_bytes() -> None:
    """Everything is allocated at start: about 32 bytes an entry at any size (16 of digest, 8
    of expiry, 8 of hash table at most half full); the README gives the figure."""
    count = 100_000
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        store = memory_store(max_entries=count)
        for number in range(count):
            digest = hashlib.blake2b(number.to_bytes(8, "big"), digest_size=16).digest()
            store.claim_key(digest)
        per_entry = (tracemalloc.get_traced_memory()[0] - before) / count
    finally:
        tracemalloc.stop()
    assert len(store) == count
    assert per_entry < 40
    assert store.nbytes / count < 40


def test_the_store_agrees_with_a_plain_model_through_churn() -> None:
    """Claims, releases, expiry and eviction in a random order, checked against a dict: the
    open-addressing table must neither lose an entry nor keep one it forgot."""
    rng = random.Random(9)  # noqa: S311 - a repeatable order of operations, no secret
    clock = FakeClock()
    window, cap = 50.0, 64
    store = MemoryDeduplicator(window, cap, clock=clock)
    model: dict[bytes, float] = {}  # key -> expiry, in claim order
    keys = [hashlib.blake2b(bytes([n]), digest_size=16).digest() for n in range(200)]
    # Keys whose home slots collide, so probe chains form and are shifted back.
    keys += [bytes([n % 4]) + bytes(7) + n.to_bytes(8, "big") for n in range(40)]
    last: bytes | None = None
    for _ in range(20_000):
        clock.now += rng.choice((0.0, 0.0, 0.5, 1.0, 7.0))
        key = rng.choice(keys)
        if last is not None and rng.random() < 0.05:
            # A failed record releases the event it just claimed.
            store.release_key(last)
            model.pop(last, None)
            last = None
            continue
        expected = key not in model or model[key] <= clock.now
        assert store.claim_key(key) is expected
        if expected:
            model = {k: e for k, e in model.items() if e > clock.now and k != key}
            while len(model) >= cap:
                del model[next(iter(model))]
            model[key] = clock.now + window
            last = key
        else:
            last = None
    assert len(store) >= len({k for k, e in model.items() if e > clock.now})


def _metrics() -> Metrics:
    return Metrics(CollectorRegistry(), domain_limit=10)


async def test_the_settings_choose_the_store() -> None:
    off = build_deduplicator(Settings(dedup_max_entries=0), _metrics())
    memory = build_deduplicator(Settings(), _metrics())
    redis = build_deduplicator(
        Settings(dedup_max_entries=0, dedup_redis_url="redis://127.0.0.1:1/0"), _metrics()
    )
    try:
        assert isinstance(off, NoDeduplication)
        assert isinstance(memory, MemoryDeduplicator)
        assert isinstance(redis, RedisDeduplicator)
    finally:
        for store in (off, memory, redis):
            await store.close()


# Through the real app.

FAILURE = {
    "id": "5f1b0c2e",
    "type": "failure",
    "time": "1709294400",
    "recipient": "john@gmail.com",
    "action": "failed",
    "state": "rcpt to",
    "code": "550",
    "extended": "5.1.1",
    "description": "5.1.1 The email account that you tried to reach does not exist.",
    "tags": "newsletter",
}
DSN = (
    "From: MAILER-DAEMON@mx.example.net\r\n"
    "Subject: Undelivered Mail Returned to Sender\r\n"
    "MIME-Version: 1.0\r\n"
    'Content-Type: multipart/report; report-type=delivery-status; boundary="B1"\r\n'
    "\r\n"
    "--B1\r\n"
    "Content-Type: message/delivery-status\r\n"
    "\r\n"
    "Reporting-MTA: dns; mx.example.net\r\n"
    "\r\n"
    "Final-Recipient: rfc822; someone@gmail.com\r\n"
    "Action: failed\r\n"
    "Status: 5.1.1\r\n"
    "Diagnostic-Code: smtp; 550 5.1.1 no such user\r\n"
    "--B1--\r\n"
)
BOUNCE = {"id": "b-1", "type": "bounce", "recipient": "someone@gmail.com", "mime": DSN}
EVENT_COUNTERS = (
    "smtpeter_failures",
    "smtpeter_failure_status",
    "smtpeter_failure_reasons",
    "smtpeter_bounces",
    "smtpeter_complaints",
    "smtpeter_deliveries",
    "smtpeter_opens",
    "smtpeter_clicks",
)


@pytest.fixture
def settings() -> Settings:
    return Settings(dedup_window=WINDOW, dedup_max_entries=1000)


def counted(exporter: Exporter) -> dict[str, float]:
    """Every event counter's total over all its series."""
    totals = dict.fromkeys(EVENT_COUNTERS, 0.0)
    for metric in exporter.registry.collect():
        if metric.name in totals:
            totals[metric.name] += sum(s.value for s in metric.samples if s.name.endswith("_total"))
    return totals


def requests(exporter: Exporter, kind: str, outcome: str) -> float | None:
    return exporter.value("smtpeter_webhook_requests_total", kind=kind, outcome=outcome)


async def test_a_retried_failure_is_answered_duplicate_and_counted_once(
    exporter: Exporter,
) -> None:
    with structlog.testing.capture_logs() as logs:
        first = await exporter.post("/webhooks/failures", data=FAILURE)
        retry = await exporter.post("/webhooks/failures", data=FAILURE)
    assert (first.status, await first.json()) == (200, {"status": "accepted", "kind": "failure"})
    assert (retry.status, await retry.json()) == (200, {"status": "duplicate", "kind": "failure"})
    assert counted(exporter) == {
        **dict.fromkeys(EVENT_COUNTERS, 0.0),
        "smtpeter_failures": 1.0,
        "smtpeter_failure_status": 1.0,
        "smtpeter_failure_reasons": 1.0,
    }
    assert requests(exporter, "failure", "accepted") == 1
    assert requests(exporter, "failure", "duplicate") == 1
    assert [entry["event"] for entry in logs if entry["event"] == "failure"] == ["failure"]
    [duplicate] = [entry for entry in logs if entry["event"] == "duplicate"]
    assert duplicate["log_level"] == "debug"
    assert (duplicate["kind"], duplicate["id"]) == ("failure", "5f1b0c2e")


async def test_a_retried_bounce_is_counted_once(exporter: Exporter) -> None:
    first = await exporter.post("/webhooks/bounces", data=BOUNCE)
    retry = await exporter.post("/webhooks", json=BOUNCE)
    assert first.status == retry.status == 200
    assert (await retry.json()) == {"status": "duplicate", "kind": "bounce"}
    assert counted(exporter)["smtpeter_bounces"] == 1
    assert requests(exporter, "bounce", "accepted") == 1
    assert requests(exporter, "bounce", "duplicate") == 1


async def status_of(exporter: Exporter, path: str, fields: dict[str, str]) -> str:
    """The ``status`` of a 200 answer: ``accepted`` or ``duplicate``."""
    response = await exporter.post(path, data=fields)
    assert response.status == 200, await response.text()
    status: str = (await response.json())["status"]
    return status


async def test_a_failure_that_later_bounces_is_counted_twice(exporter: Exporter) -> None:
    later = {**FAILURE, "state": "bounce"}
    assert await status_of(exporter, "/webhooks/failures", FAILURE) == "accepted"
    assert await status_of(exporter, "/webhooks/failures", later) == "accepted"
    assert counted(exporter)["smtpeter_failures"] == 2


async def test_the_entries_gauge_reads_the_store_at_scrape_time(exporter: Exporter) -> None:
    assert exporter.value("smtpeter_dedup_entries") == 0
    await exporter.post("/webhooks/failures", data=FAILURE)
    await exporter.post("/webhooks/failures", data=FAILURE)
    await exporter.post("/webhooks/bounces", data=BOUNCE)
    assert exporter.value("smtpeter_dedup_entries") == 2
    scrape = await exporter.client.get("/metrics")
    assert "smtpeter_dedup_entries 2.0" in await scrape.text()


@pytest.mark.parametrize("settings", [Settings(dedup_max_entries=0)])
async def test_zero_max_entries_counts_every_post(exporter: Exporter) -> None:
    for _ in range(2):
        assert await status_of(exporter, "/webhooks/failures", FAILURE) == "accepted"
    assert counted(exporter)["smtpeter_failures"] == 2
    assert requests(exporter, "failure", "duplicate") == 0


async def test_an_event_whose_recording_failed_is_counted_when_retried(
    exporter: Exporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = Recorder.record
    calls: list[Event] = []

    def fails_once(self: Recorder, event: Event, *args: Any) -> None:  # noqa: ANN401
        calls.append(event)
        if len(calls) == 1:
            raise RuntimeError("disk on fire")
        record(self, event, *args)

    monkeypatch.setattr(Recorder, "record", fails_once)
    with structlog.testing.capture_logs():
        failed = await exporter.post("/webhooks/failures", data=FAILURE)
    assert failed.status == 500
    assert await status_of(exporter, "/webhooks/failures", FAILURE) == "accepted"
    assert counted(exporter)["smtpeter_failures"] == 1
    assert await status_of(exporter, "/webhooks/failures", FAILURE) == "duplicate"
