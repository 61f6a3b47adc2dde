"""The webhook request path, one named step after another.

    read body -> authenticate -> decode -> parse -> deduplicate -> diagnose -> record -> respond

Each step takes what the one before produced and nothing else: authentication sees the raw
bytes exactly as they arrived (signatures cover them), deduplication sees the parsed event,
and only the record step changes state. Any step may refuse with
:class:`~exporter.errors.Rejected`; the ``outcomes`` middleware answers, counts and logs it.

No step blocks the event loop for long on what a client sent: the body is bounded while it
arrives, and decoding and diagnosing a large one run in a small thread pool
(:data:`DECODE_OFFLOAD_BYTES`, :data:`DIAGNOSE_OFFLOAD_BYTES`).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import sys
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Final, Protocol, TypeVar

from aiohttp import hdrs, web
from multidict import CIMultiDictProxy

from exporter import payload
from exporter.diagnosis import Diagnosis, diagnose
from exporter.errors import Outcome, Rejected, invalid
from exporter.events import AbuseEvent, BounceEvent, Event, Kind
from exporter.logs import LogUnavailable, log
from exporter.payload import Fields
from exporter.recorder import Recorder
from exporter.settings import AuthMode
from exporter.webhook import parse_event, resolve_kind

#: The webhook kind a request turned out to be, for the request metrics.
REQUEST_KIND: Final = web.RequestKey("kind", str)
#: An outcome other than the response status implies (``duplicate`` is a 200 too).
REQUEST_OUTCOME: Final = web.RequestKey("outcome", Outcome)

_READ_CHUNK: Final = 64 * 1024
#: Status of a request whose client hung up (nginx's convention); nobody receives it, but
#: the access log and the request metrics see it.
CLIENT_CLOSED_STATUS: Final = 499

#: Bodies larger than this are decoded in a worker thread, and raw bounce or complaint
#: messages larger than the next one are read there. Chosen by measurement on a 2-core
#: machine like CI's (``tests/test_robustness.py`` re-measures them): the worst body shape
#: found (percent-encoded binary) decodes at ~0.04 ms per KiB, so 32 KiB costs ~1.3 ms;
#: the worst message shapes for the bounce reader (hundreds of recipient lines, 64 MIME
#: parts) cost ~0.2 ms per KiB, so 8 KiB costs ~1.5 ms. Below these a thread hop (~0.1 ms)
#: buys little; above them the loop would stall for several milliseconds a request. 8 KiB
#: keeps nine in ten real bounces inline (the shared corpus: median 2.6 KiB, p90 7.1 KiB).
DECODE_OFFLOAD_BYTES: Final = 32 * 1024
DIAGNOSE_OFFLOAD_BYTES: Final = 8 * 1024
#: The threads that take the large bodies. Two, like the cores CI has: work waits for a
#: free thread rather than adding to the competition for the GIL, which bounds memory too.
_OFFLOAD_POOL: Final = ThreadPoolExecutor(max_workers=2, thread_name_prefix="offload")
#: How soon a busy thread hands the GIL to the event loop when it asks. Python's default is
#: 5 ms, and the loop asks several times in one callback (every socket call gives the GIL
#: up and takes it back): while a 10 MiB form was decoded in a thread, a ticker on the loop
#: measured up to 30 ms late at 5 ms, and under 12 ms at 1 ms. Set the first time work
#: is offloaded; a process that never gets a large body keeps the default.
SWITCH_INTERVAL: Final = 0.001
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Arrival:
    """A webhook request as it arrived, before anything is decoded: what a signature covers."""

    method: str
    #: The path and query exactly as sent (``request.raw_path``).
    target: str
    headers: CIMultiDictProxy[str]
    body: bytes
    #: The secret path segment of ``/{token}/webhooks/...`` routes, when one was used.
    path_token: str | None
    received_at: float


class Authenticator(Protocol):
    """Decides whether an arrival comes from SMTPeter; refuses with a 401 (or 503) if not."""

    @property
    def mode(self) -> AuthMode: ...

    async def authenticate(self, arrival: Arrival) -> None: ...

    def forget(self, arrival: Arrival) -> None:
        """Undo what authenticating ``arrival`` remembered (its nonce): it was not recorded,
        and SMTPeter will send the very same request again."""
        ...


class Deduplicator(Protocol):
    """Remembers events so a retry of one is counted once."""

    async def claim(self, event: Event) -> bool:
        """``True`` when ``event`` is new (and is now remembered), ``False`` for a retry."""
        ...

    async def release(self, event: Event) -> None:
        """Forget ``event`` again: it was claimed but could not be recorded."""
        ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Limits:
    """The bounds the body step enforces."""

    max_bytes: int
    body_timeout: float


class Ingest:
    """The webhook handler: every step of the request path, in order."""

    __slots__ = ("_authenticator", "_deduplicator", "_limits", "_recorder")

    def __init__(
        self,
        limits: Limits,
        authenticator: Authenticator,
        deduplicator: Deduplicator,
        recorder: Recorder,
    ) -> None:
        self._limits = limits
        self._authenticator = authenticator
        self._deduplicator = deduplicator
        self._recorder = recorder

    async def handle(
        self, request: web.BaseRequest, kind: Kind | None, path_token: str | None = None
    ) -> web.Response:
        """Answer one webhook request; ``kind`` is its path's (None: the ``type`` field's),
        ``path_token`` the secret segment of a ``/{token}/webhooks/...`` path."""
        received_at = time.time()
        content_type = request.headers.get(hdrs.CONTENT_TYPE, "")
        # The media type is checked before the body is read: an upload we cannot decode
        # costs nothing.
        essence = payload.media_type(content_type)
        body = await read_body(request, self._limits)
        arrival = Arrival(
            method=request.method,
            target=request.raw_path,
            headers=request.headers,
            body=body,
            path_token=path_token,
            received_at=received_at,
        )
        await self._authenticator.authenticate(arrival)
        try:
            fields = await decode(body, content_type, essence)
            event = parse(kind, fields, request)
            if not await self._deduplicator.claim(event):
                request[REQUEST_OUTCOME] = Outcome.DUPLICATE
                log.debug("duplicate", kind=event.kind.value, id=event.message_id)
                return respond(event.kind, duplicate=True)
        except Rejected as rejected:
            if rejected.status >= 500:
                self._authenticator.forget(arrival)
            raise
        except BaseException:
            self._authenticator.forget(arrival)
            raise
        try:
            diagnosis = await diagnosis_of(event)
        except BaseException:
            await self._not_recorded(event, arrival)
            raise
        try:
            # Logs first, then counts: an event is either both or neither (see the recorder).
            written = self._recorder.record(event, diagnosis, received_at)
            if written is not None:
                await written
        except asyncio.CancelledError:
            # Cut while its line waited to be written (a shutdown): it is recorded all the
            # same, so SMTPeter's retry is a duplicate.
            raise
        except BaseException as exc:
            await self._not_recorded(event, arrival)
            if isinstance(exc, LogUnavailable):
                raise _log_unavailable() from None
            raise
        return respond(event.kind)

    async def _not_recorded(self, event: Event, arrival: Arrival) -> None:
        """SMTPeter's retry of these very bytes must be counted: forget what was claimed."""
        await self._deduplicator.release(event)
        self._authenticator.forget(arrival)


