"""The ``smtpeter-exporter`` command: with no subcommand it runs the server."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Mapping, Sequence

from aiohttp import web

from exporter import __version__
from exporter.app import create_app
from exporter.logs import AccessLogger, configure_logging, log
from exporter.settings import Settings, add_options, settings_from_args


def build_parser(environ: Mapping[str, str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smtpeter-exporter",
        description="Receive SMTPeter webhooks; export Prometheus metrics and JSON log lines.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    add_options(parser, environ)
    return parser


def serve(settings: Settings) -> None:
    """Run the server until SIGTERM or SIGINT, then let in-flight requests finish."""
    configure_logging(settings.log_level, settings.log_format)
    app = create_app(settings)
    address = settings.listen_address
    log.info(
        "starting",
        version=__version__,
        listen_address=str(address),
        telemetry_path=settings.telemetry_path,
    )
    web.run_app(
        app,
        host=address.host or None,
        port=address.port,
        shutdown_timeout=settings.shutdown_timeout,
        access_log_class=AccessLogger,
        # AccessLogger writes through structlog; aiohttp only needs a logger to enable it.
        access_log=logging.getLogger("aiohttp.access") if settings.access_log else None,
        print=None,
        handle_signals=True,
    )
    log.info("stopped")


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    parser = build_parser(os.environ if environ is None else environ)
    args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
    serve(settings_from_args(args))
    return 0
