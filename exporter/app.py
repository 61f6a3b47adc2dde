"""The aiohttp application: routes, middlewares and the webhook handler.

A webhook request flows one way: read the body -> decode fields -> parse a typed event ->
diagnose it (a failure's reason, what a raw message says) -> record it (metrics + one log
line) -> 200. Any step may raise :class:`Rejected`; the ``outcomes`` middleware turns that
into a JSON 4xx, counts it and logs it. Authentication and deduplication belong in
middlewares between ``outcomes`` and the handler.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from html import escape
from typing import Final

import structlog
from aiohttp import hdrs, web
from prometheus_client import CollectorRegistry
from prometheus_client.aiohttp import make_aiohttp_handler

from exporter import payload
from exporter.diagnosis import diagnose
from exporter.errors import Outcome, Rejected
from exporter.events import Kind
from exporter.logs import log
from exporter.metrics import UNKNOWN_KIND, Metrics
from exporter.recorder import Recorder
from exporter.settings import Settings
from exporter.webhook import parse_event, resolve_kind

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

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

# A client's X-Request-Id is kept only when it is short and plain.
_REQUEST_ID: Final = re.compile(r"[A-Za-z0-9._:-]{1,128}")


@dataclass(slots=True)
class Lifecycle:
    """Readiness (``/readyz``) and the requests in flight, for draining at shutdown."""

    ready: bool = False
    started_at: float = field(default_factory=time.time)
    in_flight: int = 0
    _drained: asyncio.Event | None = None

    def enter(self) -> None:
        self.in_flight += 1

    def leave(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0 and self._drained is not None:
            self._drained.set()

    async def drain(self, within: float) -> int:
        """Wait until no request is in flight, or ``within`` seconds; return how many are left."""
        if self.in_flight:
            self._drained = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(within):
                    await self._drained.wait()
        return self.in_flight


SETTINGS: Final = web.AppKey("settings", Settings)
METRICS: Final = web.AppKey("metrics", Metrics)
RECORDER: Final = web.AppKey("recorder", Recorder)
LIFECYCLE: Final = web.AppKey("lifecycle", Lifecycle)
#: The webhook kind a request turned out to be, for the request metrics.
REQUEST_KIND: Final = web.RequestKey("kind", str)


def create_app(settings: Settings, registry: CollectorRegistry | None = None) -> web.Application:
    """Build the application; ``registry`` defaults to a fresh one (never the global)."""
    app = web.Application(client_max_size=settings.max_request_bytes)
    metrics = Metrics(registry or CollectorRegistry(), domain_limit=settings.domain_limit)
    app[SETTINGS] = settings
    app[METRICS] = metrics
    app[RECORDER] = Recorder(metrics, settings.log_recipient)
    app[LIFECYCLE] = Lifecycle()
    setup_middlewares(app)
    setup_routes(app)
    app.on_startup.append(_on_startup)
    app.on_shutdown.append(_on_shutdown)
    return app


def setup_middlewares(app: web.Application) -> None:
    """Outermost first: request context, then outcomes (errors, counting, timing).

    Authentication and deduplication go after ``outcomes``, so what they refuse is
    answered, counted and logged like any other rejection.
    """
    app.middlewares.extend([request_context, outcomes])


def setup_routes(app: web.Application) -> None:
    settings = app[SETTINGS]
    app.router.add_post(DISPATCH_PATH, webhook_handler(None))
    for path, kind in KIND_PATHS.items():
        app.router.add_post(path, webhook_handler(kind))
    app.router.add_get(settings.telemetry_path, make_aiohttp_handler(app[METRICS].registry))
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/", index)
    if settings.verification_file is not None:
        verification = settings.verification_file
        app.router.add_get(f"/{verification.name}", static_text(verification.read_bytes()))


def webhook_handler(kind: Kind | None) -> Handler:
    """The handler for one kind's path, or for the dispatching path when ``kind`` is None."""

    async def handle(request: web.Request) -> web.Response:
        received_at = time.time()
        content_type = request.headers.get(hdrs.CONTENT_TYPE, "")
        essence = payload.media_type(content_type)
        limit = request.app[SETTINGS].max_request_bytes
        if request.content_length is not None and request.content_length > limit:
            raise _too_large(limit)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise _too_large(limit) from None
        fields = payload.decode(body, content_type, essence)
        event_kind = kind if kind is not None else resolve_kind(fields)
        request[REQUEST_KIND] = event_kind.value
        event = parse_event(event_kind, fields)
        request.app[RECORDER].record(event, diagnose(event), received_at)
        return web.json_response({"status": "accepted", "kind": event_kind.value})

    return handle


