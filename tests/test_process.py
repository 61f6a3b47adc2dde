"""The installed console script as a real process: HTTP on a free port, scrape, SIGTERM."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest

from tests.conftest import free_ports, require_tool

pytestmark = pytest.mark.slow

SCRIPT = Path(sys.executable).parent / "smtpeter-exporter"
FAILURE = {
    "id": "proc-1",
    "type": "failure",
    "time": "1709294400",
    "recipient": "someone@gmail.com",
    "state": "rcpt to",
    "code": "550",
    "extended": "5.1.1",
    "description": "user unknown",
}


@dataclass
class Running:
    """The exporter as a process; its output goes to a file (a busy server never waits on an
    unread pipe)."""

    process: subprocess.Popen[bytes]
    port: int
    output: IO[bytes]
    metrics_port: int | None = None

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        *,
        port: int | None = None,
        timeout: float = 10,
    ) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", port or self.port, timeout=timeout)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def lines(self) -> list[dict[str, Any]]:
        """Every log line written so far."""
        self.output.flush()
        self.output.seek(0)
        return [json.loads(line) for line in self.output.read().splitlines() if line]

    def stop(
        self, *, signalled: bool = False, timeout: float = 20
    ) -> tuple[int, list[dict[str, Any]]]:
        """SIGTERM (unless already sent), wait, and return the exit code and the log lines."""
        if not signalled:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=timeout)
        return code, self.lines()

    def close(self) -> None:
        """Kill the process if it still runs, and drop its output file."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.output.close()


def start(
    *, open_files: tuple[int, int] | None = None, metrics_listener: bool = False, **env: str
) -> Running:
    """Start the console script on free loopback ports; ``open_files`` is its (soft, hard)
    RLIMIT_NOFILE, ``metrics_listener`` gives it a private metrics listener."""
    if not SCRIPT.exists():
        pytest.fail(f"console script {SCRIPT} is not installed (pip install -e .)")
    port, spare_port = free_ports(2)
    metrics_port = spare_port if metrics_listener else None
    environ = {
        **os.environ,
        "SMTPETER_EXPORTER_WEB_LISTEN_ADDRESS": f"127.0.0.1:{port}",
        "SMTPETER_EXPORTER_LOG_FORMAT": "json",
        **env,
    }
    if metrics_port is not None:
        environ["SMTPETER_EXPORTER_WEB_METRICS_LISTEN_ADDRESS"] = f"127.0.0.1:{metrics_port}"
    output = tempfile.TemporaryFile()  # noqa: SIM115 - closed by Running.close
    process = subprocess.Popen(
        [str(SCRIPT)],
        env=environ,
        stdout=output,
        stderr=subprocess.STDOUT,
        # Only the child's limit changes; no thread of this process runs Python meanwhile.
        preexec_fn=_open_files_limit(*open_files) if open_files else None,  # noqa: PLW1509
    )
    running = Running(process, port, output, metrics_port)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            running.close()
            pytest.fail(f"exporter exited early: {running.lines()}")
        try:
            if running.request("GET", "/readyz", port=metrics_port)[0] == 200:
                return running
        except OSError:
            time.sleep(0.05)
    running.close()
    pytest.fail("exporter did not become ready within 15 s")


def _open_files_limit(soft: int, hard: int) -> Callable[[], None]:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    return limit


@contextlib.contextmanager
def running(
    *, open_files: tuple[int, int] | None = None, metrics_listener: bool = False, **env: str
) -> Iterator[Running]:
    """:func:`start`, and kill the process however the test ends."""
    exporter = start(open_files=open_files, metrics_listener=metrics_listener, **env)
    try:
        yield exporter
    finally:
        exporter.close()


@pytest.fixture(scope="module")
def exporter() -> Iterator[Running]:
    with running() as process:
        yield process


