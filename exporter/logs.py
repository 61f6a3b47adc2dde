"""Structured logging: configured once, one JSON line per event, readable on a terminal.

structlog renders everything, including what aiohttp and asyncio log through the standard
library, so a log shipper sees one JSON object per line with the same keys whatever wrote it.

Every line goes through one :class:`LogSink`. An event's line (logger :data:`EVENT_LOGGER`)
must get into it, or the event is refused (:class:`LogUnavailable`: the recorder answers
503 and counts nothing); any other line is dropped when it cannot. With
``--log.buffer-lines`` the sink is a bounded queue written by a thread, so a slow reader of
stdout never stalls the event loop.

What a line may show is bounded too: tracebacks carry file, line and function but no local
variables and no exception message (either may hold what a client sent), and with
``--log.recipient`` other than ``full`` every address anywhere in a line is masked.
"""

from __future__ import annotations

import asyncio
import atexit
import builtins
import contextvars
import hashlib
import json
import logging
import queue
import re
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final, TextIO, assert_never

import structlog
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse
from structlog.typing import EventDict, ExcInfo, WrappedLogger

from exporter.diagnosis import Diagnosis
from exporter.domains import InvalidDomainError, domain_of, normalize_domain
from exporter.events import (
    AbuseEvent,
    BounceEvent,
    ClickEvent,
    DeliveryEvent,
    Event,
    FailureEvent,
    OpenEvent,
    RecipientEvent,
)


class LogFormat(StrEnum):
    AUTO = "auto"
    JSON = "json"
    CONSOLE = "console"


class RecipientMode(StrEnum):
    """How much of a recipient address a log line shows."""

    FULL = "full"
    HASH = "hash"
    DOMAIN = "domain"


LEVELS: Final = ("debug", "info", "warning", "error")

#: The logger whose lines must be written: one per accepted event (see the recorder).
EVENT_LOGGER: Final = "exporter.events"

log = structlog.get_logger("exporter")

#: The id of the request being handled, on every line logged while handling it. One context
#: variable set per request: structlog's bound context variables are copied per line.
REQUEST_ID: Final = contextvars.ContextVar[str | None]("request_id", default=None)


def _add_request_id(logger: WrappedLogger, name: str, event_dict: EventDict) -> EventDict:
    request_id = REQUEST_ID.get()
    if request_id is not None:
        event_dict.setdefault("request_id", request_id)
    return event_dict


# --- Where lines go ---------------------------------------------------------------------------


class LogUnavailable(Exception):  # noqa: N818 - a state of the log, like Rejected's outcomes
    """The log cannot take a line now: its reader is gone, or the buffer is full."""


class LogSink:
    """Where rendered lines go. :meth:`write` for lines that must get in, :meth:`offer` for
    the rest; both return at once or raise, except a direct write to a slow reader."""

    def __init__(self) -> None:
        #: Lines :meth:`offer` could not place (rejections, access log, ... while stuck).
        self.dropped = 0
        #: Lines accepted into a buffer that never reached the stream (it broke).
        self.lost = 0

    #: Whether event lines are best gathered for one write per turn of the event loop
    #: (a direct write costs a system call each; a buffer takes them as they come).
    gathers = False

    def write(self, line: str) -> None:
        """Hand ``line`` over, or raise :class:`LogUnavailable`."""
        raise NotImplementedError

    def write_all(self, lines: list[str]) -> None:
        """Hand ``lines`` over in one go, or raise :class:`LogUnavailable` (none written)."""
        for line in lines:
            self.write(line)

    def offer(self, line: str) -> None:
        """Hand ``line`` over if it can be; otherwise count it as dropped."""
        try:
            self.write(line)
        except LogUnavailable:
            self.dropped += 1

    def close(self, timeout: float = 5.0) -> None:
        """Write out what is waiting (for up to ``timeout`` seconds)."""


