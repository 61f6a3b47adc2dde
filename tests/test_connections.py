"""Connections: header and idle timeouts, the cap and who it evicts, aiohttp's parser errors,
the open-files limit, and a flood of idle and trickling connections against the real process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import selectors
import socket
import statistics
import threading
import time
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any, Final

import pytest
import structlog
from aiohttp import http_exceptions
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from exporter.app import create_app
from exporter.connections import (
    ConnectionLimits,
    ConnectionTable,
    Phase,
    connection_cap,
    describe_parse_error,
    reserved_files,
)
from exporter.errors import CloseReason, Outcome
from exporter.server import Service, start_service
from exporter.settings import ListenAddress, Settings
from tests.test_process import FAILURE, Running, running

LOOPBACK: Final = "127.0.0.1"


@dataclass
class Served:
    """The app served in this process, on a free port, with its own registry."""

    service: Service
    registry: CollectorRegistry

    @property
    def port(self) -> int:
        return self.service.webhooks.site.port

    def closed(self, reason: CloseReason) -> float | None:
        return self.registry.get_sample_value(
            "smtpeter_http_connections_closed_total", {"reason": reason.value}
        )

    def requests(self, outcome: Outcome) -> float | None:
        return self.registry.get_sample_value(
            "smtpeter_webhook_requests_total", {"kind": "unknown", "outcome": outcome.value}
        )

    def open_connections(self) -> float | None:
        return self.registry.get_sample_value("smtpeter_http_connections")


@contextlib.asynccontextmanager
async def serving(**overrides: Any) -> AsyncIterator[Served]:  # noqa: ANN401 - Settings fields
    settings = Settings(
        listen_address=ListenAddress(LOOPBACK, 0), shutdown_timeout=0.5, **overrides
    )
    registry = CollectorRegistry()
    service = await start_service(create_app(settings, registry), settings)
    try:
        yield Served(service, registry)
    finally:
        await service.shut_down()


class Client:
    """A raw connection to the server."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> Client:
        return cls(*await asyncio.open_connection(LOOPBACK, port))

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def trickle(self, data: bytes, every: float) -> None:
        """Send ``data`` a byte at a time until done or the server hangs up."""
        with contextlib.suppress(ConnectionError):
            for byte in data:
                await self.send(bytes([byte]))
                await asyncio.sleep(every)

    async def response(self) -> tuple[int, bytes]:
        """Read one response with a Content-Length; its status and body."""
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        return status, await self.reader.readexactly(length)

    async def seconds_until_closed(self, within: float) -> float:
        """Seconds until the server closes the connection (reading whatever it sends)."""
        started = time.monotonic()
        async with asyncio.timeout(within):
            with contextlib.suppress(ConnectionError):
                while await self.reader.read(65536):
                    pass
        return time.monotonic() - started

    async def is_open(self) -> bool:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.05):
                return bool(await self.reader.read(1))
        return True

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


@contextlib.asynccontextmanager
async def clients(port: int, count: int) -> AsyncIterator[list[Client]]:
    opened = [await Client.open(port) for _ in range(count)]
    try:
        yield opened
    finally:
        for client in opened:
            await client.close()


@contextlib.asynccontextmanager
async def trickling(client: Client, data: bytes, every: float) -> AsyncIterator[None]:
    """``client`` sends ``data`` a byte every ``every`` seconds meanwhile."""
    task = asyncio.create_task(client.trickle(data, every))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


HEALTHZ: Final = b"GET /healthz HTTP/1.1\r\nHost: exporter\r\n\r\n"


