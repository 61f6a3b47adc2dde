"""Client connections: how many may be open, how long one may wait, and who makes room.

aiohttp reads requests with no deadline for their headers and keeps idle connections for an
hour, and the process runs out of file descriptors long before it runs out of anything else.
So every connection is tracked here from the moment aiohttp creates its protocol:

- a new connection must deliver its first request's headers within ``header_timeout``;
- between requests it may stay idle for ``idle_timeout``, and once the next request's first
  bytes arrive its headers are again due within ``header_timeout``;
- while a request is being handled no deadline of ours applies (the request path has its own
  body timeout);
- at ``max_connections`` a new connection closes the one that has waited longest for a
  request (idle or trickling its headers), or, when every connection is busy, the one whose
  request has run longest: a flood of slow or silent connections cannot lock anyone out.

:class:`ConnectionHandler` is aiohttp's own ``RequestHandler`` reporting to the table, and
answers what aiohttp's parser refuses as JSON, counted and logged like any other refusal.
"""

from __future__ import annotations

import asyncio
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum, auto
from typing import Any, Final, Protocol

from aiohttp import http_exceptions, web

from exporter.errors import CloseReason, Outcome
from exporter.logs import log
from exporter.metrics import UNKNOWN_KIND, Metrics

#: File descriptors kept free of client connections: stdio, the event loop, the listening
#: sockets, log and configuration files, /proc reads for the process metrics, DNS and Redis.
RESERVED_FILES: Final = 64
#: Connections the kernel may queue for accept on each listening socket (the listen backlog).
#: The event loop accepts up to this many per socket in one turn, before any of them counts
#: against the cap, and those they evict close a turn later: up to twice this many
#: descriptors per listening socket can be in use beyond the cap for a moment.
WEBHOOK_BACKLOG: Final = 128
#: The private metrics listener (Prometheus, probes) needs only a few connections.
METRICS_MAX_CONNECTIONS: Final = 32
METRICS_BACKLOG: Final = 16
#: The cap never goes below this, however low the open-files limit.
MIN_CONNECTIONS: Final = 8


@dataclass(frozen=True, slots=True)
class OpenFiles:
    """The open-files limit (RLIMIT_NOFILE) as found at start and as raised."""

    soft_at_start: int
    soft: int
    hard: int


def raise_open_files_limit() -> OpenFiles:
    """Raise the soft open-files limit to the hard one and log both.

    Service managers start processes with a soft limit of 1024, and each connection is a file.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    raised = soft
    if hard not in (resource.RLIM_INFINITY, soft):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            raised = hard
        except (ValueError, OSError) as exc:
            log.warning("open_files_limit_not_raised", soft=soft, hard=hard, error=str(exc))
    limits = OpenFiles(soft_at_start=soft, soft=raised, hard=hard)
    log.info("open_files_limit", soft=limits.soft, hard=hard, soft_at_start=soft)
    return limits


def connection_cap(configured: int, open_files: int, reserved: int) -> int:
    """The connection cap: ``configured``, lowered so the process never runs out of files.

    Running out would stop the event loop from accepting anyone for a second at a time.
    """
    fits = max(open_files - reserved, MIN_CONNECTIONS)
    if fits < configured:
        log.warning(
            "max_connections_lowered",
            configured=configured,
            max_connections=fits,
            open_files_limit=open_files,
            reserved_files=reserved,
        )
        return fits
    return configured


def reserved_files(*, webhook_sockets: int, metrics_sockets: int) -> int:
    """File descriptors the webhook listener's cap leaves free, given how many sockets each
    listener bound (an address with an empty host binds one for IPv4 and one for IPv6)."""
    reserve = RESERVED_FILES + 2 * WEBHOOK_BACKLOG * webhook_sockets
    if metrics_sockets:
        reserve += METRICS_MAX_CONNECTIONS + 2 * METRICS_BACKLOG * metrics_sockets
    return reserve


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """The cap and the deadlines of one listener's connections."""

    max_connections: int
    header_timeout: float
    idle_timeout: float


class Peer(Protocol):
    """What the table needs of a connection (aiohttp's ``RequestHandler`` has it)."""

    def force_close(self) -> None:
        """Close now."""


class Phase(Enum):
    """Where a connection is between two requests, which decides its deadline."""

    #: Accepted; its first request's headers are due ``header_timeout`` after the accept.
    NEW = auto()
    #: Between two requests of a keep-alive connection: ``idle_timeout``.
    IDLE = auto()
    #: A request's first bytes are in, its headers not yet: ``header_timeout`` from the first.
    HEADERS = auto()
    #: A request is being handled: no deadline here (the request path has its body timeout).
    BUSY = auto()
    CLOSED = auto()