class DirectSink(LogSink):
    """Each line written and flushed at once (``--log.buffer-lines=0``).

    A reader that stops reading blocks the write, and so the event loop, until it reads
    again; a reader that is gone makes the write fail, which refuses the event.
    """

    gathers = True

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self._stream = stream
        self._lock = threading.Lock()

    def write(self, line: str) -> None:
        self._put(line + "\n")

    def write_all(self, lines: list[str]) -> None:
        self._put("\n".join(lines) + "\n")

    def _put(self, text: str) -> None:
        with self._lock:
            try:
                self._stream.write(text)
                self._stream.flush()
            except (OSError, ValueError) as exc:  # ValueError: the stream is closed
                raise LogUnavailable(f"writing the log failed: {type(exc).__name__}") from None


class BufferedSink(LogSink):
    """Lines queue in memory (at most ``capacity``) and a thread writes them out.

    A full queue refuses the line at once instead of waiting for the reader. A line is
    accepted when it is queued: a crash (or a reader that goes away) loses what is queued.
    """

    def __init__(self, stream: TextIO, capacity: int) -> None:
        super().__init__()
        self._stream = stream
        self._capacity = capacity
        self._queue: queue.Queue[str | None] = queue.Queue(maxsize=capacity)
        self._failed: str | None = None
        self._closed = False
        self._after_close = DirectSink(stream)
        self._writer = threading.Thread(target=self._run, name="log-writer", daemon=True)
        self._writer.start()

    def write(self, line: str) -> None:
        if self._failed is not None:
            raise LogUnavailable(self._failed)
        if self._closed:
            self._after_close.write(line)
            return
        try:
            self._queue.put_nowait(line)
        except queue.Full:
            raise LogUnavailable("the log buffer is full") from None

    def offer(self, line: str) -> None:
        """Other lines take at most half the buffer: a flood of refusals (or the access log)
        cannot crowd out the events it is there for."""
        if self._queue.qsize() * 2 >= self._capacity and not self._closed:
            self.dropped += 1
            return
        super().offer(line)

    def _run(self) -> None:
        while (line := self._queue.get()) is not None:
            self._put(line)
        while not self._queue.empty():  # what was queued while closing
            if (line := self._queue.get_nowait()) is not None:
                self._put(line)

    def _put(self, line: str) -> None:
        if self._failed is not None:
            self.lost += 1
            return
        try:
            self._stream.write(line + "\n")
            if self._queue.empty():
                self._stream.flush()
        except UnicodeError:  # this line cannot be written (a console line with a surrogate)
            self.lost += 1
        except (OSError, ValueError) as exc:  # the stream can take no more lines
            self._failed = f"writing the log failed: {type(exc).__name__}"
            self.lost += 1

    def close(self, timeout: float = 5.0) -> None:
        """Write out the queue; a reader that does not take it within ``timeout`` seconds
        loses it, and later lines are dropped rather than block the exit."""
        if self._closed:
            return
        try:
            self._queue.put(None, timeout=timeout)
            self._writer.join(timeout)
        except queue.Full:
            pass
        if self._writer.is_alive():
            self._failed = "the log reader did not take the buffer at shutdown"
            self.lost += self._queue.qsize()
        elif self._failed is None:
            try:
                self._stream.flush()
            except (OSError, ValueError):
                self._failed = "flushing the log failed"
        self._closed = True

    @property
    def waiting(self) -> int:
        """Lines queued and not yet written."""
        return self._queue.qsize()


class _SinkLogger:
    """structlog's final logger: hands the rendered line to the sink, strictly or not."""

    __slots__ = ("_sink", "_strict")

    def __init__(self, sink: LogSink, *, strict: bool) -> None:
        self._sink = sink
        self._strict = strict

    def msg(self, message: str) -> None:
        if self._strict:
            self._sink.write(message)
        else:
            self._sink.offer(message)

    log = debug = info = warn = warning = msg
    fatal = failure = err = error = critical = exception = msg


class _SinkLoggerFactory:
    """Loggers named :data:`EVENT_LOGGER` write strictly; every other one offers."""

    def __init__(self, sink: LogSink) -> None:
        self._sink = sink

    def __call__(self, *args: Any) -> _SinkLogger:  # noqa: ANN401 - structlog's signature
        return _SinkLogger(self._sink, strict=bool(args) and args[0] == EVENT_LOGGER)


