"""Duplicate detection shared in Redis: replicas count a retry once, keys expire, and an
outage (Redis stopped, or hung) costs at most one short timeout while events keep counting."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import structlog
from prometheus_client import CollectorRegistry, Counter

from exporter.app import create_app
from exporter.dedup_redis import KEY_PREFIX, REDIS_TIMEOUT, RedisDeduplicator, connect_redis
from exporter.events import FailureEvent
from exporter.settings import Settings
from tests.conftest import Exporter, MakeClient, free_port, require_tool
from tests.redis_server import RedisServer, running_redis

WINDOW = 3600.0
#: Slack for the event loop and the test client on a busy CI machine.
SLACK = 0.5
#: How long detection may take to resume once Redis is back: the first back-off is 1 s.
RECOVERY = 15.0

FAILURE = {
    "id": "5f1b0c2e",
    "type": "failure",
    "recipient": "john@gmail.com",
    "state": "rcpt to",
    "code": "550",
    "extended": "5.1.1",
    "description": "5.1.1 The email account that you tried to reach does not exist.",
}


def failure(message_id: str) -> dict[str, str]:
    return {**FAILURE, "id": message_id}


class FakeClock:
    """The clock the back-off and warning intervals are read from, moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def unavailable_counter() -> Counter:
    return Counter("unavailable", "events accepted unchecked", registry=CollectorRegistry())


def unavailable(counter: Counter) -> float:
    [metric] = counter.collect()
    return sum(sample.value for sample in metric.samples if sample.name.endswith("_total"))


class SilentServer:
    """A TCP server that takes connections and whatever is sent, and never answers: a hung
    Redis, without needing Redis."""

    def __init__(self) -> None:
        self.received = 0
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"redis://127.0.0.1:{port}/0"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        while chunk := await reader.read(65536):
            self.received += len(chunk)
        writer.close()

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()


@pytest.fixture
async def silent_redis() -> AsyncIterator[SilentServer]:
    server = SilentServer()
    yield server
    await server.close()


def failure_event(message_id: str) -> FailureEvent:
    return FailureEvent(
        message_id=message_id,
        occurred_at=None,
        tags=(),
        extra=(),
        truncated=(),
        recipient="john@gmail.com",
        domain="gmail.com",
        action="failed",
        state_raw="rcpt to",
        state="rcpt",
        code="550",
        extended="5.1.1",
        description="no such user",
    )


async def timed_claim(store: RedisDeduplicator, message_id: str) -> tuple[bool, float]:
    """Whether the event was new, and how long the claim took."""
    started = time.perf_counter()
    new = await store.claim(failure_event(message_id))
    return new, time.perf_counter() - started


async def test_a_hung_redis_costs_one_timeout_then_is_left_alone_for_a_doubling_back_off(
    silent_redis: SilentServer,
) -> None:
    clock = FakeClock()
    counter = unavailable_counter()
    timeout = 0.2
    url = await silent_redis.start()
    store = RedisDeduplicator(
        connect_redis(url, timeout),
        window=WINDOW,
        unavailable=counter,
        timeout=timeout,
        backoff=1.0,
        max_backoff=4.0,
        clock=clock,
    )
    try:
        with structlog.testing.capture_logs():
            new, waited = await timed_claim(store, "m-1")
            assert new is True
            assert timeout * 0.9 <= waited < timeout + SLACK
            assert silent_redis.received > 0

            # Backing off for 1 s: Redis is not asked, nobody waits.
            sent = silent_redis.received
            for number in range(2, 5):
                new, waited = await timed_claim(store, f"m-{number}")
                assert new is True
                assert waited < timeout / 2
            assert silent_redis.received == sent
            assert unavailable(counter) == 4

            # After the back-off one request tries again, fails, and the next pause is 2 s.
            clock.now += 1.0
            _, waited = await timed_claim(store, "m-5")
            assert waited >= timeout * 0.9
            sent = silent_redis.received
            clock.now += 1.9
            _, waited = await timed_claim(store, "m-6")
            assert waited < timeout / 2
            assert silent_redis.received == sent
            clock.now += 0.1
            _, waited = await timed_claim(store, "m-7")
            assert waited >= timeout * 0.9
            assert unavailable(counter) == 7
    finally:
        await store.close()