def _too_large(limit: int) -> Rejected:
    return Rejected(413, Outcome.TOO_LARGE, f"body is larger than {limit} bytes")


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bind a request id to the logs (the client's X-Request-Id when plain, else a new one)
    and keep the request counted as in flight until it is answered."""
    given = request.headers.get("X-Request-Id", "")
    request_id = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id)
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
    started = time.perf_counter()
    is_webhook = request.path == DISPATCH_PATH or request.path.startswith(DISPATCH_PATH + "/")
    try:
        response = await handler(request)
    except Rejected as rejected:
        response = _refuse(request, rejected, {})
        outcome = rejected.outcome
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        outcome, error = _ROUTER_ERRORS.get(exc.status, (Outcome.INVALID, exc.reason.lower()))
        headers = {}
        if hdrs.ALLOW in exc.headers:
            headers["Allow"] = exc.headers[hdrs.ALLOW]
            error = f"method {request.method} is not allowed here; use {headers['Allow']}"
        from_router = Rejected(exc.status, outcome, error)
        response = _refuse(request, from_router, headers, log_it=is_webhook)
    except Exception:
        log.exception("internal_error", path=request.path)
        response = web.json_response({"error": "internal error"}, status=500)
        outcome = Outcome.INTERNAL_ERROR
    else:
        outcome = Outcome.ACCEPTED if response.status < 400 else Outcome.INVALID
    if is_webhook:
        kind = request.get(REQUEST_KIND) or _path_kind(request.path)
        request.app[METRICS].count_request(kind, outcome, time.perf_counter() - started)
    return response


def _path_kind(path: str) -> str:
    kind = KIND_PATHS.get(path.rstrip("/"))
    return kind.value if kind is not None else UNKNOWN_KIND


def _refuse(
    request: web.Request, rejected: Rejected, headers: Mapping[str, str], *, log_it: bool = True
) -> web.Response:
    if log_it:
        log.warning(
            "webhook_rejected",
            path=request.path,
            method=request.method,
            status=rejected.status,
            outcome=rejected.outcome.value,
            error=rejected.error,
            field=rejected.field,
            content_type=request.headers.get(hdrs.CONTENT_TYPE, ""),
            content_length=request.content_length,
            remote=request.remote,
        )
    return web.json_response(rejected.body(), status=rejected.status, headers=headers)


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process answers."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Readiness: started, and not shutting down."""
    if request.app[LIFECYCLE].ready:
        return web.json_response({"status": "ready"})
    return web.json_response({"status": "not ready"}, status=503)


async def index(request: web.Request) -> web.Response:
    """A landing page pointing at the endpoints, as Prometheus exporters have."""
    metrics_path = escape(request.app[SETTINGS].telemetry_path)
    links = "".join(
        f'<li><a href="{path}">{path}</a></li>' for path in (metrics_path, "/healthz", "/readyz")
    )
    body = (
        "<!doctype html><title>smtpeter-exporter</title><h1>smtpeter-exporter</h1>"
        f"<p>POST SMTPeter webhooks to {DISPATCH_PATH} or {DISPATCH_PATH}/&lt;kind&gt;.</p>"
        f"<ul>{links}</ul>"
    )
    return web.Response(text=body, content_type="text/html")


def static_text(content: bytes) -> Handler:
    """A handler answering with ``content`` as plain text (the verification file)."""

    async def handle(request: web.Request) -> web.Response:
        return web.Response(body=content, content_type="text/plain")

    return handle


async def _on_startup(app: web.Application) -> None:
    app[LIFECYCLE].ready = True


async def _on_shutdown(app: web.Application) -> None:
    app[LIFECYCLE].ready = False
    log.info("shutting_down", uptime_seconds=round(time.time() - app[LIFECYCLE].started_at, 3))
