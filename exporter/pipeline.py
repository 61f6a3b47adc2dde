"""The webhook request path, one named step after another.

    read body -> authenticate -> decode -> parse -> deduplicate -> diagnose -> record -> respond

Each step takes what the one before produced and nothing else: authentication sees the raw
bytes exactly as they arrived (signatures cover them), deduplication sees the parsed event,
and only the record step changes state. Any step may refuse with
:class:`~exporter.errors.Rejected`; the ``outcomes`` middleware answers, counts and logs it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Protocol

from aiohttp import hdrs, web
from multidict import CIMultiDictProxy

from exporter import payload
from exporter.diagnosis import Diagnosis, diagnose
from exporter.errors import Outcome, Rejected
from exporter.events import Event, Kind
from exporter.logs import log
from exporter.payload import Fields
from exporter.recorder import Recorder
from exporter.settings import AuthMode
from exporter.webhook import parse_event, resolve_kind

#: The webhook kind a request turned out to be, for the request metrics.
REQUEST_KIND: Final = web.RequestKey("kind", str)
#: An outcome other than the response status implies (``duplicate`` is a 200 too).
REQUEST_OUTCOME: Final = web.RequestKey("outcome", Outcome)

_READ_CHUNK: Final = 64 * 1024


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

    async def handle(self, request: web.Request, kind: Kind | None) -> web.Response:
        received_at = time.time()
        content_type = request.headers.get(hdrs.CONTENT_TYPE, "")
        # The media type is checked before the body is read: an upload we cannot decode
        # costs nothing.
        essence = payload.media_type(content_type)
        body = await read_body(request, self._limits)
        await self._authenticator.authenticate(
            Arrival(
                method=request.method,
                target=request.raw_path,
                headers=request.headers,
                body=body,
                path_token=request.match_info.get("token"),
                received_at=received_at,
            )
        )
        fields = await decode(body, content_type, essence)
        event = parse(kind, fields, request)
        if not await self._deduplicator.claim(event):
            request[REQUEST_OUTCOME] = Outcome.DUPLICATE
            log.debug("duplicate", kind=event.kind.value, id=event.message_id)
            return respond(event.kind, duplicate=True)
        diagnosis = await diagnosis_of(event)
        try:
            self._recorder.record(event, diagnosis, received_at)
        except BaseException:
            await self._deduplicator.release(event)
            raise
        return respond(event.kind)


async def read_body(request: web.Request, limits: Limits) -> bytes:
    """The whole body, within the size limit and the body timeout."""
    limit = limits.max_bytes
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(limits.body_timeout):
            while chunk := await request.content.read(_READ_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise _too_large(limit)
                chunks.append(chunk)
    except TimeoutError:
        raise Rejected(
            408, Outcome.TIMEOUT, f"the body did not arrive within {limits.body_timeout:g} s"
        ) from None
    return b"".join(chunks)


def _too_large(limit: int) -> Rejected:
    return Rejected(413, Outcome.TOO_LARGE, f"body is larger than {limit} bytes")


async def decode(body: bytes, content_type: str, essence: str) -> Fields:
    """Body bytes to fields (form, JSON or multipart)."""
    return payload.decode(body, content_type, essence)


def parse(kind: Kind | None, fields: Fields, request: web.Request) -> Event:
    """Fields to the typed event of the path's kind (or the ``type`` field's, on /webhooks)."""
    event_kind = kind if kind is not None else resolve_kind(fields)
    request[REQUEST_KIND] = event_kind.value
    return parse_event(event_kind, fields)


async def diagnosis_of(event: Event) -> Diagnosis:
    """Why a failure failed, or what a raw bounce or complaint message says."""
    return diagnose(event)


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