async def test_an_unreachable_redis_is_warned_about_once_per_interval() -> None:
    clock = FakeClock()
    counter = unavailable_counter()
    refused = f"redis://127.0.0.1:{free_port()}/0"
    store = RedisDeduplicator(
        connect_redis(refused),
        window=WINDOW,
        unavailable=counter,
        backoff=1.0,
        warn_every=60.0,
        clock=clock,
    )
    try:
        with structlog.testing.capture_logs() as logs:
            for number in range(50):
                clock.now += 0.5
                assert (await timed_claim(store, f"m-{number}"))[0] is True
        warnings = [entry for entry in logs if entry["event"] == "dedup_store_unavailable"]
        assert [entry["log_level"] for entry in warnings] == ["warning"]
        assert warnings[0]["error"].startswith("ConnectionError")

        with structlog.testing.capture_logs() as logs:
            clock.now += 60.0
            await timed_claim(store, "m-50")
        [warning] = [entry for entry in logs if entry["event"] == "dedup_store_unavailable"]
        # Every event since the first warning, this one included.
        assert warning["unchecked_events"] == 50
        assert unavailable(counter) == 51
    finally:
        await store.close()


# Against a real redis-server.


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    with running_redis(require_tool("redis-server"), tmp_path) as server:
        yield server


@pytest.fixture
def settings(redis_server: RedisServer) -> Settings:
    return Settings(dedup_redis_url=redis_server.url, dedup_window=WINDOW)


async def replica(aiohttp_client: MakeClient, settings: Settings) -> Exporter:
    registry = CollectorRegistry()
    return Exporter(await aiohttp_client(create_app(settings, registry)), registry)


async def post(exporter: Exporter, fields: dict[str, str]) -> tuple[str, float]:
    """The answer's ``status`` (a 200 is required) and how long the request took."""
    started = time.perf_counter()
    response = await exporter.post("/webhooks/failures", data=fields)
    took = time.perf_counter() - started
    assert response.status == 200, await response.text()
    status: str = (await response.json())["status"]
    return status, took


def failures_counted(exporter: Exporter) -> float:
    labels = {"state": "rcpt", "code_class": "5xx", "domain": "gmail.com", "provider": "google"}
    return exporter.value("smtpeter_failures_total", **labels) or 0.0


def unavailable_total(exporter: Exporter) -> float:
    return exporter.value("smtpeter_dedup_unavailable_total") or 0.0


async def wait_until_duplicates_are_detected(exporter: Exporter) -> None:
    """Post fresh events twice until the second post is a duplicate (Redis is back)."""
    tries = 0
    try:
        async with asyncio.timeout(RECOVERY):
            while True:
                tries += 1
                fields = failure(f"probe-{tries}")
                statuses = [(await post(exporter, fields))[0] for _ in range(2)]
                if statuses == ["accepted", "duplicate"]:
                    return
                await asyncio.sleep(0.2)
    except TimeoutError:
        pytest.fail(f"duplicates were still not detected {RECOVERY:g} s after Redis came back")


@pytest.mark.tools
@pytest.mark.slow
async def test_two_replicas_sharing_redis_count_a_retry_once(
    aiohttp_client: MakeClient, settings: Settings
) -> None:
    first, second = [await replica(aiohttp_client, settings) for _ in range(2)]
    assert (await post(first, FAILURE))[0] == "accepted"
    assert (await post(second, FAILURE))[0] == "duplicate"
    assert (await post(first, FAILURE))[0] == "duplicate"
    assert failures_counted(first) + failures_counted(second) == 1
    duplicates = {"kind": "failure", "outcome": "duplicate"}
    assert first.value("smtpeter_webhook_requests_total", **duplicates) == 1
    assert second.value("smtpeter_webhook_requests_total", **duplicates) == 1