class _SinkHandler(logging.Handler):
    """The standard library's records (aiohttp, asyncio), rendered and offered to the sink."""

    def __init__(self, sink: LogSink) -> None:
        super().__init__()
        self._sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._sink.offer(self.format(record))
        except Exception:
            # Not handleError: it would print the record's arguments (request content,
            # maybe) to stderr. A lost line is better.
            self._sink.dropped += 1


class _Clock:
    """The time as structlog's ``TimeStamper(fmt="iso", utc=True)`` writes it
    (``2026-11-26T17:25:47.967751Z``), its date and time of day made once a second."""

    __slots__ = ("_second", "_text")

    def __init__(self) -> None:
        self._second = -1
        self._text = ""

    def now(self) -> str:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._text = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        micro = int((now - second) * 1_000_000)
        # isoformat() leaves out a zero fraction.
        return f"{self._text}.{micro:06d}Z" if micro else f"{self._text}Z"


class _Turn:
    """The event lines made during one turn of the event loop, written together after it."""

    __slots__ = ("lines", "then", "waiters")

    def __init__(self) -> None:
        self.lines: list[str] = []
        #: What to do once each line is written (count its event), and who waits for it.
        self.then: list[Callable[[], None]] = []
        self.waiters: list[asyncio.Future[None]] = []


class _EventLines:
    """Event lines (one per accepted event) rendered straight to JSON, gathered per turn of
    the event loop and written with one system call.

    They hold only JSON values and never an exception, so the processor chain would add
    nothing but its cost: the line is what the chain renders (the same keys in the same
    order: the event's fields, ``event``, ``request_id``, ``level``, ``timestamp``). Used
    only while the JSON configuration that made it is structlog's (tests capturing logs, or
    a new configuration, take the chain again).

    A line is written (and flushed) before its event is counted and before its request is
    answered: each request waits for the end of the turn in which its line was made, when
    the turn's lines are written; then each event is counted, and each request goes on. If
    the write fails, no event of the turn is counted and each request is refused.
    """

    __slots__ = ("_clock", "_processors", "_renderer", "_sink", "_turn", "enabled")

    def __init__(
        self,
        sink: LogSink,
        processors: list[structlog.typing.Processor],
        renderer: structlog.typing.Processor,
        *,
        enabled: bool,
    ) -> None:
        self._sink = sink
        self._processors = processors
        self._renderer = renderer
        self._turn: _Turn | None = None
        self._clock = _Clock()
        #: Whether the level lets info lines through.
        self.enabled = enabled

    def in_force(self) -> bool:
        processors = self._processors
        return structlog.get_config()["processors"] is processors and (
            processors[-1] is self._renderer
        )

    def render(self, event: str, fields: dict[str, Any]) -> str:
        fields["event"] = event
        request_id = REQUEST_ID.get()
        if request_id is not None:
            fields["request_id"] = request_id
        fields["level"] = "info"
        fields["timestamp"] = self._clock.now()
        return json.dumps(fields)

    def write(self, line: str, then: Callable[[], None]) -> asyncio.Future[None] | None:
        if not self._sink.gathers:
            self._sink.write(line)
            then()
            return None
        turn = self._turn
        loop = asyncio.get_running_loop()
        if turn is None:
            turn = self._turn = _Turn()
            loop.call_soon(self.flush)
        waiter = loop.create_future()
        turn.lines.append(line)
        turn.then.append(then)
        turn.waiters.append(waiter)
        return waiter

    def flush(self) -> None:
        """Write the lines of the turn, then count their events and let their requests go."""
        turn, self._turn = self._turn, None
        if turn is None:
            return
        try:
            self._sink.write_all(turn.lines)
        except LogUnavailable as exc:
            for waiter in turn.waiters:
                _settle(waiter, LogUnavailable(*exc.args))
            return
        for then, waiter in zip(turn.then, turn.waiters, strict=True):
            # Counted even when its request was cancelled meanwhile (a shutdown cutting it):
            # the line is written, and an event is both logged and counted or neither.
            try:
                then()
            except Exception as exc:  # a bug in counting: that request answers 500
                _settle(waiter, exc)
            else:
                _settle(waiter, None)


