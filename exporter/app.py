"""The aiohttp application: its parts, its routes and its middlewares.

A webhook request goes through the steps of :mod:`exporter.pipeline`; the middlewares of
:mod:`exporter.middlewares` answer, count and log whatever becomes of it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from html import escape

from aiohttp import hdrs, web
from prometheus_client import CollectorRegistry

from exporter.appkeys import DEDUPLICATOR, INGEST, LIFECYCLE, METRICS, SETTINGS
from exporter.auth import build_authenticator
from exporter.dedup import build_deduplicator
from exporter.events import Kind
from exporter.exposition import metrics_handler
from exporter.lifecycle import Lifecycle
from exporter.logs import log
from exporter.metrics import UNKNOWN_KIND, Metrics
from exporter.middlewares import (
    DISPATCH_PATH,
    KIND_PATHS,
    Handler,
    answer,
    bind_request_id,
    outcomes,
    request_context,
)
from exporter.pipeline import Ingest, Limits
from exporter.recorder import Recorder
from exporter.settings import AuthMode, Settings

#: What an aiohttp server calls per request (``web.Server``'s ``request_handler``).
RequestHandler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


def create_app(settings: Settings, registry: CollectorRegistry | None = None) -> web.Application:
    """Build the application; ``registry`` defaults to a fresh one (never the global)."""
    app = web.Application(client_max_size=settings.max_request_bytes)
    metrics = Metrics(
        registry or CollectorRegistry(),
        domain_limit=settings.domain_limit,
        auth_mode=settings.effective_auth_mode,
        listed_domains=settings.listed_domains,
    )
    deduplicator = build_deduplicator(settings, metrics)
    app[SETTINGS] = settings
    app[METRICS] = metrics
    app[LIFECYCLE] = Lifecycle()
    app[DEDUPLICATOR] = deduplicator
    app[INGEST] = Ingest(
        Limits(max_bytes=settings.max_request_bytes, body_timeout=settings.body_timeout),
        build_authenticator(settings, metrics),
        deduplicator,
        Recorder(metrics, settings.log_recipient),
    )
    setup_middlewares(app)
    setup_routes(app)
    app.on_startup.append(_on_startup)
    app.on_shutdown.append(_on_shutdown)
    app.cleanup_ctx.append(_deduplicator_ctx)
    return app


def setup_middlewares(app: web.Application) -> None:
    """Outermost first: request context, then outcomes (errors, counting, timing)."""
    app.middlewares.extend([request_context, outcomes])


def setup_routes(app: web.Application) -> None:
    settings = app[SETTINGS]
    prefixes = [""]
    if settings.effective_auth_mode is AuthMode.TOKEN:
        # The secret may come as the first path segment instead of a Basic password.
        prefixes.append("/{token}")
    for prefix in prefixes:
        app.router.add_post(prefix + DISPATCH_PATH, webhook_handler(None))
        for path, kind in KIND_PATHS.items():
            app.router.add_post(prefix + path, webhook_handler(kind))
    links: tuple[str, ...] = ()
    # With a private listener, metrics, health and readiness are there (create_metrics_app).
    if settings.metrics_listen_address is None:
        links = setup_monitoring_routes(app)
    app.router.add_get("/", index_page(links, webhooks=True))
    if settings.verification_file is not None:
        verification = settings.verification_file
        app.router.add_get(f"/{verification.name}", static_text(verification.read_bytes()))


def setup_monitoring_routes(app: web.Application) -> tuple[str, ...]:
    """Metrics, liveness and readiness; returns their paths."""
    telemetry_path = app[SETTINGS].telemetry_path
    metrics = app[METRICS]
    app.router.add_get(telemetry_path, metrics_handler(metrics.registry, metrics.exposition))
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return telemetry_path, "/healthz", "/readyz"


def create_metrics_app(app: web.Application) -> web.Application:
    """The app of the private listener (``--web.metrics-listen-address``): ``app``'s metrics,
    health and readiness, and nothing else."""
    monitoring = web.Application()
    monitoring[SETTINGS] = app[SETTINGS]
    monitoring[METRICS] = app[METRICS]
    monitoring[LIFECYCLE] = app[LIFECYCLE]
    setup_middlewares(monitoring)
    links = setup_monitoring_routes(monitoring)
    monitoring.router.add_get("/", index_page(links, webhooks=False))
    return monitoring


def webhook_handler(kind: Kind | None) -> Handler:
    """The handler for one kind's path, or for the dispatching path when ``kind`` is None."""

    async def handle(request: web.Request) -> web.StreamResponse:
        return await request.app[INGEST].handle(request, kind, request.match_info.get("token"))

    return handle


