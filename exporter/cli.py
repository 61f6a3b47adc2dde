"""The ``smtpeter-exporter`` command: with no subcommand it runs the server."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Mapping, Sequence

from exporter import __version__
from exporter.app import create_app
from exporter.logs import configure_logging, log
from exporter.server import serve
from exporter.settings import Settings, add_options, settings_from_args


def build_parser(environ: Mapping[str, str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smtpeter-exporter",
        description="Receive SMTPeter webhooks; export Prometheus metrics and JSON log lines.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    add_options(parser, environ)
    return parser


def run(settings: Settings) -> None:
    """Configure logging, build the app and serve it until SIGTERM or SIGINT."""
    configure_logging(settings.log_level, settings.log_format)
    log.info("starting", version=__version__)
    asyncio.run(serve(create_app(settings), settings))
    log.info("stopped")


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    parser = build_parser(os.environ if environ is None else environ)
    args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
    run(settings_from_args(args))
    return 0
