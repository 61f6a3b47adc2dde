"""Running the app: listen, and on SIGTERM or SIGINT drain before closing.

aiohttp's own ``run_app`` closes every connection at shutdown, which drops a webhook whose
body is still arriving. Here the listening socket closes first, requests already inside
the app get up to ``shutdown_timeout`` seconds to be answered, and only then are
connections closed, so every event the exporter acknowledged was recorded and every one it
did not acknowledge is retried by SMTPeter.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web

from exporter.appkeys import LIFECYCLE
from exporter.logs import AccessLogger, log
from exporter.settings import Settings


async def serve(app: web.Application, settings: Settings) -> None:
    """Serve ``app`` until SIGTERM or SIGINT, then drain and stop."""
    runner = web.AppRunner(
        app,
        handle_signals=False,
        shutdown_timeout=settings.shutdown_timeout,
        access_log_class=AccessLogger,
        # AccessLogger writes through structlog; aiohttp only needs a logger to enable it.
        access_log=logging.getLogger("aiohttp.access") if settings.access_log else None,
    )
    await runner.setup()
    address = settings.listen_address
    site = web.TCPSite(runner, host=address.host or None, port=address.port)
    await site.start()
    log.info("listening", listen_address=str(address), telemetry_path=settings.telemetry_path)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
        lifecycle = app[LIFECYCLE]
        lifecycle.ready = False
        log.info("draining", in_flight=lifecycle.in_flight)
        await site.stop()
        left = await lifecycle.drain(settings.shutdown_timeout)
        if left:
            log.warning("drain_timeout", in_flight=left, timeout_seconds=settings.shutdown_timeout)
    finally:
        # Signals stay caught until connections are closed: a second SIGTERM must not cut
        # the drain short halfway through a response.
        await runner.cleanup()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
