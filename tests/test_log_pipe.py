"""A log pipe whose reader is gone or slow: an event is logged and counted and answered 2xx,
or none of the three; and a slow reader never stalls the event loop when lines are buffered."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import io
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from typing import TextIO

import pytest

from exporter.logs import LogFormat, LogSink, configure_logging
from tests.conftest import Exporter

FAILURE = {
    "id": "f-1",
    "recipient": "john@gmail.com",
    "state": "rcpt",
    "code": "550",
    "extended": "5.1.1",
    "description": "user unknown",
}
COUNTED = {"state": "rcpt", "code_class": "5xx", "domain": "gmail.com", "provider": "google"}


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


class _Pipe(io.StringIO):
    """A stdout whose reader can go away (BrokenPipeError) and come back."""

    def __init__(self) -> None:
        super().__init__()
        self.broken = False

    def write(self, text: str) -> int:
        if self.broken:
            raise BrokenPipeError(32, "Broken pipe")
        return super().write(text)


def _requests(exporter: Exporter, outcome: str) -> float | None:
    return exporter.value("smtpeter_webhook_requests_total", kind="failure", outcome=outcome)


async def test_a_log_line_that_cannot_be_written_is_a_503_and_nothing_is_counted(
    exporter: Exporter,
) -> None:
    pipe = _Pipe()
    configure_logging("info", LogFormat.JSON, pipe)
    pipe.broken = True
    response = await exporter.post("/webhooks/failures", data=FAILURE)
    assert response.status == 503
    assert response.headers["Retry-After"] == "1"
    assert await response.json() == {
        "error": "the event log cannot be written right now; the event was not recorded, "
        "retry later"
    }
    assert exporter.value("smtpeter_failures_total", **COUNTED) == 0
    assert exporter.value("smtpeter_last_event_timestamp_seconds", kind="failure") == 0
    assert _requests(exporter, "log_unavailable") == 1
    assert _requests(exporter, "accepted") == 0

    # SMTPeter retries once the reader is back: the event is new, not a duplicate.
    pipe.broken = False
    response = await exporter.post("/webhooks/failures", data=FAILURE)
    assert (response.status, await response.json()) == (
        200,
        {"status": "accepted", "kind": "failure"},
    )
    assert exporter.value("smtpeter_failures_total", **COUNTED) == 1
    lines = [json.loads(text) for text in pipe.getvalue().splitlines()]
    [line] = [line for line in lines if line["event"] == "failure"]
    assert line["id"] == "f-1"


async def test_a_real_pipe_whose_reader_has_gone_is_a_503(exporter: Exporter) -> None:
    read_fd, write_fd = os.pipe()
    os.close(read_fd)
    with os.fdopen(write_fd, "w") as stdout:
        configure_logging("info", LogFormat.JSON, stdout)
        response = await exporter.post("/webhooks/failures", data=FAILURE)
        assert response.status == 503
        assert exporter.value("smtpeter_failures_total", **COUNTED) == 0
        # Lines that need not get out (the rejection, the access log) are dropped quietly.
        with contextlib.suppress(BrokenPipeError):
            stdout.close()


class _SlowReader:
    """Reads a pipe 4 KiB at a time, ``pause`` seconds apart; keeps every line it read."""

    def __init__(self, pause: float) -> None:
        read_fd, write_fd = os.pipe()
        # The smallest pipe Linux allows (a page), so a few lines fill it.
        fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, 4096)
        self.stdout: TextIO = os.fdopen(write_fd, "w")
        self._read_fd = read_fd
        self._pause = pause
        self._data = bytearray()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while chunk := os.read(self._read_fd, 4096):
            self._data += chunk
            time.sleep(self._pause)
        os.close(self._read_fd)

    def speed_up(self) -> None:
        self._pause = 0

    def finish(self, sink: LogSink) -> list[dict[str, object]]:
        """Write out the buffer, close the pipe and return every line the reader got."""
        self.speed_up()
        sink.close()
        with contextlib.suppress(BrokenPipeError):
            self.stdout.close()
        self._thread.join(10)
        return [json.loads(line) for line in self._data.decode().splitlines()]


async def _post_while_ticking(
    exporter: Exporter, prefix: str, count: int, *, stop_at_503: bool
) -> tuple[list[int], float]:
    """POST ``count`` failures (distinct ids); the statuses, and the loop's worst lateness."""
    loop = asyncio.get_running_loop()
    worst = 0.0
    done = asyncio.Event()

    async def tick() -> None:
        nonlocal worst
        while not done.is_set():
            started = loop.time()
            await asyncio.sleep(0.001)
            worst = max(worst, loop.time() - started - 0.001)

    ticker = asyncio.create_task(tick())
    statuses: list[int] = []
    for i in range(count):
        response = await exporter.post(
            "/webhooks/failures", data={**FAILURE, "id": f"{prefix}-{i}"}
        )
        statuses.append(response.status)
        if stop_at_503 and response.status == 503:
            break
    done.set()
    await ticker
    return statuses, worst


async def test_a_slow_reader_stalls_the_loop_without_a_buffer_and_not_with_one(
    exporter: Exporter,
) -> None:
    # Without a buffer (today's direct write) every line waits for the reader, and the
    # whole event loop with it.
    reader = _SlowReader(pause=0.05)
    sink = configure_logging("info", LogFormat.JSON, reader.stdout)
    statuses, direct_worst = await _post_while_ticking(exporter, "direct", 40, stop_at_503=False)
    direct_lines = reader.finish(sink)
    assert set(statuses) == {200}
    assert direct_worst > 0.040, f"a blocked write stalled the loop only {direct_worst:.3f} s"

    # With a buffer, requests are answered at once until it is full, then refused with 503;
    # the loop never waits for the reader.
    reader = _SlowReader(pause=0.05)
    sink = configure_logging("info", LogFormat.JSON, reader.stdout, buffer_lines=30)
    statuses, buffered_worst = await _post_while_ticking(
        exporter, "buffered", 200, stop_at_503=True
    )
    buffered_lines = reader.finish(sink)
    assert statuses[-1] == 503
    # Event lines may fill the buffer; other lines (here aiohttp's access log) half of it.
    assert statuses.count(200) >= 15
    assert buffered_worst < 0.020, f"the loop stalled {buffered_worst:.3f} s with a buffer"

    # Nothing was counted that was not logged: every 200 is a line, every line a count.
    logged = [line for line in direct_lines + buffered_lines if line["event"] == "failure"]
    assert len(logged) == 40 + statuses.count(200)
    assert exporter.value("smtpeter_failures_total", **COUNTED) == len(logged)


async def test_the_buffer_is_written_out_at_shutdown(exporter: Exporter) -> None:
    reader = _SlowReader(pause=0.02)
    sink = configure_logging("info", LogFormat.JSON, reader.stdout, buffer_lines=1000)
    for i in range(100):
        response = await exporter.post("/webhooks/failures", data={**FAILURE, "id": f"s-{i}"})
        assert response.status == 200
    lines = reader.finish(sink)
    assert [line["id"] for line in lines if line["event"] == "failure"] == [
        f"s-{i}" for i in range(100)
    ]
