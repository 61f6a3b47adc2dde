"""Configuration: one frozen settings object, built once from flags and the environment.

Every option is a row of :data:`OPTIONS`; each has a Prometheus-style flag
(``--web.listen-address``) and an environment variable (``SMTPETER_EXPORTER_WEB_LISTEN_ADDRESS``).
A flag beats its variable, which beats the default.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from exporter.logs import LEVELS, LogFormat, RecipientMode

ENV_PREFIX: Final = "SMTPETER_EXPORTER_"
DEFAULT_PORT: Final = 10587
#: A bounce carries the whole returned message: 10 MiB holds what common MTAs accept
#: (Postfix's default message_size_limit is 10,240,000 bytes) with room for form encoding
#: of its headers and text.
DEFAULT_MAX_REQUEST_BYTES: Final = 10 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ListenAddress:
    """``host:port``; an empty host means every interface."""

    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


_LISTEN: Final = re.compile(
    r"(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[^:\[\]]*)):(?P<port>[0-9]{1,5})"
)


def parse_listen_address(text: str) -> ListenAddress:
    """Parse ``:10587``, ``127.0.0.1:10587`` or ``[::1]:10587``."""
    match = _LISTEN.fullmatch(text.strip())
    if match is None or not 0 <= int(match["port"]) <= 65535:
        raise ValueError(f"{text!r} is not host:port (for example :{DEFAULT_PORT})")
    return ListenAddress(match["v6"] or match["host"] or "", int(match["port"]))


def _boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"{text!r} is not a boolean (true or false)")


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError(f"{text!r} must be a positive whole number")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(f"{text!r} must be zero or more")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 3600:
        raise ValueError(f"{text!r} must be between 0 and 3600 seconds")
    return value


def _telemetry_path(text: str) -> str:
    if not text.startswith("/") or text.startswith("/webhooks"):
        raise ValueError(f"{text!r} must start with / and not be under /webhooks")
    return text


def _existing_file(text: str) -> Path:
    path = Path(text)
    if not path.is_file():
        raise ValueError(f"{text!r} is not a readable file")
    return path


@dataclass(frozen=True, slots=True)
class Option:
    """One setting: its flag, how to read it, its default and what it does."""

    flag: str
    dest: str
    parse: Callable[[str], Any]
    default: str | None
    help: str
    choices: tuple[str, ...] | None = None

    @property
    def env(self) -> str:
        return ENV_PREFIX + re.sub(r"[.-]", "_", self.flag.removeprefix("--")).upper()


OPTIONS: Final[tuple[Option, ...]] = (
    Option(
        "--web.listen-address",
        "listen_address",
        parse_listen_address,
        f":{DEFAULT_PORT}",
        "Address to listen on for webhooks and scrapes.",
    ),
    Option(
        "--web.telemetry-path",
        "telemetry_path",
        _telemetry_path,
        "/metrics",
        "Path under which to expose metrics.",
    ),
    Option(
        "--web.max-request-bytes",
        "max_request_bytes",
        _positive_int,
        str(DEFAULT_MAX_REQUEST_BYTES),
        "Largest webhook body accepted; larger ones get 413.",
    ),
    Option(
        "--web.shutdown-timeout",
        "shutdown_timeout",
        _seconds,
        "10",
        "Seconds in-flight requests get to finish after SIGTERM.",
    ),
    Option(
        "--web.access-log",
        "access_log",
        _boolean,
        "false",
        "Log every HTTP request (event=http_request) besides the per-event lines.",
    ),
    Option("--log.level", "log_level", str, "info", "Lowest level logged.", LEVELS),
    Option(
        "--log.format",
        "log_format",
        LogFormat,
        "auto",
        "json, console, or auto (console on a terminal, json otherwise).",
        tuple(LogFormat),
    ),
    Option(
        "--log.recipient",
        "log_recipient",
        RecipientMode,
        "full",
        "How recipients appear in log lines: full address, sha256 hash, or domain only.",
        tuple(RecipientMode),
    ),
    Option(
        "--metrics.domain-limit",
        "domain_limit",
        _non_negative_int,
        "100",
        "Recipient domains besides the built-in providers that get their own domain label; "
        'later ones are counted as domain="other".',
    ),
    Option(
        "--smtpeter.verification-file",
        "verification_file",
        _existing_file,
        None,
        "SMTPeter's smtpeter-xxxxx.txt ownership file, served at /<its name>.",
    ),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Everything the service is told at start; see :data:`OPTIONS` for each field."""

    listen_address: ListenAddress = ListenAddress("", DEFAULT_PORT)
    telemetry_path: str = "/metrics"
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    shutdown_timeout: float = 10.0
    access_log: bool = False
    log_level: str = "info"
    log_format: LogFormat = LogFormat.AUTO
    log_recipient: RecipientMode = RecipientMode.FULL
    domain_limit: int = 100
    verification_file: Path | None = None


def add_options(parser: argparse.ArgumentParser, environ: Mapping[str, str]) -> None:
    """Add every option to ``parser``, with defaults taken from ``environ`` where set."""
    for option in OPTIONS:
        raw = environ.get(option.env, option.default)
        default: Any = None
        if raw is not None:
            if option.choices is not None and raw not in option.choices:
                parser.error(f"{option.env}={raw!r}: choose from {', '.join(option.choices)}")
            try:
                default = option.parse(raw)
            except ValueError as exc:
                parser.error(f"{option.env}: {exc}")
        # A bare boolean flag (--web.access-log) means true.
        bare: dict[str, Any] = {"nargs": "?", "const": True} if option.parse is _boolean else {}
        parser.add_argument(
            option.flag,
            **bare,
            dest=option.dest,
            type=option.parse,
            default=default,
            choices=[option.parse(choice) for choice in option.choices] if option.choices else None,
            metavar=option.dest.upper() if option.choices is None else None,
            help=f"{option.help} Env: {option.env}. Default: {option.default or 'none'}.",
        )


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The :class:`Settings` named by parsed arguments."""
    return Settings(**{option.dest: getattr(args, option.dest) for option in OPTIONS})


def parse_settings(argv: list[str], environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from command-line arguments and the environment (for tests and embedding)."""
    parser = argparse.ArgumentParser(prog="smtpeter-exporter")
    add_options(parser, os.environ if environ is None else environ)
    return settings_from_args(parser.parse_args(argv))
