"""Serving the app: its listeners, and on SIGTERM or SIGINT a drain within one time budget.

Each listener is an aiohttp ``AppRunner`` with a site of ours whose connections are
:class:`~exporter.connections.ConnectionHandler` (aiohttp's own request handler, reporting to
a :class:`~exporter.connections.ConnectionTable` that caps and times connections). With
``--web.metrics-listen-address`` a second, private listener serves ``/metrics``, ``/healthz``
and ``/readyz``.

Shutdown takes at most ``--web.shutdown-timeout`` (T) in all:

1. ``/readyz`` answers 503 at once, while the webhook listener stays open for
   :func:`readiness_pause` (1 s, or T/5 if less), so a load balancer polling it stops
   sending before connections are refused;
2. the webhook listener closes; idle connections close now, the others after their next
   answer (one accepted just before is still answered if its request comes in time);
3. requests in flight get the rest of T, less :func:`final_grace` twice;
4. aiohttp's own shutdown then cancels what is left (waiting up to the final grace for it)
   and the app is cleaned up.

A second SIGTERM or SIGINT during all this is logged and changes nothing. An event is
acknowledged only once recorded, so one cut off by the budget is retried by SMTPeter.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Final

from aiohttp import web

from exporter.app import create_metrics_app, direct_webhooks
from exporter.appkeys import LIFECYCLE, METRICS
from exporter.connections import (
    METRICS_BACKLOG,
    METRICS_MAX_CONNECTIONS,
    WEBHOOK_BACKLOG,
    ConnectionHandler,
    ConnectionLimits,
    ConnectionTable,
    connection_cap,
    raise_open_files_limit,
    reserved_files,
)
from exporter.errors import CloseReason
from exporter.logs import AccessLogger, log
from exporter.metrics import Metrics
from exporter.settings import ListenAddress, Settings

#: How long readiness is reported down before the listener closes, at most.
READINESS_PAUSE: Final = 1.0
#: How long aiohttp's shutdown waits for a handler, at most (it may wait twice: for the
#: handler, then for its cancellation).
FINAL_GRACE: Final = 0.5


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop where it is installed (the ``uvloop`` extra), else asyncio's
    (``None``). Measured on the ingest benchmark, uvloop takes about a tenth off the cost of
    each request."""
    try:
        import uvloop  # noqa: PLC0415 - optional
    except ImportError:
        return None
    return uvloop.new_event_loop


def serve_forever(app: web.Application, settings: Settings) -> None:
    """Serve ``app`` on a new event loop until SIGTERM or SIGINT, then drain and stop."""
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        runner.run(serve(app, settings))


def readiness_pause(budget: float) -> float:
    """Seconds between readiness turning 503 and the listener closing."""
    return min(READINESS_PAUSE, budget / 5)


def final_grace(budget: float) -> float:
    """Seconds aiohttp's shutdown waits for each handler; aiohttp reads 0 as forever."""
    return max(min(FINAL_GRACE, budget / 10), 0.01)


class ConnectionSite(web.BaseSite):
    """A TCP site like aiohttp's ``TCPSite``, whose protocol is made by ``protocol_factory``."""

    __slots__ = ("_address", "_listening", "_protocol_factory")

    def __init__(
        self,
        runner: web.BaseRunner,
        address: ListenAddress,
        protocol_factory: Callable[[], ConnectionHandler],
        *,
        backlog: int,
    ) -> None:
        super().__init__(runner, backlog=backlog)
        self._address = address
        self._protocol_factory = protocol_factory
        self._listening: asyncio.Server | None = None

    @property
    def name(self) -> str:
        return f"http://{self._address}"

    @property
    def sockets(self) -> int:
        """How many sockets listen (an empty host: one for IPv4, one for IPv6)."""
        return len(self._listening.sockets) if self._listening is not None else 0

    @property
    def port(self) -> int:
        """The port listened on (the one the system chose, for port 0)."""
        if self._listening is None or not self._listening.sockets:
            return self._address.port
        port: int = self._listening.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        await super().start()
        self._listening = self._server = await asyncio.get_running_loop().create_server(
            self._protocol_factory,
            self._address.host or None,
            self._address.port,
            backlog=self._backlog,
        )


@dataclass(frozen=True, slots=True)
class Listener:
    """One listening address: its runner, its site and its connections."""

    runner: web.AppRunner
    site: ConnectionSite
    connections: ConnectionTable


async def listen(
    app: web.Application,
    address: ListenAddress,
    limits: ConnectionLimits,
    settings: Settings,
    *,
    metrics: Metrics,
    backlog: int,
    webhooks: bool = False,
) -> Listener:
    """Start ``app`` on ``address`` with capped and timed connections; with ``webhooks``, its
    webhook paths are served without the router and middleware chain (:func:`direct_webhooks`)."""
    runner = web.AppRunner(
        app, handle_signals=False, shutdown_timeout=final_grace(settings.shutdown_timeout)
    )
    await runner.setup()
    assert runner.server is not None
    if webhooks:
        runner.server.request_handler = direct_webhooks(app, runner.server.request_handler)
    connections = ConnectionTable(limits, functools.partial(_count_close, metrics))
    handler = functools.partial(
        ConnectionHandler,
        runner.server,
        loop=asyncio.get_running_loop(),
        table=connections,
        metrics=metrics,
        **_handler_options(settings),
    )
    site = ConnectionSite(runner, address, handler, backlog=backlog)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return Listener(runner, site, connections)


