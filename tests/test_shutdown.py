"""Shutdown of the real process: readiness first, then the listener, then a drain that ends
within --web.shutdown-timeout however long a request is held, whatever signals follow."""

from __future__ import annotations

import asyncio
import http.client
import signal
import socket
import time
import urllib.parse
from typing import Final

import pytest
from prometheus_client import CollectorRegistry

from exporter.app import create_app
from exporter.server import start_service
from exporter.settings import ListenAddress, Settings
from tests.test_connections import HEALTHZ, clients, webhook
from tests.test_process import FAILURE, Running, running

BODY: Final = urllib.parse.urlencode(FAILURE).encode()
HEAD: Final = (
    b"POST /webhooks/failures HTTP/1.1\r\nHost: exporter\r\n"
    b"Content-Type: application/x-www-form-urlencoded\r\n"
    b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(BODY)
)
#: Process exit after the shutdown itself: interpreter teardown and the last log line.
EXIT_MARGIN: Final = 0.5


def readiness(port: int) -> int | None:
    """/readyz's status on a new connection, or None once connections are refused (or reset:
    one the kernel completed just before the listening socket closed)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", "/readyz")
        return connection.getresponse().status
    except (ConnectionRefusedError, ConnectionResetError, http.client.RemoteDisconnected):
        return None
    finally:
        connection.close()


def held_request(exporter: Running) -> socket.socket:
    """A webhook whose body stops halfway: in flight until it is sent the rest."""
    sock = socket.create_connection(("127.0.0.1", exporter.port), timeout=15)
    sock.sendall(HEAD + BODY[:10])
    time.sleep(0.3)  # the handler now waits for the rest of the body
    return sock


def answer(sock: socket.socket) -> bytes:
    response = b""
    while chunk := sock.recv(65536):
        response += chunk
    return response


async def test_during_the_drain_idle_connections_close_and_accepted_ones_are_answered() -> None:
    settings = Settings(listen_address=ListenAddress("127.0.0.1", 0), shutdown_timeout=2.5)
    service = await start_service(create_app(settings, CollectorRegistry()), settings)
    request = webhook(FAILURE)
    async with clients(service.webhooks.site.port, 3) as (held, idle, new):
        await held.send(request[:-5])  # in flight until the end of the test: the drain lasts
        await idle.send(HEALTHZ)
        assert (await idle.response())[0] == 200
        shutting_down = asyncio.create_task(service.shut_down())
        await asyncio.sleep(0.7)  # past the readiness pause (0.5 s): the listener is closed
        assert await idle.seconds_until_closed(within=0.1) < 0.1
        # Accepted before the listener closed, its request arrives after: still answered,
        # then its connection is closed.
        await new.send(HEALTHZ)
        assert (await new.response())[0] == 200
        assert await new.seconds_until_closed(within=0.5) < 0.5
        await held.send(request[-5:])
        assert (await held.response())[0] == 200
        await shutting_down


@pytest.mark.slow
def test_readiness_turns_503_before_the_listener_refuses_connections() -> None:
    with running(SMTPETER_EXPORTER_WEB_SHUTDOWN_TIMEOUT="5") as exporter:
        assert readiness(exporter.port) == 200
        exporter.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        seen: list[tuple[float, int | None]] = []
        while time.monotonic() - signalled < 5:
            status = readiness(exporter.port)
            seen.append((time.monotonic() - signalled, status))
            if status is None:
                break
            time.sleep(0.02)
        code, _ = exporter.stop(signalled=True)
    assert code == 0
    statuses = [status for _, status in seen]
    assert statuses[-1] is None, "the listener never closed"
    unready = [at for at, status in seen if status == 503]
    assert unready, f"connections were refused without readiness turning 503 first: {seen}"
    assert 200 not in statuses[statuses.index(503) :]
    # The pause (1 s, the smaller of 1 s and a fifth of 5 s) lets a load balancer notice.
    assert seen[-1][0] - unready[0] >= 0.8


@pytest.mark.slow
def test_with_a_metrics_listener_readiness_answers_503_while_webhooks_are_refused() -> None:
    with running(metrics_listener=True, SMTPETER_EXPORTER_WEB_SHUTDOWN_TIMEOUT="4") as exporter:
        assert exporter.metrics_port is not None
        with held_request(exporter) as sock:
            exporter.process.send_signal(signal.SIGTERM)
            time.sleep(1.5)  # past the readiness pause: draining the held request
            assert readiness(exporter.port) is None
            assert readiness(exporter.metrics_port) == 503
            sock.sendall(BODY[10:])
            assert answer(sock).startswith(b"HTTP/1.1 200 OK")
        code, _ = exporter.stop(signalled=True)
    assert code == 0


@pytest.mark.slow
def test_shutdown_ends_within_the_timeout_when_a_request_is_held_open_longer() -> None:
    timeout = 3.0
    with (
        running(SMTPETER_EXPORTER_WEB_SHUTDOWN_TIMEOUT=str(timeout)) as exporter,
        held_request(exporter) as sock,
    ):
        exporter.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        code = exporter.process.wait(timeout=4 * timeout)
        elapsed = time.monotonic() - signalled
        response = answer(sock)
        lines = exporter.lines()
    print(f"\nSIGTERM to exit with a held request: {elapsed:.2f} s (timeout {timeout:g} s)")
    assert code == 0
    assert elapsed <= timeout + EXIT_MARGIN
    assert elapsed >= timeout - 1, "the held request was not given the drain time"
    assert not response.startswith(b"HTTP/1.1 200"), "the held request was never completed"
    assert "drain_timeout" in [line["event"] for line in lines]


@pytest.mark.slow
def test_a_second_sigterm_does_not_cut_the_drain_short() -> None:
    with (
        running(SMTPETER_EXPORTER_WEB_SHUTDOWN_TIMEOUT="6") as exporter,
        held_request(exporter) as sock,
    ):
        exporter.process.send_signal(signal.SIGTERM)
        time.sleep(1.5)  # past the readiness pause: draining
        exporter.process.send_signal(signal.SIGTERM)
        exporter.process.send_signal(signal.SIGINT)
        time.sleep(0.5)
        assert exporter.process.poll() is None, "a second signal ended the process"
        sock.sendall(BODY[10:])
        assert answer(sock).startswith(b"HTTP/1.1 200 OK")
        code, lines = exporter.stop(signalled=True)
    assert code == 0
    events = [line["event"] for line in lines]
    assert events.count("signal_ignored") == 2
    assert events.index("signal_ignored") < events.index("failure")
