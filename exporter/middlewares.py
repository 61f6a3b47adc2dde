"""The middlewares around every request: its context for the logs, and its outcome.

``request_context`` binds a request id to every log line and keeps the request counted as
in flight until it is answered (the drain at shutdown waits for it). ``outcomes`` turns every
refusal into a JSON body, counts and times every webhook request, and logs refusals without
their body. Their work is in plain functions (:func:`bind_request_id`, :func:`answer`), which
the direct webhook routes of :mod:`exporter.app` call without aiohttp's middleware chain.
"""

from __future__ import annotations

import itertools
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Final, TypeVar

from aiohttp import hdrs, web

from exporter.appkeys import LIFECYCLE, METRICS
from exporter.errors import Outcome, Rejected
from exporter.events import Kind
from exporter.logs import REQUEST_ID, log, logged_path
from exporter.metrics import UNKNOWN_KIND, Metrics
from exporter.pipeline import REQUEST_KIND, REQUEST_OUTCOME

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_R = TypeVar("_R", bound=web.BaseRequest)

#: The one path that takes every kind, dispatching on the ``type`` field.
DISPATCH_PATH: Final = "/webhooks"
#: One path per kind, for SMTPeter accounts that configure a URL per webhook.
KIND_PATHS: Final[dict[str, Kind]] = {
    "/webhooks/failures": Kind.FAILURE,
    "/webhooks/deliveries": Kind.DELIVERY,
    "/webhooks/opens": Kind.OPEN,
    "/webhooks/clicks": Kind.CLICK,
    "/webhooks/bounces": Kind.BOUNCE,
    "/webhooks/abuses": Kind.ABUSE,
}

#: Statuses aiohttp's router raises, the outcome each is counted as and what to tell.
_ROUTER_ERRORS: Final[dict[int, tuple[Outcome, str]]] = {
    404: (Outcome.NOT_FOUND, "nothing is served at this path"),
    405: (Outcome.METHOD_NOT_ALLOWED, "this method is not allowed here"),
}
#: A webhook path, with or without the secret segment of token mode in front.
_WEBHOOK_PATH: Final = re.compile(r"(?:/[^/]+)?(/webhooks(?:/[^/]*)?)/?")
# A client's X-Request-Id is kept only when it is short and plain.
_REQUEST_ID: Final = re.compile(r"[A-Za-z0-9._:-]{1,128}")
#: Our request ids: 32 hex digits like a UUID's, a random half drawn once per process and a
#: count, so that making one needs no system call (uuid4 reads the kernel's random source).
_ID_PREFIX: Final = secrets.token_hex(8)
_ID_NUMBERS: Final = itertools.count(1)


def new_request_id() -> str:
    """A request id unique to this process, and almost surely to every other."""
    return f"{_ID_PREFIX}{next(_ID_NUMBERS):016x}"


def bind_request_id(request: web.BaseRequest) -> str:
    """The request's id (the client's X-Request-Id when plain, else a new one), bound to
    every log line the request produces."""
    given = request.headers.get("X-Request-Id")
    request_id = given if given and _REQUEST_ID.fullmatch(given) else new_request_id()
    REQUEST_ID.set(request_id)
    return request_id


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bind a request id to the logs and keep the request counted as in flight until it is
    answered."""
    request_id = bind_request_id(request)
    lifecycle = request.app[LIFECYCLE]
    lifecycle.enter()
    try:
        response = await handler(request)
    finally:
        lifecycle.leave()
    response.headers["X-Request-Id"] = request_id
    return response


@web.middleware
async def outcomes(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every refusal becomes a JSON body; every webhook request is counted and timed."""
    webhook = _WEBHOOK_PATH.fullmatch(request.path)
    path_kind = _path_kind(webhook[1]) if webhook is not None else None
    return await answer(request, handler, request.app[METRICS], path_kind)


async def answer(
    request: _R,
    handler: Callable[[_R], Awaitable[web.StreamResponse]],
    metrics: Metrics,
    path_kind: str | None,
) -> web.StreamResponse:
    """What ``outcomes`` does: ``handler``'s response, or a JSON refusal for what it raised;
    counted and timed when ``path_kind`` says the path is a webhook path (the kind its path
    names, or ``unknown``)."""
    started = time.perf_counter()
    try:
        response = await handler(request)
    except Rejected as rejected:
        response = _refuse(request, rejected)
        outcome = rejected.outcome
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        outcome, error = _ROUTER_ERRORS.get(exc.status, (Outcome.INVALID, exc.reason.lower()))
        headers = {}
        if hdrs.ALLOW in exc.headers:
            headers["Allow"] = exc.headers[hdrs.ALLOW]
            error = f"method {request.method} is not allowed here; use {headers['Allow']}"
        from_router = Rejected(exc.status, outcome, error, headers=headers)
        response = _refuse(request, from_router, log_it=path_kind is not None)
    except Exception:
        log.exception("internal_error", path=logged_path(request))
        response = web.json_response({"error": "internal error"}, status=500)
        outcome = Outcome.INTERNAL_ERROR
    else:
        outcome = request.get(REQUEST_OUTCOME) or (
            Outcome.ACCEPTED if response.status < 400 else Outcome.INVALID
        )
    if path_kind is not None:
        kind = request.get(REQUEST_KIND) or path_kind
        metrics.count_request(kind, outcome, time.perf_counter() - started)
    return response


def _path_kind(path: str) -> str:
    kind = KIND_PATHS.get(path)
    return kind.value if kind is not None else UNKNOWN_KIND


def _refuse(request: web.BaseRequest, rejected: Rejected, *, log_it: bool = True) -> web.Response:
    if log_it:
        log.warning(
            "webhook_rejected",
            path=logged_path(request),
            method=request.method,
            status=rejected.status,
            outcome=rejected.outcome.value,
            error=rejected.error,
            field=rejected.field,
            content_type=request.headers.get(hdrs.CONTENT_TYPE, ""),
            content_length=request.content_length,
            remote=request.remote,
        )
    headers: Mapping[str, str] = rejected.headers
    return web.json_response(rejected.body(), status=rejected.status, headers=headers)