def webhook(fields: dict[str, str]) -> bytes:
    body = urllib.parse.urlencode(fields).encode()
    return (
        b"POST /webhooks/failures HTTP/1.1\r\nHost: exporter\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )


# --- Timeouts ----------------------------------------------------------------------------


async def test_headers_trickled_a_byte_a_second_are_cut_after_the_header_timeout() -> None:
    async with (
        serving(header_timeout=2.5, idle_timeout=30) as served,
        clients(served.port, 1) as (client,),
    ):
        async with trickling(client, HEALTHZ, every=1.0):
            seconds = await client.seconds_until_closed(within=6)
        assert 2.3 <= seconds <= 3.3
        assert served.closed(CloseReason.HEADER_TIMEOUT) == 1
        assert served.closed(CloseReason.IDLE_TIMEOUT) == 0


async def test_a_connection_that_sends_nothing_is_cut_after_the_header_timeout() -> None:
    async with (
        serving(header_timeout=0.5, idle_timeout=30) as served,
        clients(served.port, 1) as (client,),
    ):
        seconds = await client.seconds_until_closed(within=3)
        assert 0.4 <= seconds <= 1.2
        assert served.closed(CloseReason.HEADER_TIMEOUT) == 1


async def test_an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() -> None:
    async with (
        serving(header_timeout=5, idle_timeout=1.0) as served,
        clients(served.port, 1) as (client,),
    ):
        await client.send(HEALTHZ)
        assert (await client.response())[0] == 200
        seconds = await client.seconds_until_closed(within=4)
        assert 0.8 <= seconds <= 1.8
        assert served.closed(CloseReason.IDLE_TIMEOUT) == 1
        assert served.closed(CloseReason.HEADER_TIMEOUT) == 0


async def test_a_keep_alive_request_has_a_header_timeout_from_its_first_byte() -> None:
    async with (
        serving(header_timeout=1.0, idle_timeout=30) as served,
        clients(served.port, 1) as (client,),
    ):
        await client.send(HEALTHZ)
        assert (await client.response())[0] == 200
        await asyncio.sleep(0.5)  # idle well within the idle timeout, then too slow a request
        async with trickling(client, HEALTHZ, every=0.3):
            seconds = await client.seconds_until_closed(within=4)
        assert 0.8 <= seconds <= 1.6
        assert served.closed(CloseReason.HEADER_TIMEOUT) == 1
        assert served.closed(CloseReason.IDLE_TIMEOUT) == 0


async def test_a_request_whose_body_outlasts_the_header_timeout_is_still_answered() -> None:
    async with (
        serving(header_timeout=0.5, idle_timeout=0.5) as served,
        clients(served.port, 1) as (client,),
    ):
        head, body = webhook(FAILURE).split(b"\r\n\r\n", 1)
        await client.send(head + b"\r\n\r\n")
        for part in (body[:10], body[10:20], body[20:]):
            await asyncio.sleep(0.4)  # 1.2 s in all: past both timeouts
            await client.send(part)
        status, answer = await client.response()
        assert (status, json.loads(answer)["status"]) == (200, "accepted")
        assert served.closed(CloseReason.HEADER_TIMEOUT) == 0
        assert served.closed(CloseReason.IDLE_TIMEOUT) == 0


# --- The cap -----------------------------------------------------------------------------


async def test_at_the_cap_a_new_connection_evicts_the_one_waiting_longest() -> None:
    async with serving(max_connections=3) as served, clients(served.port, 3) as (a, b, c):
        await asyncio.sleep(0.05)
        # a has just been answered, so it has waited least: b, silent since it opened, goes.
        await a.send(HEALTHZ)
        assert (await a.response())[0] == 200
        async with clients(served.port, 1) as (d,):
            await d.send(HEALTHZ)
            assert (await d.response())[0] == 200
            assert await b.seconds_until_closed(within=1) < 1
            assert [await x.is_open() for x in (a, c, d)] == [True, True, True]
        assert served.closed(CloseReason.EVICTED) == 1


async def test_at_the_cap_a_busy_connection_is_evicted_only_when_none_waits() -> None:
    request = webhook(FAILURE)
    async with serving(max_connections=2) as served, clients(served.port, 1) as (a,):
        await a.send(request[:-5])  # a is busy: its body is still arriving
        await asyncio.sleep(0.05)
        async with clients(served.port, 1) as (b,):  # b waits, and is newer than a
            await asyncio.sleep(0.05)
            async with clients(served.port, 1) as (c,):
                assert await b.seconds_until_closed(within=1) < 1
                assert await a.is_open()
                await c.send(request[:-5])  # now every connection is busy ...
                await asyncio.sleep(0.05)
                async with clients(served.port, 1) as (d,):
                    assert await a.seconds_until_closed(within=1) < 1  # ... so the oldest goes
                    await c.send(request[-5:])
                    assert (await c.response())[0] == 200
                    await d.send(HEALTHZ)
                    assert (await d.response())[0] == 200
        assert served.closed(CloseReason.EVICTED) == 2


async def test_open_connections_are_counted_at_scrape_time() -> None:
    async with serving() as served:
        assert served.open_connections() == 0
        async with clients(served.port, 3):
            await asyncio.sleep(0.05)
            assert served.open_connections() == 3
        await asyncio.sleep(0.05)
        assert served.open_connections() == 0


class FakePeer:
    def __init__(self) -> None:
        self.closed = False

    def force_close(self) -> None:
        self.closed = True


async def test_trickled_header_bytes_do_not_move_a_connection_back_in_the_eviction_order() -> None:
    closes: list[CloseReason] = []
    table = ConnectionTable(ConnectionLimits(2, 10, 10), closes.append)
    slow, fresh = FakePeer(), FakePeer()
    slow_connection = table.open(slow)
    table.open(fresh)
    slow_connection.receiving()  # a byte of a request, long after it opened
    table.open(FakePeer())
    assert (slow.closed, fresh.closed) == (True, False)
    slow_connection.lost()
    assert closes == [CloseReason.EVICTED]


async def test_a_connection_evicted_before_it_is_made_is_not_counted_twice() -> None:
    closes: list[CloseReason] = []
    table = ConnectionTable(ConnectionLimits(1, 10, 10), closes.append)
    first = table.open(FakePeer())
    table.open(FakePeer())
    assert first.phase is Phase.CLOSED
    first.request_started()  # aiohttp may still have parsed a request it was sent
    first.request_done()
    first.lost()
    first.lost()
    assert (closes, len(table)) == ([CloseReason.EVICTED], 1)


# --- The open-files limit ----------------------------------------------------------------


def test_the_cap_is_lowered_to_leave_the_reserve_of_the_open_files_limit() -> None:
    reserved = reserved_files(webhook_sockets=1, metrics_sockets=0)
    assert connection_cap(1000, 1024, reserved) == 1024 - reserved
    assert connection_cap(1000, 65536, reserved) == 1000


def test_the_reserve_grows_with_every_listening_socket() -> None:
    one = reserved_files(webhook_sockets=1, metrics_sockets=0)
    assert reserved_files(webhook_sockets=2, metrics_sockets=0) > one
    assert reserved_files(webhook_sockets=1, metrics_sockets=1) > one


def test_the_cap_keeps_a_floor_when_the_open_files_limit_is_tiny() -> None:
    assert connection_cap(1000, 100, reserved_files(webhook_sockets=2, metrics_sockets=2)) == 8


# --- aiohttp's parser errors -------------------------------------------------------------

#: Each request quotes MARKER where aiohttp's own message would quote it back.
MARKER: Final = b"Xq7Marker"
PARSE_ERRORS: Final = {
    "too-many-headers": (
        b"GET / HTTP/1.1\r\nHost: x\r\n"
        + b"".join(b"X-%d: %s\r\n" % (i, MARKER) for i in range(200))
        + b"\r\n",
        Outcome.TOO_LARGE,
        "too many headers",
    ),
    "bad-content-length": (
        b"POST /webhooks HTTP/1.1\r\nHost: x\r\nContent-Length: 1" + MARKER + b"\r\n\r\n",
        Outcome.INVALID,
        "Content-Length",
    ),
    "duplicate-content-length": (
        b"POST /webhooks HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\nContent-Length: 9\r\n\r\n"
        + MARKER,
        Outcome.INVALID,
        "Duplicate Content-Length",
    ),
    "content-length-with-transfer-encoding": (
        b"POST /webhooks HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n" + MARKER,
        Outcome.INVALID,
        "Transfer-Encoding",
    ),
    "request-line-too-long": (
        b"GET /" + MARKER + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        Outcome.TOO_LARGE,
        "too long",
    ),
    "header-too-long": (
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: " + MARKER + b"a" * 9000 + b"\r\n\r\n",
        Outcome.TOO_LARGE,
        "too long",
    ),
    "invalid-method": (
        b"GE(T /" + MARKER + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        Outcome.INVALID,
        "method",
    ),
    "invalid-version": (
        b"GET /" + MARKER + b" HTTP/9.9\r\nHost: x\r\n\r\n",
        Outcome.INVALID,
        "HTTP version",
    ),
    "invalid-header": (
        b"GET / HTTP/1.1\r\nHost: x\r\nBad " + MARKER + b": y\r\n\r\n",
        Outcome.INVALID,
        "header",
    ),
}


@pytest.mark.parametrize("case", PARSE_ERRORS, ids=list(PARSE_ERRORS))
async def test_a_request_aiohttp_cannot_parse_is_answered_json_counted_and_logged_blind(
    case: str,
) -> None:
    request, outcome, says = PARSE_ERRORS[case]
    async with serving() as served, clients(served.port, 1) as (client,):
        with structlog.testing.capture_logs() as logs:
            await client.send(request)
            status, body = await client.response()
            await client.seconds_until_closed(within=2)
        await asyncio.sleep(0.05)
        assert status == 400  # aiohttp's choice for every parser error
        assert says in json.loads(body)["error"]
        assert served.requests(outcome) == 1
        assert served.closed(CloseReason.BAD_REQUEST) == 1
    [line] = [line for line in logs if line["event"] == "webhook_rejected"]
    assert (line["log_level"], line["status"], line["outcome"]) == ("warning", 400, outcome.value)
    assert MARKER.decode() not in repr(logs) + body.decode()


def test_a_too_long_line_is_described_without_quoting_it() -> None:
    outcome, error = describe_parse_error(http_exceptions.LineTooLong(b"secret:\n\nsecret", 8190))
    assert outcome is Outcome.TOO_LARGE
    assert "secret" not in error


# --- A flood against the real process ----------------------------------------------------

FLOOD_SIZE: Final = 1500
#: A slowloris request: one byte of it a second.
TRICKLE: Final = b"POST /webhooks/failures HTTP/1.1\r\nHost: exporter\r\nX-Padding: " + b"a" * 64


class Flood:
    """``size`` connections to ``port``, half silent and half trickling a request's headers a
    byte a second. Those the server closes are opened again, at most ``reopen_rate`` a second
    (a connection-rate flood is another attack: it fills the kernel's accept queue, where no
    server can tell a client from an attacker)."""

    def __init__(self, port: int, size: int, *, reopen_rate: float, seconds: float) -> None:
        self._port = port
        self._size = size
        self._reopen_every = 1 / reopen_rate
        self._until = time.monotonic() + seconds
        self._selector = selectors.DefaultSelector()
        self._sent: dict[socket.socket, int] = {}  # trickling socket -> bytes sent
        self._closed: list[bool] = []  # whether each socket the server closed was trickling
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.reopened = 0

    def __enter__(self) -> Flood:
        for index in range(self._size):
            self._open(trickle=index % 2 == 0)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        for key in list(self._selector.get_map().values()):
            sock: socket.socket = key.fileobj  # type: ignore[assignment]
            self._selector.unregister(sock)
            sock.close()
        self._selector.close()

    def _open(self, *, trickle: bool) -> None:
        try:
            sock = socket.create_connection((LOOPBACK, self._port), timeout=2)
        except OSError:
            self._closed.append(trickle)
            return
        sock.setblocking(False)
        self._selector.register(sock, selectors.EVENT_READ, trickle)
        if trickle:
            self._sent[sock] = 0

    def _run(self) -> None:
        next_byte = next_reopen = time.monotonic()
        while not self._stop.is_set() and time.monotonic() < self._until:
            for key, _ in self._selector.select(timeout=0.01):
                sock: socket.socket = key.fileobj  # type: ignore[assignment]
                with contextlib.suppress(OSError):
                    if sock.recv(4096):
                        continue
                self._selector.unregister(sock)
                self._sent.pop(sock, None)
                sock.close()
                self._closed.append(bool(key.data))
            now = time.monotonic()
            while self._closed and next_reopen <= now:
                next_reopen = max(next_reopen + self._reopen_every, now - 1)
                self.reopened += 1
                self._open(trickle=self._closed.pop(0))
            if now >= next_byte:
                next_byte += 1.0
                for sock, sent in list(self._sent.items()):
                    with contextlib.suppress(OSError):
                        sock.send(TRICKLE[sent % len(TRICKLE) : sent % len(TRICKLE) + 1])
                        self._sent[sock] = sent + 1


@contextlib.contextmanager
def own_open_files_limit(at_least: int) -> Iterator[None]:
    """This process opens the flood's sockets: raise its own soft limit for the test."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < at_least:
        message = f"the flood needs {at_least} open files; the hard limit is {hard}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, at_least), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def scrape(exporter: Running) -> dict[str, float]:
    status, text = exporter.request("GET", "/metrics")
    assert status == 200
    return {
        sample.name + json.dumps(sample.labels, sort_keys=True): sample.value
        for family in text_string_to_metric_families(text.decode())
        for sample in family.samples
    }


@pytest.mark.slow
@pytest.mark.parametrize("hard_limit", ["machine", 1024], ids=["raisable", "hard-1024"])
def test_a_flood_of_idle_and_trickling_connections_never_delays_a_normal_client(
    hard_limit: str | int,
) -> None:
    _, machine_hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    hard = machine_hard if hard_limit == "machine" else int(hard_limit)
    latencies: dict[str, list[float]] = {"webhook": [], "scrape": []}
    with (
        own_open_files_limit(FLOOD_SIZE + 500),
        running(open_files=(1024, hard)) as exporter,
        Flood(exporter.port, FLOOD_SIZE, reopen_rate=100, seconds=30) as flood,
    ):
        started = time.monotonic()
        for index in range(200):
            assert time.monotonic() - started < 30, "the normal client took too long"
            fields = {**FAILURE, "id": f"flood-{index}"}
            body = urllib.parse.urlencode(fields).encode()
            headers = {"Content-Type": "application/x-www-form-urlencoded"}
            before = time.perf_counter()
            if index % 2:
                status, _ = exporter.request("GET", "/metrics", timeout=5)
                latencies["scrape"].append(time.perf_counter() - before)
            else:
                status, _ = exporter.request("POST", "/webhooks/failures", body, headers, timeout=5)
                latencies["webhook"].append(time.perf_counter() - before)
            assert status == 200
            time.sleep(0.01)
        samples = scrape(exporter)
        reopened = flood.reopened
        code, lines = exporter.stop()
    assert code == 0
    figures = ", ".join(
        f"{len(seconds)} {name}s p50 {statistics.median(seconds) * 1000:.1f} ms "
        f"max {max(seconds) * 1000:.1f} ms"
        for name, seconds in latencies.items()
    )
    print(  # the figures this test is about (pytest -s shows them)
        f"\nflood of {FLOOD_SIZE} (+{reopened} reopened), hard limit {hard}: {figures}"
    )
    worst = max(max(seconds) for seconds in latencies.values())
    assert worst < 0.1, f"slowest request took {worst * 1000:.0f} ms"
    [limit] = [line for line in lines if line["event"] == "open_files_limit"]
    assert (limit["soft_at_start"], limit["soft"], limit["hard"]) == (1024, hard, hard)
    [listening] = [line for line in lines if line["event"] == "listening"]
    cap = listening["max_connections"]
    lowered = 1024 - reserved_files(webhook_sockets=1, metrics_sockets=0)
    assert cap == (1000 if hard > 2048 else lowered)
    assert samples["smtpeter_http_connections{}"] <= cap
    assert samples['smtpeter_http_connections_closed_total{"reason": "evicted"}'] >= (
        FLOOD_SIZE - cap
    )
    assert not [line for line in lines if line["level"] in {"error", "critical"}]