class Connection:
    """One client connection: its phase, its deadline and why the server closed it."""

    __slots__ = ("_reason", "_started_at", "_table", "_timer", "closing", "peer", "phase")

    def __init__(self, table: ConnectionTable, peer: Peer) -> None:
        self._table = table
        self.peer = peer
        self.phase = Phase.NEW
        self._timer: asyncio.TimerHandle | None = None
        self._reason: CloseReason | None = None
        self._started_at: float | None = None
        #: Shutting down: the response being prepared is the connection's last.
        self.closing = False
        self._arm(table.limits.header_timeout)

    def receiving(self) -> None:
        """Bytes arrived: after an idle spell they begin a request, whose headers are due."""
        if self.phase is Phase.IDLE:
            self.phase = Phase.HEADERS
            self._started_at = time.perf_counter()
            self._arm(self._table.limits.header_timeout)
        elif self.phase is Phase.NEW and self._started_at is None:
            self._started_at = time.perf_counter()

    def request_started(self) -> None:
        """A request's headers are complete and it is being handled."""
        if self.phase is Phase.CLOSED:
            return
        self.phase = Phase.BUSY
        self._disarm()
        self._table.moved(self)

    def request_done(self) -> None:
        """The response is sent: the connection idles until the next request."""
        if self.phase is Phase.CLOSED:
            return
        self.phase = Phase.IDLE
        self._started_at = None
        self._arm(self._table.limits.idle_timeout)
        self._table.moved(self)

    def request_seconds(self) -> float:
        """Seconds since the current request's first byte arrived."""
        if self._started_at is None:
            return 0.0
        return time.perf_counter() - self._started_at

    def close_after(self, reason: CloseReason) -> None:
        """The connection is closed after this response; count it as ``reason``."""
        self._reason = reason

    def close_for(self, reason: CloseReason | None) -> None:
        """Close the connection now; counted as ``reason`` unless that is None."""
        if self.phase is Phase.CLOSED:
            return
        self._reason = reason
        self._forget()
        self.peer.force_close()

    def lost(self) -> None:
        """The connection is closed, by either side; count it when the server closed it."""
        self._forget()
        if self._reason is not None:
            self._table.count_close(self._reason)
            self._reason = None

    def _expire(self) -> None:
        self._timer = None
        idle = self.phase is Phase.IDLE
        self.close_for(CloseReason.IDLE_TIMEOUT if idle else CloseReason.HEADER_TIMEOUT)

    def _forget(self) -> None:
        self._disarm()
        self.phase = Phase.CLOSED
        self._table.moved(self)

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._timer = self._table.loop.call_later(seconds, self._expire)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class ConnectionTable:
    """Every open connection of one listener, in the order in which they would be evicted."""

    def __init__(
        self,
        limits: ConnectionLimits,
        count_close: Callable[[CloseReason], None],
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.limits = limits
        self.count_close = count_close
        self.loop = loop or asyncio.get_running_loop()
        # Dicts keep insertion order: the first key of each is the next to go.
        self._waiting: dict[Connection, None] = {}
        self._busy: dict[Connection, None] = {}

    def __len__(self) -> int:
        return len(self._waiting) + len(self._busy)

    def open(self, peer: Peer) -> Connection:
        """Track a new connection, making room for it first when at the cap."""
        while len(self) >= self.limits.max_connections:
            victim = next(iter(self._waiting or self._busy))
            victim.close_for(CloseReason.EVICTED)
        connection = Connection(self, peer)
        self._waiting[connection] = None
        return connection

    def moved(self, connection: Connection) -> None:
        """Re-file ``connection`` after its phase changed.

        A connection that starts waiting goes to the back of the queue; trickling a request's
        headers does not move it, so the slowest sender is evicted first.
        """
        phase = connection.phase
        if phase is Phase.BUSY:
            self._waiting.pop(connection, None)
            self._busy[connection] = None
        elif phase is Phase.IDLE:
            self._busy.pop(connection, None)
            self._waiting.pop(connection, None)
            self._waiting[connection] = None
        elif phase is Phase.CLOSED:
            self._waiting.pop(connection, None)
            self._busy.pop(connection, None)

    def wind_down(self) -> None:
        """At shutdown: close idle connections now, and every other one after its answer.

        One that was accepted just before the listener closed gets its request answered
        rather than cut; the end of the drain closes whatever is left.
        """
        for connection in [*self._waiting, *self._busy]:
            connection.closing = True
            if connection.phase is Phase.IDLE:
                connection.close_for(None)


#: aiohttp's parser errors, most specific first: the outcome each is counted as and what the
#: answer says. aiohttp's own message often quotes the request, so it is never passed on.
_PARSE_ERRORS: Final[tuple[tuple[type[Exception], Outcome, str], ...]] = (
    (http_exceptions.LineTooLong, Outcome.TOO_LARGE, "the request line or a header is too long"),
    (http_exceptions.BadHttpMethod, Outcome.INVALID, "the request method is not valid"),
    (http_exceptions.BadStatusLine, Outcome.INVALID, "the request line is not valid HTTP/1.x"),
    (http_exceptions.InvalidURLError, Outcome.INVALID, "the request target is not valid"),
    (http_exceptions.InvalidHeader, Outcome.INVALID, "a header is not valid"),
    (http_exceptions.HttpProcessingError, Outcome.INVALID, "the request is not valid HTTP/1.x"),
)
#: aiohttp's messages that quote nothing of the request, with the outcome and answer of each.
_CONSTANT_MESSAGES: Final[dict[str, tuple[Outcome, str]]] = {
    "Too many headers received": (Outcome.TOO_LARGE, "the request has too many headers"),
    "Missing 'Host' header in request.": (Outcome.INVALID, "the request has no Host header"),
    "Received HTTPS traffic on an HTTP port": (Outcome.INVALID, "TLS sent to a plain HTTP port"),
}
#: llhttp's messages are its fixed reason, then this, then the offending bytes.
_LLHTTP_QUOTE: Final = ":\n\n"


def describe_parse_error(exc: http_exceptions.HttpProcessingError) -> tuple[Outcome, str]:
    """The outcome and the answer for a request aiohttp could not parse, quoting none of it."""
    if exc.message in _CONSTANT_MESSAGES:
        return _CONSTANT_MESSAGES[exc.message]
    outcome, error = next((o, e) for kind, o, e in _PARSE_ERRORS if isinstance(exc, kind))
    head, quote, _ = exc.message.partition(_LLHTTP_QUOTE)
    reason = head.rsplit("\n", 1)[-1].strip()
    if quote and reason and not isinstance(exc, http_exceptions.LineTooLong):
        # llhttp's reason ("Duplicate Content-Length", "Invalid HTTP version") is a constant
        # of the parser; only what follows it quotes the request.
        error = f"{error}: {reason}"
    return outcome, error


class ConnectionHandler(web.RequestHandler):
    """aiohttp's protocol for one client connection, reporting its phases to the table."""

    __slots__ = ("_connection", "_metrics")

    def __init__(
        self,
        manager: web.Server,
        *,
        table: ConnectionTable,
        metrics: Metrics,
        **kwargs: Any,  # noqa: ANN401 - RequestHandler's own keyword arguments
    ) -> None:
        super().__init__(manager, **kwargs)
        self._metrics = metrics
        # Tracked (and room made) when aiohttp creates the protocol, a turn of the event loop
        # before the connection is made: accepted sockets count against the cap at once.
        self._connection = table.open(self)
        make_request = self._request_factory
        assert make_request is not None

        def request_started(*args: Any) -> web.BaseRequest:  # noqa: ANN401 - passed through
            # aiohttp builds a request once its headers are parsed: the one hook at that point.
            self._connection.request_started()
            return make_request(*args)

        self._request_factory = request_started

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if self._connection.phase is Phase.CLOSED:
            # Evicted before its socket was handed over, when aiohttp had nothing to close.
            self.force_close()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._connection.lost()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._connection.receiving()
        super().data_received(data)

    async def finish_response(
        self, request: web.BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> tuple[web.StreamResponse, bool]:
        if self._connection.closing:
            # "Connection: close", so the client sends nothing more on it. (aiohttp's own
            # close() would also drop the rest of a body still arriving.)
            resp.force_close()
        # A body aiohttp could not read (a Content-Encoding that does not decompress):
        # reading its rest after the answer would only fail again, and be logged as an
        # unhandled error. The connection ends with the answer, which says so.
        unreadable = request.content.exception() is not None
        if unreadable:
            resp.force_close()
        try:
            return await super().finish_response(request, resp, start_time)
        finally:
            self._connection.request_done()
            if unreadable:
                self.force_close()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """What aiohttp's parser refused: a JSON answer with aiohttp's status, counted as a
        webhook request of kind ``unknown`` and logged without any of the request's bytes."""
        if not isinstance(exc, http_exceptions.HttpProcessingError):
            return super().handle_error(request, status, exc, message)
        outcome, error = describe_parse_error(exc)
        self._metrics.count_request(UNKNOWN_KIND, outcome, self._connection.request_seconds())
        log.warning(
            "webhook_rejected",
            status=status,
            outcome=outcome.value,
            error=error,
            remote=request.remote,
        )
        # aiohttp closes the connection after a parse error: the stream is out of step.
        self._connection.close_after(CloseReason.BAD_REQUEST)
        response = web.json_response({"error": error}, status=status)
        response.force_close()
        return response