def _settle(waiter: asyncio.Future[None], error: Exception | None) -> None:
    """Let a request waiting for its line go on, unless it is gone (cancelled, or its loop
    closed: the last turn is written at exit)."""
    if waiter.done() or waiter.get_loop().is_closed():
        return
    if error is None:
        waiter.set_result(None)
    else:
        waiter.set_exception(error)


#: The direct writer of event lines, while a JSON configuration is in force.
_EVENT_LINES: list[_EventLines] = []


def log_event(
    event: str, fields: dict[str, Any], then: Callable[[], None]
) -> asyncio.Future[None] | None:
    """Log one accepted event's line, then call ``then`` (which counts the event); or raise
    :class:`LogUnavailable` having done neither. ``fields`` is the line's content
    (:func:`event_fields`); it is consumed.

    With a direct sink the lines of one turn of the event loop are written together after
    it: the future returned resolves once this one is written and ``then`` called (or
    raises :class:`LogUnavailable`); await it before answering. ``None`` when that is
    already done. The line is written and ``then`` called even if nobody awaits.
    """
    if _EVENT_LINES and (direct := _EVENT_LINES[0]).in_force():
        if direct.enabled:
            return direct.write(direct.render(event, fields), then)
        then()
        return None
    structlog.get_logger(EVENT_LOGGER).info(event, **fields)
    then()
    return None


def flush_event_lines() -> None:
    """Write the event lines of the current turn now (at shutdown)."""
    for direct in _EVENT_LINES:
        direct.flush()


#: The sinks configure_logging made, so a new configuration closes the one before.
_SINKS: list[LogSink] = []


def _close_sinks() -> None:
    flush_event_lines()
    for sink in _SINKS:
        sink.close()


atexit.register(_close_sinks)


# --- What a line may show ---------------------------------------------------------------------

#: What replaces an exception's message in a log line.
WITHHELD: Final = "<withheld>"
#: Exceptions whose message Python itself writes from no request data (errno texts, limits):
#: their message is kept.
_PLAIN_MESSAGES: Final = frozenset(
    {
        *(
            name
            for name, value in vars(builtins).items()
            if isinstance(value, type) and issubclass(value, OSError)
        ),
        "RecursionError",
        "MemoryError",
    }
)
_TRACEBACK: Final = structlog.tracebacks.ExceptionDictTransformer(show_locals=False, use_rich=False)


def _redact(stack: dict[str, Any]) -> dict[str, Any]:
    """One exception of a traceback without what could quote a request."""
    if stack.get("exc_type") not in _PLAIN_MESSAGES:
        stack["exc_value"] = WITHHELD
    stack.pop("exc_notes", None)
    stack.pop("syntax_error", None)
    for frame in stack.get("frames", ()):
        frame.pop("locals", None)
    for member in stack.get("exceptions", ()):  # an exception group's, each a traceback
        for inner in member:
            _redact(inner)
    return stack


def safe_traceback(exc_info: ExcInfo) -> list[dict[str, Any]]:
    """A traceback as structlog's dicts, without locals and without exception messages."""
    return [_redact(stack) for stack in _TRACEBACK(exc_info)]


def _traceback_text(exc_info: ExcInfo) -> str:
    """:func:`safe_traceback` as text, for the console."""
    lines: list[str] = []
    for stack in reversed(safe_traceback(exc_info)):
        lines.append("Traceback (most recent call last):")
        lines.extend(
            f'  File "{frame["filename"]}", line {frame["lineno"]}, in {frame["name"]}'
            for frame in stack.get("frames", ())
        )
        lines.append(f"{stack['exc_type']}: {stack['exc_value']}")
    return "\n".join(lines)


# An address as it appears in free text: a local part (quoted, or up to 256 characters that
# are not delimiters), then @ (or %40, URL-encoded), then a domain or address literal. The
# lookbehind makes a match start only after a delimiter, so scanning stays linear.
_LOCAL_CHARS: Final = r"""[^\s<>()\[\]\\,;:"@/=?&]"""
_ADDRESS: Final = re.compile(
    rf"""(?<!{_LOCAL_CHARS})(?P<local>"[^"\r\n]{{0,254}}"|{_LOCAL_CHARS}{{1,256}})"""
    r"(?:@|%40)"
    r"(?P<domain>\[[^\]\s]{1,64}\]|[\w-]{1,63}(?:\.[\w-]{1,63}){0,16})",
    re.IGNORECASE,
)