@pytest.mark.tools
@pytest.mark.slow
@pytest.mark.parametrize("window", [1.0])
async def test_keys_are_prefixed_digests_that_expire_after_the_window(
    aiohttp_client: MakeClient, redis_server: RedisServer, window: float
) -> None:
    settings = Settings(dedup_redis_url=redis_server.url, dedup_window=window)
    exporter = await replica(aiohttp_client, settings)
    assert (await post(exporter, FAILURE))[0] == "accepted"
    with contextlib.closing(redis_server.client()) as client:
        [key] = client.keys("*")
        assert isinstance(key, bytes)
        assert key.startswith(KEY_PREFIX.encode())
        assert len(key) == len(KEY_PREFIX) + 32
        assert b"john" not in key
        assert b"gmail" not in key
        assert client.get(key) == b"1"
        assert 0 < client.pttl(key) <= window * 1000
        assert (await post(exporter, FAILURE))[0] == "duplicate"
        for _ in range(int((window + 5) / 0.1)):
            if not client.exists(key):
                break
            await asyncio.sleep(0.1)
        assert not client.exists(key)
    assert (await post(exporter, FAILURE))[0] == "accepted"
    assert failures_counted(exporter) == 2


@pytest.mark.tools
@pytest.mark.slow
async def test_release_deletes_the_key_so_the_retry_is_counted(redis_server: RedisServer) -> None:
    store = RedisDeduplicator(
        connect_redis(redis_server.url), window=WINDOW, unavailable=unavailable_counter()
    )
    try:
        event = failure_event("m-1")
        assert await store.claim(event) is True
        await store.release(event)
        with contextlib.closing(redis_server.client()) as client:
            assert client.keys("*") == []
        assert await store.claim(event) is True
        assert await store.claim(event) is False
    finally:
        await store.close()


@pytest.mark.tools
@pytest.mark.slow
async def test_events_are_counted_while_redis_is_down_and_detection_resumes_when_it_is_back(
    exporter: Exporter, redis_server: RedisServer
) -> None:
    assert (await post(exporter, failure("before")))[0] == "accepted"
    redis_server.stop()
    with structlog.testing.capture_logs() as logs:
        during = [await post(exporter, failure(f"during-{n}")) for n in range(3)]
        # A retry while Redis is down cannot be recognized: counted again, not lost.
        during.append(await post(exporter, failure("during-0")))
    assert [status for status, _ in during] == ["accepted"] * 4
    assert max(took for _, took in during) < REDIS_TIMEOUT + SLACK
    assert failures_counted(exporter) == 5
    assert unavailable_total(exporter) == 4
    warnings = [entry for entry in logs if entry["event"] == "dedup_store_unavailable"]
    assert [entry["log_level"] for entry in warnings] == ["warning"]

    redis_server.start()
    with structlog.testing.capture_logs() as logs:
        await wait_until_duplicates_are_detected(exporter)
    [recovered] = [entry for entry in logs if entry["event"] == "dedup_store_recovered"]
    assert recovered["log_level"] == "info"
    assert (await post(exporter, failure("after")))[0] == "accepted"
    assert (await post(exporter, failure("after")))[0] == "duplicate"


@pytest.mark.tools
@pytest.mark.slow
async def test_a_hung_redis_delays_no_request_beyond_the_short_timeout(
    exporter: Exporter, redis_server: RedisServer
) -> None:
    assert (await post(exporter, failure("before")))[0] == "accepted"
    redis_server.freeze()
    try:
        with structlog.testing.capture_logs():
            together = await asyncio.gather(
                *(post(exporter, failure(f"together-{n}")) for n in range(5))
            )
            # Backing off now: Redis is not asked, so nobody waits for it.
            after = [await post(exporter, failure(f"after-{n}")) for n in range(3)]
    finally:
        redis_server.thaw()
    assert [status for status, _ in together + after] == ["accepted"] * 8
    assert max(took for _, took in together) < REDIS_TIMEOUT + SLACK
    assert max(took for _, took in after) < REDIS_TIMEOUT * 0.8
    assert failures_counted(exporter) == 9
    assert unavailable_total(exporter) == 8
    await wait_until_duplicates_are_detected(exporter)
