"""Nothing lost at shutdown: SIGTERM in the middle of a load of distinct events.

The console script runs on loopback with a private metrics listener. Several keep-alive
clients post distinct events (benchmarks/traffic.py, each with its own X-Request-Id); once
enough are answered the process gets SIGTERM, and the clients keep sending, reconnecting
when a connection is closed, until a connection is refused. One more request is held in
flight with half its body, so the drain lasts its whole budget.

"Nothing lost" means, by request id, with each event sent at most once:

- every event answered 2xx has exactly one event line in the log (so it was counted: the
  recorder logs and counts together, and the counters are checked against the log below);
- no event answered anything but 2xx, and no event never sent, has an event line;
- an event line whose request got no answer (its connection closed first) is allowed: the
  client cannot tell, and SMTPeter's retry would be a duplicate;
- the held request, whose body never arrives, is neither answered nor logged;
- the counters equal the log: accepted requests per kind, and each kind's own counter.

The final counters come from the private listener, which keeps answering during the drain:
after every client has seen its connection refused, /metrics is scraped until it shows no
open webhook connection but the held one. From then on nothing can be counted (the listener
is closed and the held request cannot finish its body), so that scrape is the final state.
"""

from __future__ import annotations

import contextlib
import http.client
import signal
import socket
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final

import pytest
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.traffic import Traffic
from tests.test_process import Running, running

pytestmark = pytest.mark.slow

CLIENTS: Final = 6
#: Events posted at most; a run on a 2-core machine uses 5,000 to 8,000 of them.
MAX_EVENTS: Final = 20_000
#: Events answered before SIGTERM.
SIGTERM_AFTER: Final = 1_000
#: Seconds the shutdown may take: long enough to scrape during the drain.
SHUTDOWN_TIMEOUT: Final = 8
#: Bound on the whole load, SIGTERM included.
LOAD_SECONDS: Final = 60
FORM: Final = "application/x-www-form-urlencoded"
HELD_ID: Final = "held-0"
#: What a client saw instead of an answer.
UNANSWERED: Final = "unanswered"
NOT_SENT: Final = "not_sent"
#: The counter each kind's events are counted in (bounces per recipient named).
KIND_COUNTERS: Final = {
    "failure": "smtpeter_failures_total",
    "delivery": "smtpeter_deliveries_total",
    "open": "smtpeter_opens_total",
    "click": "smtpeter_clicks_total",
    "bounce": "smtpeter_bounces_total",
    "abuse": "smtpeter_complaints_total",
}


@dataclass(frozen=True)
class Event:
    request_id: str
    path: str
    body: bytes


@dataclass
class Load:
    """The events, handed out once each, and what became of every one."""

    events: list[Event]
    #: request id -> the status answered, UNANSWERED or NOT_SENT
    results: dict[str, int | str] = field(default_factory=dict)
    answered_at: dict[str, float] = field(default_factory=dict)
    refused_clients: int = 0
    _next: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self) -> Event | None:
        with self._lock:
            if self._next == len(self.events):
                return None
            self._next += 1
            return self.events[self._next - 1]

    def note(self, event: Event, result: int | str) -> None:
        with self._lock:
            self.results[event.request_id] = result
            if isinstance(result, int):
                self.answered_at[event.request_id] = time.monotonic()

    def refused(self, event: Event) -> None:
        """``event`` was not sent: its client's connection was refused, and it stops."""
        with self._lock:
            self.results[event.request_id] = NOT_SENT
            self.refused_clients += 1

    def answered(self) -> int:
        with self._lock:
            return len(self.answered_at)


def distinct_events(count: int) -> list[Event]:
    """``count`` events of every kind, each with its own id and request id."""
    return [
        Event(f"nl-{index:05d}", path, urllib.parse.urlencode(fields).encode())
        for index, (path, fields) in enumerate(Traffic(seed=23).mix(count, failure_share=0.1))
    ]


