"""The installed console script as a real process: HTTP on a free port, scrape, SIGTERM."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import free_port, require_tool

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
    process: subprocess.Popen[str]
    port: int

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def stop(self, *, signalled: bool = False) -> tuple[int, list[dict[str, object]]]:
        """SIGTERM (unless already sent), wait, and return the exit code and the log lines."""
        if not signalled:
            self.process.send_signal(signal.SIGTERM)
        out, _ = self.process.communicate(timeout=20)
        return self.process.returncode, [json.loads(line) for line in out.splitlines() if line]


def start(**env: str) -> Running:
    if not SCRIPT.exists():
        pytest.fail(f"console script {SCRIPT} is not installed (pip install -e .)")
    port = free_port()
    environ = {
        **os.environ,
        "SMTPETER_EXPORTER_WEB_LISTEN_ADDRESS": f"127.0.0.1:{port}",
        "SMTPETER_EXPORTER_LOG_FORMAT": "json",
        **env,
    }
    process = subprocess.Popen(
        [str(SCRIPT)], env=environ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    running = Running(process, port)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"exporter exited early: {process.communicate()[0]}")
        try:
            if running.request("GET", "/readyz")[0] == 200:
                return running
        except OSError:
            time.sleep(0.05)
    process.kill()
    pytest.fail("exporter did not become ready within 15 s")


@pytest.fixture(scope="module")
def exporter() -> Iterator[Running]:
    running = start()
    yield running
    running.stop()


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
    running = start()
    body, _ = form(FAILURE)
    head = (
        "POST /webhooks/failures HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", running.port), timeout=10) as sock:
        sock.sendall(head + body[:10])
        time.sleep(0.3)  # the handler is now waiting for the rest of the body
        running.process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        # No new connections once shutdown has begun ...
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", running.port), timeout=2).close()
        # ... but the one in flight is answered.
        sock.sendall(body[10:])
        response = b""
        while chunk := sock.recv(65536):
            response += chunk
    assert response.startswith(b"HTTP/1.1 200 OK"), response
    code, lines = running.stop(signalled=True)
    assert code == 0
    events = [line["event"] for line in lines]
    assert events[:3] == ["starting", "unauthenticated_webhooks", "listening"]
    assert events[-3:] == ["shutting_down", "stopped"] or events[-2:] == [
        "shutting_down",
        "stopped",
    ]
    assert events.index("draining") < events.index("failure")


def test_every_log_line_is_one_json_object_with_level_and_utc_timestamp() -> None:
    running = start()
    body, headers = form(FAILURE)
    running.request("POST", "/webhooks/failures", body, headers)
    running.request("POST", "/webhooks/failures", b"recipient=nobody", headers)
    code, lines = running.stop()
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
    running = start(SMTPETER_EXPORTER_WEB_ACCESS_LOG="true")
    running.request("GET", "/healthz", headers={"User-Agent": "probe/1"})
    code, lines = running.stop()
    assert code == 0
    requests = [line for line in lines if line["event"] == "http_request"]
    [access] = [line for line in requests if line["path"] == "/healthz"]
    assert (access["method"], access["path"], access["status"]) == ("GET", "/healthz", 200)
    assert access["user_agent"] == "probe/1"
    assert isinstance(access["duration_seconds"], float)
