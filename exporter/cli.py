"""The ``smtpeter-exporter`` command: with no subcommand it runs the server;
``classify`` runs the classifier offline."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping, Sequence

from aiohttp import web

from exporter import __version__, classify_command
from exporter.app import create_app
from exporter.logs import configure_logging, flush_event_lines, log
from exporter.metrics import disable_created_series
from exporter.server import event_loop_factory, serve_forever
from exporter.settings import Settings, add_options, settings_from_args


def build_parser(environ: Mapping[str, str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smtpeter-exporter",
        description="Receive SMTPeter webhooks; export Prometheus metrics and JSON log lines.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    add_options(parser, environ)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    classify = commands.add_parser(
        "classify",
        help="classify failure payloads or raw bounce messages offline (JSON lines out)",
        description="Without --mime: read JSON lines of failure payloads from FILEs (or "
        "stdin) and write each with reason, bounce_type, state, code_class, status_class, "
        "status_subject and domain added. With --mime: read each FILE as one raw message "
        "and write a line per recipient it names. Exit status 1 if any input failed.",
    )
    classify.add_argument("--mime", action="store_true", help="FILEs are raw messages")
    classify.add_argument("files", nargs="*", metavar="FILE", help="input files; - is stdin")
    return parser


AppFactory = Callable[[Settings], web.Application]


def run(settings: Settings, build_app: AppFactory = create_app) -> None:
    """Configure logging, build the app and serve it until SIGTERM or SIGINT."""
    sink = configure_logging(
        settings.log_level,
        settings.log_format,
        recipient_mode=settings.log_recipient,
        buffer_lines=settings.log_buffer_lines,
    )
    loop = "uvloop" if event_loop_factory() is not None else "asyncio"
    log.info("starting", version=__version__, event_loop=loop)
    try:
        app = build_app(settings)
    except ValueError as exc:
        # What only building the app can tell (an unusable key file, a nameserver that is
        # not an address): stop as a bad flag does.
        log.error("bad_configuration", error=str(exc))
        sink.close()
        raise SystemExit(2) from None
    serve_forever(app, settings)
    flush_event_lines()
    log.info("stopped")
    sink.close()


def main(
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    build_app: AppFactory = create_app,
) -> int:
    disable_created_series()
    parser = build_parser(os.environ if environ is None else environ)
    args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
    if args.command == "classify":
        if args.mime and not args.files:
            parser.error("classify --mime needs at least one FILE")
        return classify_command.run(args.files, mime=args.mime)
    try:
        settings = settings_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    run(settings, build_app)
    return 0