async def read_body(request: web.BaseRequest, limits: Limits) -> bytes:
    """The whole body, within the size limit and the body timeout.

    A client that hangs up before its body is in is ``client_closed``: nobody is left to
    answer, nothing was recorded, and it is not our error.
    """
    limit = limits.max_bytes
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit)
    content = request.content
    chunks: list[bytes] = []
    size = 0
    try:
        if content.is_eof():
            # The whole body is in already (a small post arrives with its headers): taken at
            # once, with no deadline to set and cancel.
            body = content.read_nowait()
            if len(body) > limit:
                raise _too_large(limit)
            return body
        async with asyncio.timeout(limits.body_timeout):
            while chunk := await content.read(_READ_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise _too_large(limit)
                chunks.append(chunk)
    except TimeoutError:
        raise Rejected(
            408, Outcome.TIMEOUT, f"the body did not arrive within {limits.body_timeout:g} s"
        ) from None
    except web.RequestPayloadError:
        # aiohttp decompresses a Content-Encoding (gzip, deflate) and unframes chunks as the
        # body is read; what it cannot is the client's error. (Its message quotes the body.)
        raise invalid(
            "the body cannot be read: its Content-Encoding or chunked framing is malformed"
        ) from None
    except ConnectionError:
        # aiohttp sets ConnectionResetError("Connection lost") on the body when the peer
        # goes away mid-body (EOF or RST alike).
        raise Rejected(
            CLIENT_CLOSED_STATUS,
            Outcome.CLIENT_CLOSED,
            f"the client closed the connection after {size} of the body's bytes",
        ) from None
    return b"".join(chunks)


def _too_large(limit: int) -> Rejected:
    return Rejected(413, Outcome.TOO_LARGE, f"body is larger than {limit} bytes")


async def decode(body: bytes, content_type: str, essence: str) -> Fields:
    """Body bytes to fields (form, JSON or multipart); large bodies in a worker thread."""
    if len(body) <= DECODE_OFFLOAD_BYTES:
        return payload.decode(body, content_type, essence)
    return await _offload(payload.decode, body, content_type, essence)


def parse(kind: Kind | None, fields: Fields, request: web.BaseRequest) -> Event:
    """Fields to the typed event of the path's kind (or the ``type`` field's, on /webhooks)."""
    event_kind = kind if kind is not None else resolve_kind(fields)
    request[REQUEST_KIND] = event_kind.value
    return parse_event(event_kind, fields)


async def diagnosis_of(event: Event) -> Diagnosis:
    """Why a failure failed, or what a raw bounce or complaint message says; a large raw
    message is read in a worker thread."""
    if isinstance(event, BounceEvent | AbuseEvent) and len(event.mime) > DIAGNOSE_OFFLOAD_BYTES:
        return await _offload(diagnose, event)
    return diagnose(event)


async def _offload(work: Callable[..., _T], *args: object) -> _T:
    """Run ``work`` in the offload pool, with the request's context (its log request id)."""
    if sys.getswitchinterval() > SWITCH_INTERVAL:
        sys.setswitchinterval(SWITCH_INTERVAL)
    context = contextvars.copy_context()
    return await asyncio.get_running_loop().run_in_executor(
        _OFFLOAD_POOL, functools.partial(context.run, work, *args)
    )


def _log_unavailable() -> Rejected:
    """The event log cannot take the event's line: not recorded, retry later (503)."""
    return Rejected(
        503,
        Outcome.LOG_UNAVAILABLE,
        "the event log cannot be written right now; the event was not recorded, retry later",
        headers={"Retry-After": "1"},
    )


def _answer(status: str, kind: Kind) -> bytes:
    return web.json_response({"status": status, "kind": kind.value}).body  # type: ignore[return-value]


#: The constant bodies of a 200, built once.
_ACCEPTED: Final[Mapping[Kind, bytes]] = {kind: _answer("accepted", kind) for kind in Kind}
_DUPLICATE: Final[Mapping[Kind, bytes]] = {kind: _answer("duplicate", kind) for kind in Kind}


def respond(kind: Kind, *, duplicate: bool = False) -> web.Response:
    body = (_DUPLICATE if duplicate else _ACCEPTED)[kind]
    return web.Response(body=body, content_type="application/json")


class Unauthenticated:
    """``--auth.mode=none``: every request is taken as SMTPeter's."""

    mode: Final = AuthMode.NONE

    def forget(self, arrival: Arrival) -> None:
        return None

    async def authenticate(self, arrival: Arrival) -> None:
        return None


class NoDeduplication:
    """Duplicate detection turned off (``--dedup.max-entries=0``): every event is new."""

    async def claim(self, event: Event) -> bool:
        return True

    async def release(self, event: Event) -> None:
        return None

    async def close(self) -> None:
        return None