def mask_addresses(text: str, mode: RecipientMode) -> str:
    """Every address in ``text`` as ``mode`` shows recipients (``full`` leaves it alone)."""
    if mode is RecipientMode.FULL or ("@" not in text and "%40" not in text):
        return text

    def masked(match: re.Match[str]) -> str:
        local, raw_domain = match.group("local"), match.group("domain")
        try:
            domain = normalize_domain(raw_domain)
        except InvalidDomainError:
            domain = raw_domain.lower()
        if local == "*" and mode is RecipientMode.DOMAIN:
            return match.group(0)
        # A quote before the address ('john@example.com') is punctuation, not its start.
        opening = local[: len(local) - len(local.lstrip("'`"))]
        local = local[len(opening) :]
        return opening + render_recipient(f"{local}@{domain}", domain, mode)

    return _ADDRESS.sub(masked, text)


def _masked(value: object, mode: RecipientMode) -> Any:  # noqa: ANN401 - any JSON value
    if isinstance(value, str):
        return mask_addresses(value, mode)
    if isinstance(value, dict):
        return {mask_addresses(str(k), mode): _masked(v, mode) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_masked(item, mode) for item in value]
    return value


def _address_masker(mode: RecipientMode) -> structlog.typing.Processor:
    """A processor masking every address in every value of a line."""

    def mask(logger: WrappedLogger, name: str, event_dict: EventDict) -> EventDict:
        return {key: _masked(value, mode) for key, value in event_dict.items()}

    return mask


# --- Configuration ----------------------------------------------------------------------------


def configure_logging(
    level: str = "info",
    log_format: LogFormat = LogFormat.AUTO,
    stream: TextIO | None = None,
    *,
    recipient_mode: RecipientMode = RecipientMode.FULL,
    buffer_lines: int = 0,
) -> LogSink:
    """Set up structlog and route the standard library's ``logging`` through it.

    Returns the sink every line goes to; :meth:`LogSink.close` it at shutdown to write out
    a buffer (it is closed at exit too, and when logging is configured again).
    """
    out = stream if stream is not None else sys.stdout
    console = log_format is LogFormat.CONSOLE or (log_format is LogFormat.AUTO and out.isatty())
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer(colors=out.isatty())
        if console
        else structlog.processors.JSONRenderer()
    )
    exceptions = structlog.processors.ExceptionRenderer(
        _traceback_text if console else safe_traceback
    )
    redaction: list[structlog.typing.Processor] = [exceptions]
    if recipient_mode is not RecipientMode.FULL:
        redaction.append(_address_masker(recipient_mode))
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        _add_request_id,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    _close_sinks()
    _SINKS[:] = [BufferedSink(out, buffer_lines) if buffer_lines else DirectSink(out)]
    sink = _SINKS[0]
    numeric_level = logging.getLevelNamesMapping()[level.upper()]
    processors: list[structlog.typing.Processor] = [
        *shared,
        structlog.processors.StackInfoRenderer(),
        *redaction,
        renderer,
    ]
    _EVENT_LINES[:] = (
        []
        if console
        else [_EventLines(sink, processors, renderer, enabled=numeric_level <= logging.INFO)]
    )
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=_SinkLoggerFactory(sink),
        # Not cached: a logger already used keeps working when logging is configured again
        # (tests do); finding the logger anew costs about a microsecond a line.
        cache_logger_on_first_use=False,
    )
    handler = _SinkHandler(sink)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                *redaction,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric_level)
    return sink


def render_recipient(recipient: str, domain: str, mode: RecipientMode) -> str:
    """The recipient as the log shows it: in full, as a stable hash, or as its domain only.

    The hash is SHA-256 of the address with its domain normalized: it lets two lines about
    one address be matched without showing it, but it is a pseudonym, not anonymity.
    """
    if mode is RecipientMode.FULL:
        return recipient
    if mode is RecipientMode.HASH:
        return "sha256:" + hashlib.sha256(recipient.encode()).hexdigest()
    return f"*@{domain}"