def _handler_options(settings: Settings) -> dict[str, Any]:
    """aiohttp's ``RequestHandler`` keyword arguments."""
    return {
        "access_log_class": AccessLogger,
        # AccessLogger writes through structlog; aiohttp only needs a logger to enable it.
        "access_log": logging.getLogger("aiohttp.access") if settings.access_log else None,
        # aiohttp's own keep-alive timer, set to fire after any deadline of ours: a backstop.
        "keepalive_timeout": settings.idle_timeout + settings.header_timeout + 1,
    }


def _count_close(metrics: Metrics, reason: CloseReason) -> None:
    metrics.connections_closed.labels(reason.value).inc()


class Service:
    """The app's running listeners, until :meth:`shut_down`."""

    def __init__(
        self,
        app: web.Application,
        settings: Settings,
        webhooks: Listener,
        monitoring: Listener | None,
    ) -> None:
        self._app = app
        self._settings = settings
        self.webhooks = webhooks
        self.monitoring = monitoring

    async def shut_down(self) -> None:
        """Stop within ``--web.shutdown-timeout``: readiness, listener, drain, cleanup."""
        loop = asyncio.get_running_loop()
        budget = self._settings.shutdown_timeout
        deadline = loop.time() + budget
        grace = final_grace(budget)
        lifecycle = self._app[LIFECYCLE]
        lifecycle.ready = False
        log.info("draining", in_flight=lifecycle.in_flight, timeout_seconds=budget)
        await asyncio.sleep(readiness_pause(budget))
        await self.webhooks.site.stop()
        self.webhooks.connections.wind_down()
        left = await lifecycle.drain(deadline - 2 * grace - loop.time())
        if left:
            log.warning("drain_timeout", in_flight=left, timeout_seconds=budget)
        runners = [self.webhooks.runner] + ([self.monitoring.runner] if self.monitoring else [])
        try:
            async with asyncio.timeout(max(deadline - loop.time(), grace)):
                await asyncio.gather(*(runner.cleanup() for runner in runners))
        except TimeoutError:
            log.warning("shutdown_cut_short", timeout_seconds=budget)


async def start_service(app: web.Application, settings: Settings) -> Service:
    """Raise the open-files limit, start listening, and cap connections to fit the limit."""
    metrics = app[METRICS]
    private = settings.metrics_listen_address
    open_files = raise_open_files_limit()
    webhooks = await listen(
        app,
        settings.listen_address,
        ConnectionLimits(settings.max_connections, settings.header_timeout, settings.idle_timeout),
        settings,
        metrics=metrics,
        backlog=WEBHOOK_BACKLOG,
        webhooks=True,
    )
    metrics.connections.set_function(lambda: len(webhooks.connections))
    monitoring = None
    if private is not None:
        try:
            monitoring = await listen(
                create_metrics_app(app),
                private,
                ConnectionLimits(
                    METRICS_MAX_CONNECTIONS, settings.header_timeout, settings.idle_timeout
                ),
                settings,
                metrics=metrics,
                backlog=METRICS_BACKLOG,
            )
        except BaseException:
            await webhooks.runner.cleanup()
            raise
    # The reserve depends on how many sockets each address bound, known only now; nobody can
    # have opened more than a few connections yet.
    reserved = reserved_files(
        webhook_sockets=webhooks.site.sockets,
        metrics_sockets=monitoring.site.sockets if monitoring else 0,
    )
    cap = connection_cap(settings.max_connections, open_files.soft, reserved)
    webhooks.connections.limits = replace(webhooks.connections.limits, max_connections=cap)
    log.info(
        "listening",
        listen_address=str(settings.listen_address),
        metrics_listen_address=str(private) if private else None,
        telemetry_path=settings.telemetry_path,
        max_connections=cap,
    )
    return Service(app, settings, webhooks, monitoring)


async def serve(app: web.Application, settings: Settings) -> None:
    """Serve ``app`` until SIGTERM or SIGINT, then drain and stop."""
    service = await start_service(app, settings)
    # What start built (metric children, tables, modules) lives as long as the process: out
    # of the collector's sight, a full collection no longer stalls requests walking it.
    gc.collect()
    gc.freeze()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(signum: signal.Signals) -> None:
        if stop.is_set():
            # A second signal must not cut the drain short halfway through a response.
            log.info("signal_ignored", signal=signum.name, reason="already shutting down")
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        await stop.wait()
        await service.shut_down()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
