"""A DNS server on loopback that answers TXT records from a dict the test changes.

``LoopbackDns`` runs dnslib's server on UDP and TCP on one free port of 127.0.0.1. A test
publishes, rotates or removes keys by changing :attr:`LoopbackDns.records`, splits a record
into several character-strings, slows one name down, or makes the whole server fail::

    dns.publish("one._domainkey.copernica.com", key.dkim_record())
    dns.mode = Mode.SERVFAIL
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from enum import StrEnum
from typing import Any

from dnslib import QTYPE, RCODE, RR, TXT, DNSRecord  # type: ignore[import-untyped]
from dnslib.dns import DNSError  # type: ignore[import-untyped]
from dnslib.server import DNSServer  # type: ignore[import-untyped]

from exporter.settings import ListenAddress


class Mode(StrEnum):
    """How the whole server behaves."""

    ANSWER = "answer"
    #: Every query gets SERVFAIL, as when the authoritative servers are unreachable.
    SERVFAIL = "servfail"
    #: No query is answered: the client times out.
    SILENT = "silent"


class LoopbackDns:
    """The records, the behaviour and the log of queries of one loopback DNS server."""

    def __init__(self) -> None:
        #: name (lowercase, no trailing dot) -> TXT records, each a tuple of strings.
        self.records: dict[str, list[tuple[str, ...]]] = {}
        self.ttl: dict[str, int] = {}
        #: Seconds to wait before answering a name.
        self.delays: dict[str, float] = {}
        self.mode = Mode.ANSWER
        #: How many queries each name received.
        self.queries: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._servers: list[tuple[Any, threading.Thread]] = []
        self.port = 0

    @property
    def address(self) -> ListenAddress:
        return ListenAddress("127.0.0.1", self.port)

    def publish(self, name: str, text: str, *, ttl: int = 300, split: int | None = None) -> None:
        """Publish one TXT record at ``name`` (replacing any), cut into ``split``-long strings."""
        size = split or 255
        self.records[name.lower()] = [tuple(text[i : i + size] for i in range(0, len(text), size))]
        self.ttl[name.lower()] = ttl

    def remove(self, name: str) -> None:
        self.records.pop(name.lower(), None)

    # dnslib's resolver interface: called on the server's threads.
    def resolve(self, request: Any, handler: Any) -> Any:  # noqa: ANN401 - dnslib is untyped
        name = str(request.q.qname).rstrip(".").lower()
        with self._lock:
            self.queries[name] += 1
        if self.mode is Mode.SILENT:
            raise DNSError("not answering")  # dnslib's handler then sends nothing
        time.sleep(self.delays.get(name, 0.0))
        reply = request.reply()
        if self.mode is Mode.SERVFAIL:
            reply.header.rcode = RCODE.SERVFAIL
            return reply
        records: Sequence[tuple[str, ...]] | None = self.records.get(name)
        if records is None:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        if request.q.qtype in (QTYPE.TXT, QTYPE.ANY):
            for strings in records:
                reply.add_answer(
                    RR(name, QTYPE.TXT, ttl=self.ttl.get(name, 300), rdata=TXT(list(strings)))
                )
        return reply

    def start(self) -> None:
        self.port = _free_udp_and_tcp_port()
        for tcp in (False, True):
            server = DNSServer(
                self, address="127.0.0.1", port=self.port, tcp=tcp, logger=_QuietLogger()
            ).server
            # A short poll interval: dnslib's default makes every stop take half a second.
            thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
            )
            thread.start()
            self._servers.append((server, thread))

    def stop(self) -> None:
        for server, thread in self._servers:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)
        self._servers.clear()


class _QuietLogger:
    """dnslib logs every packet to stdout by default."""

    def __getattr__(self, name: str) -> Any:  # noqa: ANN401 - any log_* method
        return lambda *args: None


def _free_udp_and_tcp_port() -> int:
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port: int = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no port is free for both UDP and TCP on 127.0.0.1")


@contextlib.contextmanager
def running() -> Iterator[LoopbackDns]:
    """A started loopback DNS server, stopped on leaving; a test module's fixture wraps it::

    @pytest.fixture
    def dns_server() -> Iterator[LoopbackDns]:
        with running() as server:
            yield server
    """
    server = LoopbackDns()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def query(server: LoopbackDns, name: str) -> DNSRecord:
    """Ask ``server`` for ``name``'s TXT records directly (to test the server itself)."""
    packet = DNSRecord.question(name, "TXT").send("127.0.0.1", server.port, timeout=2)
    return DNSRecord.parse(packet)