def client(port: int, load: Load, deadline: float) -> None:
    """Post events on one keep-alive connection until a connection is refused."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        while time.monotonic() < deadline and (event := load.take()) is not None:
            headers = {"Content-Type": FORM, "X-Request-Id": event.request_id}
            try:
                connection.request("POST", event.path, event.body, headers)
            except ConnectionRefusedError:
                load.refused(event)
                return
            except OSError:  # the server closed the connection as the request went out
                load.note(event, UNANSWERED)
                connection.close()
                continue
            try:
                response = connection.getresponse()
                response.read()
            except (OSError, http.client.HTTPException):
                load.note(event, UNANSWERED)
                connection.close()
                continue
            load.note(event, response.status)
    finally:
        connection.close()


@contextlib.contextmanager
def held_request(port: int) -> Iterator[socket.socket]:
    """A webhook whose body stops halfway: in flight until the drain's budget runs out."""
    body = urllib.parse.urlencode({"recipient": "held@example.com", "type": "failure"}).encode()
    head = (
        "POST /webhooks/failures HTTP/1.1\r\nHost: exporter\r\n"
        f"Content-Type: {FORM}\r\nX-Request-Id: {HELD_ID}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=SHUTDOWN_TIMEOUT + 10) as sock:
        sock.sendall(head + body[:10])
        yield sock


def scrape(exporter: Running) -> dict[str, list[tuple[dict[str, str], float]]]:
    """The private listener's /metrics: samples by name."""
    status, text = exporter.request("GET", "/metrics", port=exporter.metrics_port, timeout=5)
    assert status == 200
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def refuses(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def final_scrape(exporter: Running) -> dict[str, list[tuple[dict[str, str], float]]]:
    """The scrape after which nothing can be counted: the webhook listener refuses
    connections and the only one left open is the held request's."""
    deadline = time.monotonic() + SHUTDOWN_TIMEOUT / 2
    while time.monotonic() < deadline:
        assert refuses(exporter.port), "the webhook listener still accepts connections"
        samples = scrape(exporter)
        [(_, open_connections)] = samples["smtpeter_http_connections"]
        if open_connections <= 1:
            return samples
        time.sleep(0.02)
    pytest.fail("webhook connections besides the held one stayed open during the drain")


def total(samples: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> int:
    return int(
        sum(
            value
            for found, value in samples.get(name, [])
            if all(found.get(k) == v for k, v in labels.items())
        )
    )


def event_lines(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line for line in lines if "kind" in line and line["event"] == line["kind"]]


def test_sigterm_under_load_loses_no_acknowledged_event_and_counts_only_logged_ones() -> None:
    load = Load(distinct_events(MAX_EVENTS))
    with running(
        metrics_listener=True,
        SMTPETER_EXPORTER_WEB_SHUTDOWN_TIMEOUT=str(SHUTDOWN_TIMEOUT),
    ) as exporter:
        deadline = time.monotonic() + LOAD_SECONDS
        threads = [
            threading.Thread(target=client, args=(exporter.port, load, deadline), daemon=True)
            for _ in range(CLIENTS)
        ]
        for thread in threads:
            thread.start()
        while load.answered() < SIGTERM_AFTER:
            assert time.monotonic() < deadline, f"only {load.answered()} events answered"
            assert all(thread.is_alive() for thread in threads), "a client ended early"
            time.sleep(0.005)
        with held_request(exporter.port) as held:
            time.sleep(0.2)  # the held request is in the handler, waiting for its body
            exporter.process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            for thread in threads:
                thread.join(timeout=max(deadline - time.monotonic(), 0))
            assert not any(thread.is_alive() for thread in threads), "the load did not end"
            final = final_scrape(exporter)
            code, lines = exporter.stop(signalled=True, timeout=SHUTDOWN_TIMEOUT + 10)
            held.settimeout(5)
            with contextlib.suppress(OSError):
                assert not held.recv(65536).startswith(b"HTTP/1.1 2"), "the held request got 2xx"

    assert code == 0
    results = load.results
    statuses = Counter(results.values())
    ok = {rid for rid, result in results.items() if isinstance(result, int) and 200 <= result < 300}
    unanswered = {rid for rid, result in results.items() if result == UNANSWERED}
    logged = Counter(line["request_id"] for line in event_lines(lines))
    after_sigterm = sum(at > signalled for at in load.answered_at.values())
    print(
        f"\n{len(results)} events sent or tried, {CLIENTS} clients: {dict(statuses)}; "
        f"{after_sigterm} answered after SIGTERM; {len(logged)} logged; "
        f"{len(unanswered & set(logged))} of {len(unanswered)} unanswered were logged"
    )
    # The shutdown came in the middle of the load, and the load lasted until it was refused.
    assert after_sigterm > 0
    assert load.refused_clients == CLIENTS
    # Nothing is refused here: every answer is a 200.
    assert set(statuses) <= {200, UNANSWERED, NOT_SENT}, statuses
    # Every acknowledged event is logged, once; nothing else is logged but unanswered ones.
    assert [rid for rid, n in logged.items() if n > 1] == []
    assert sorted(ok - set(logged)) == []
    assert sorted(set(logged) - ok - unanswered) == []
    assert HELD_ID not in logged
    # The counters equal the log, kind by kind.
    events = event_lines(lines)
    by_kind = Counter(line["kind"] for line in events)
    for kind, counter in KIND_COUNTERS.items():
        assert (
            total(final, "smtpeter_webhook_requests_total", kind=kind, outcome="accepted")
            == (by_kind[kind])
        ), kind
        expected = by_kind[kind]
        if kind == "bounce":  # one per recipient the message names, one when it names none
            expected = sum(max(len(line["facts"]), 1) for line in events if line["kind"] == kind)
        assert total(final, counter) == expected, kind
    assert total(final, "smtpeter_webhook_requests_total", outcome="duplicate") == 0
    assert sum(by_kind.values()) == len(logged)