def event_fields(event: Event, diagnosis: Diagnosis, mode: RecipientMode) -> dict[str, Any]:
    """The keys of an event's log line (the README's log schema), in a stable order."""
    fields: dict[str, Any] = {"kind": event.kind.value, "id": event.message_id}
    if isinstance(event, RecipientEvent):
        fields["recipient"] = render_recipient(event.recipient, event.domain, mode)
        fields["domain"] = event.domain
        fields["provider"] = event.provider.value
    fields["occurred_at"] = event.occurred_at.isoformat() if event.occurred_at else None
    fields["tags"] = list(event.tags)
    match event:
        case FailureEvent():
            fields.update(
                action=event.action,
                state=event.state,
                state_raw=event.state_raw,
                code=event.code,
                code_class=event.code_class,
                extended=event.extended,
                description=event.description,
            )
            if diagnosis.verdict is not None:
                fields.update(
                    reason=diagnosis.verdict.reason.value,
                    bounce_type=diagnosis.verdict.bounce_type.value,
                )
        case DeliveryEvent():
            fields.update(
                code=event.code,
                code_class=event.code_class,
                extended=event.extended,
                description=event.description,
            )
        case ClickEvent():
            fields.update(
                ip=event.ip,
                useragent=event.useragent,
                referer=event.referer,
                original=event.original,
            )
        case OpenEvent():
            fields.update(ip=event.ip, useragent=event.useragent, referer=event.referer)
        case BounceEvent():
            fields.update(envelope=event.envelope, mailfrom=event.mailfrom, rcptto=event.rcptto)
            fields.update(_report_fields(diagnosis, mode))
        case AbuseEvent():
            fields.update(emailfrom=event.emailfrom, feedback_type=diagnosis.feedback_type)
            fields.update(_report_fields(diagnosis, mode))
        case _:
            assert_never(event)
    if event.extra:
        fields["extra"] = dict(event.extra)
    if event.truncated:
        fields["truncated"] = list(event.truncated)
    # Descriptions, excerpts, extra fields, ... quote addresses too ("<john@example.com>:
    # user unknown"): a mode that hides the recipient hides them all.
    return fields if mode is RecipientMode.FULL else _masked(fields, mode)


def _report_fields(diagnosis: Diagnosis, mode: RecipientMode) -> dict[str, Any]:
    """What a raw bounce or ARF message said: its kind, a fact per recipient, or an excerpt."""
    report = diagnosis.report
    if report is None:
        return {}
    facts = []
    for fact in report.facts:
        domain = domain_of(fact.recipient) or ""
        facts.append(
            {
                "recipient": render_recipient(fact.recipient, domain, mode),
                "status": fact.status,
                "code": fact.code,
                "state": fact.state,
                "description": fact.description,
                "reason": fact.reason.value,
                "bounce_type": fact.bounce_type.value,
            }
        )
    fields: dict[str, Any] = {"message_kind": report.kind, "facts": facts}
    if not facts:
        fields["excerpt"] = report.excerpt
    return fields


# The first segment of /{segment}/webhooks/...: token mode's secret, whether or not the
# rest of the path matched a route (a mistyped kind is a 404 that must not log it either).
_SECRET_SEGMENT: Final = re.compile(r"/[^/]+(?=/webhooks(?:/|$))")


def logged_path(request: BaseRequest) -> str:
    """The request's path for a log line: token mode's secret path segment is masked."""
    try:
        token = request.match_info.get("token")  # type: ignore[attr-defined]
    except (AttributeError, AssertionError):
        # A BaseRequest, or a request aiohttp's parser refused: it has no route (aiohttp
        # asserts rather than raising AttributeError then).
        token = None
    if token:
        return request.path.replace(token, "<token>", 1)
    secret = _SECRET_SEGMENT.match(request.path)
    return "/<token>" + request.path[secret.end() :] if secret else request.path


class AccessLogger(AbstractAccessLogger):
    """aiohttp's access log as structlog lines (``event="http_request"``)."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        log.info(
            "http_request",
            method=request.method,
            path=logged_path(request),
            status=response.status,
            bytes=response.body_length,
            duration_seconds=round(time, 6),
            remote=request.remote,
            user_agent=request.headers.get("User-Agent", ""),
        )