def direct_webhooks(app: web.Application, fallback: RequestHandler) -> RequestHandler:
    """A request handler for a listener of ``app``: a plain ``POST`` to a webhook path goes
    straight to the pipeline, everything else to ``fallback`` (the app's own handler).

    Straight means without aiohttp's router and middleware chain, which cost more per
    webhook than the work they route (``make profile``); the middlewares' own work runs all
    the same (:func:`~exporter.middlewares.bind_request_id`, the in-flight count,
    :func:`~exporter.middlewares.answer`), so the answer, the counting and the logging are
    those of the app's route. A request sent with ``Expect`` (``100-continue``), and the
    secret paths of token mode, take the app's way.
    """
    ingest, metrics, lifecycle = app[INGEST], app[METRICS], app[LIFECYCLE]

    def route(kind: Kind | None) -> RequestHandler:
        async def pipeline(request: web.BaseRequest) -> web.StreamResponse:
            return await ingest.handle(request, kind)

        label = kind.value if kind is not None else UNKNOWN_KIND

        async def handle(request: web.BaseRequest) -> web.StreamResponse:
            request_id = bind_request_id(request)
            lifecycle.enter()
            try:
                response = await answer(request, pipeline, metrics, label)
            finally:
                lifecycle.leave()
            response.headers["X-Request-Id"] = request_id
            return response

        return handle

    routes = {DISPATCH_PATH: route(None)} | {path: route(kind) for path, kind in KIND_PATHS.items()}

    async def dispatch(request: web.BaseRequest) -> web.StreamResponse:
        direct = routes.get(request.rel_url.raw_path)
        if direct is None or request.method != hdrs.METH_POST or hdrs.EXPECT in request.headers:
            return await fallback(request)
        return await direct(request)

    return dispatch


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process answers."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Readiness: started, and not shutting down."""
    if request.app[LIFECYCLE].ready:
        return web.json_response({"status": "ready"})
    return web.json_response({"status": "not ready"}, status=503)


def index_page(links: tuple[str, ...], *, webhooks: bool) -> Handler:
    """A landing page pointing at the endpoints served beside it, as Prometheus exporters have."""
    posting = (
        f"<p>POST SMTPeter webhooks to {DISPATCH_PATH} or {DISPATCH_PATH}/&lt;kind&gt;.</p>"
        if webhooks
        else ""
    )
    items = "".join(f'<li><a href="{escape(path)}">{escape(path)}</a></li>' for path in links)

    async def index(request: web.Request) -> web.Response:
        warning = (
            "<p><strong>Webhook requests are not authenticated</strong> (--auth.mode=none): "
            "anyone who knows the URL can post.</p>"
            if request.app[SETTINGS].effective_auth_mode is AuthMode.NONE
            else ""
        )
        body = (
            "<!doctype html><title>smtpeter-exporter</title><h1>smtpeter-exporter</h1>"
            f"{posting}{warning}<ul>{items}</ul>"
        )
        return web.Response(text=body, content_type="text/html")

    return index


def static_text(content: bytes) -> Handler:
    """A handler answering with ``content`` as plain text (the verification file)."""

    async def handle(request: web.Request) -> web.Response:
        return web.Response(body=content, content_type="text/plain")

    return handle


async def _deduplicator_ctx(app: web.Application) -> AsyncIterator[None]:
    yield
    await app[DEDUPLICATOR].close()


async def _on_startup(app: web.Application) -> None:
    if app[SETTINGS].effective_auth_mode is AuthMode.NONE:
        log.warning(
            "unauthenticated_webhooks",
            message="--auth.mode=none: anyone who knows the URL can post events; "
            "set --smtpeter.copernica-id to verify SMTPeter's signatures",
        )
    app[LIFECYCLE].ready = True


async def _on_shutdown(app: web.Application) -> None:
    app[LIFECYCLE].ready = False
    log.info("shutting_down", uptime_seconds=round(app[LIFECYCLE].uptime, 3))