def form(fields: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    return urllib.parse.urlencode(fields).encode(), {
        "Content-Type": "application/x-www-form-urlencoded"
    }


def test_console_script_answers_a_webhook_and_a_scrape(exporter: Running) -> None:
    body, headers = form(FAILURE)
    status, answer = exporter.request("POST", "/webhooks/failures", body, headers)
    assert (status, json.loads(answer)) == (200, {"status": "accepted", "kind": "failure"})
    status, metrics = exporter.request("GET", "/metrics")
    assert status == 200
    line = (
        'smtpeter_failures_total{code_class="5xx",domain="gmail.com",provider="google",'
        'state="rcpt"} 1.0'
    )
    assert line in metrics.decode().splitlines()


def test_live_exposition_passes_promtool_check_metrics(exporter: Running) -> None:
    promtool = require_tool("promtool")
    body, headers = form({**FAILURE, "recipient": "x@new-domain.example"})
    assert exporter.request("POST", "/webhooks/failures", body, headers)[0] == 200
    _, metrics = exporter.request("GET", "/metrics")
    result = subprocess.run(
        [promtool, "check", "metrics"], check=False, input=metrics, capture_output=True, timeout=60
    )
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    assert result.stdout.decode().strip() == "", result.stdout.decode()


def test_sigterm_lets_an_in_flight_request_finish_then_exits_zero() -> None:
    body, _ = form(FAILURE)
    head = (
        "POST /webhooks/failures HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with (
        running() as exporter,
        socket.create_connection(("127.0.0.1", exporter.port), timeout=10) as sock,
    ):
        sock.sendall(head + body[:10])
        time.sleep(0.3)  # the handler is now waiting for the rest of the body
        exporter.process.send_signal(signal.SIGTERM)
        # No new connections once the readiness pause is over ...
        refused_at = time.monotonic() + 3
        while True:
            try:
                socket.create_connection(("127.0.0.1", exporter.port), timeout=2).close()
            except ConnectionRefusedError:
                break
            assert time.monotonic() < refused_at, "the listener still accepts 3 s after SIGTERM"
            time.sleep(0.05)
        # ... but the one in flight is answered.
        sock.sendall(body[10:])
        response = b""
        while chunk := sock.recv(65536):
            response += chunk
        assert response.startswith(b"HTTP/1.1 200 OK"), response
        code, lines = exporter.stop(signalled=True)
    assert code == 0
    events = [line["event"] for line in lines]
    assert events[0] == "starting"
    assert events.index("open_files_limit") < events.index("listening")
    assert events[-2:] == ["shutting_down", "stopped"]
    assert events.index("draining") < events.index("failure")


def test_every_log_line_is_one_json_object_with_level_and_utc_timestamp() -> None:
    body, headers = form(FAILURE)
    with running() as exporter:
        exporter.request("POST", "/webhooks/failures", body, headers)
        exporter.request("POST", "/webhooks/failures", b"recipient=nobody", headers)
        code, lines = exporter.stop()
    assert code == 0
    failure = next(line for line in lines if line["event"] == "failure")
    rejected = next(line for line in lines if line["event"] == "webhook_rejected")
    for line in (failure, rejected):
        assert str(line["timestamp"]).endswith("Z")
        assert isinstance(line["request_id"], str)
    assert (failure["level"], rejected["level"]) == ("info", "warning")
    assert rejected["error"] == "recipient has no domain"


def test_bad_environment_value_stops_with_a_message_naming_the_variable() -> None:
    result = subprocess.run(
        [str(SCRIPT)],
        check=False,
        env={**os.environ, "SMTPETER_EXPORTER_METRICS_DOMAIN_LIMIT": "lots"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "SMTPETER_EXPORTER_METRICS_DOMAIN_LIMIT" in result.stderr


def test_access_log_lines_go_through_structlog_when_enabled() -> None:
    with running(SMTPETER_EXPORTER_WEB_ACCESS_LOG="true") as exporter:
        exporter.request("GET", "/healthz", headers={"User-Agent": "probe/1"})
        code, lines = exporter.stop()
    assert code == 0
    requests = [line for line in lines if line["event"] == "http_request"]
    [access] = [line for line in requests if line["path"] == "/healthz"]
    assert (access["method"], access["path"], access["status"]) == ("GET", "/healthz", 200)
    assert access["user_agent"] == "probe/1"
    assert isinstance(access["duration_seconds"], float)
