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
from enum import StrEnum
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from exporter.domains import read_domains_file
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


_DURATION: Final = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)?")
_DURATION_UNITS: Final = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def _duration(text: str) -> float:
    """Seconds from ``90``, ``90s``, ``15m``, ``24h`` or ``7d``."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a duration such as 30s, 15m, 24h or 7d")
    value = float(match[1]) * _DURATION_UNITS[match[2]]
    if not 0 < value <= 30 * 86400:
        raise ValueError(f"{text!r} must be more than 0 and at most 30 days")
    return value


def _text(text: str) -> str:
    value = text.strip()
    if not value:
        raise ValueError("must not be empty")
    return value


def _url(text: str) -> str:
    parts = urlsplit(text.strip())
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError(f"{text!r} is not an http(s) URL")
    return text.strip()


def _redis_url(text: str) -> str:
    parts = urlsplit(text.strip())
    if parts.scheme not in {"redis", "rediss", "unix"}:
        raise ValueError(f"{text!r} is not a redis://, rediss:// or unix:// URL")
    return text.strip()


def _listed_domains(text: str) -> tuple[str, ...]:
    return read_domains_file(Path(text))


def _header_list(text: str) -> tuple[str, ...]:
    """Header names, space or comma separated, lowercased (``(request-target)`` included)."""
    names = tuple(name.lower() for name in re.split(r"[\s,]+", text.strip()) if name)
    if not names:
        raise ValueError("name at least one header")
    return names


class AuthMode(StrEnum):
    """How webhook requests prove they come from SMTPeter."""

    #: ``signature`` when a Copernica id is configured, else ``none``.
    AUTO = "auto"
    #: SMTPeter's signed headers (draft-cavage HTTP signatures, keys in DNS).
    SIGNATURE = "signature"
    #: A shared secret in the URL path or as the HTTP Basic password.
    TOKEN = "token"  # noqa: S105 - a mode name, not a secret
    #: Nothing: anyone who finds the URL can post. Logged as a warning.
    NONE = "none"


#: The headers a signature must cover at least: SMTPeter's documented minimum.
DEFAULT_SIGNED_HEADERS: Final = ("(request-target)", "host", "date", "x-copernica-id", "digest")


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
        "Most seconds the whole shutdown takes after SIGTERM (readiness pause, drain, cleanup).",
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
    Option(
        "--web.metrics-listen-address",
        "metrics_listen_address",
        parse_listen_address,
        None,
        "Serve /metrics, /healthz and /readyz on this address instead of the webhook "
        "listener, so they need not be public.",
    ),
    Option(
        "--web.max-connections",
        "max_connections",
        _positive_int,
        "1000",
        "Most client connections open at once (lowered to fit the open-files limit); at the "
        "cap the longest-idle connection is closed for a new one.",
    ),
    Option(
        "--web.header-timeout",
        "header_timeout",
        _duration,
        "10s",
        "Time a client gets to send a request's headers.",
    ),
    Option(
        "--web.body-timeout",
        "body_timeout",
        _duration,
        "60s",
        "Time a client gets to send a request's body once its headers are in (408 after).",
    ),
    Option(
        "--web.idle-timeout",
        "idle_timeout",
        _duration,
        "30s",
        "Time a keep-alive connection may stay idle between requests.",
    ),
    Option(
        "--auth.mode",
        "auth_mode",
        AuthMode,
        "auto",
        "signature, token, none, or auto (signature when --smtpeter.copernica-id is set, "
        "else none).",
        tuple(AuthMode),
    ),
    Option(
        "--auth.token",
        "auth_token",
        _text,
        None,
        "Shared secret for --auth.mode=token (prefer the environment variable or "
        "--auth.token-file: a flag is visible to other users of the machine).",
    ),
    Option(
        "--auth.token-file",
        "auth_token_file",
        _existing_file,
        None,
        "File holding the shared secret for --auth.mode=token.",
    ),
    Option(
        "--auth.signed-headers",
        "signed_headers",
        _header_list,
        " ".join(DEFAULT_SIGNED_HEADERS),
        "Headers a signature must cover at least (space separated); add x-nonce and "
        "content-type to demand what Copernica's reference verifier does.",
    ),
    Option(
        "--auth.max-clock-skew",
        "max_clock_skew",
        _duration,
        "60s",
        "How far a signed request's Date may be from now, either way.",
    ),
    Option(
        "--smtpeter.copernica-id",
        "copernica_id",
        _text,
        None,
        "Your account's X-Copernica-ID (environment_1234 or account_1234): signed requests "
        "for any other account are refused.",
    ),
    Option(
        "--smtpeter.public-key-file",
        "public_key_file",
        _existing_file,
        None,
        "PEM public key to verify signatures with, instead of looking it up in DNS "
        "(tests, air-gapped setups).",
    ),
    Option(
        "--smtpeter.dns-nameserver",
        "dns_nameserver",
        parse_listen_address,
        None,
        "host:port of the DNS server to look signing keys up at, instead of the system's.",
    ),
    Option(
        "--smtpeter.public-url",
        "public_url",
        _url,
        None,
        "The URL SMTPeter posts to, when a reverse proxy changes the host or path the "
        "exporter sees (signatures cover them).",
    ),
    Option(
        "--dedup.window",
        "dedup_window",
        _duration,
        "24h",
        "How long an event is remembered, so a retry of it is counted once.",
    ),
    Option(
        "--dedup.max-entries",
        "dedup_max_entries",
        _non_negative_int,
        "500000",
        "Most events remembered in memory (oldest forgotten first); 0 turns duplicate "
        "detection off.",
    ),
    Option(
        "--dedup.redis-url",
        "dedup_redis_url",
        _redis_url,
        None,
        "Remember events in Redis instead (redis://host:6379/0), shared by every replica.",
    ),
    Option(
        "--metrics.domains-file",
        "listed_domains",
        _listed_domains,
        None,
        "File of recipient domains (one per line, # comments) that always get their own "
        "domain label, beside the built-in providers and outside --metrics.domain-limit.",
    ),
    Option(
        "--log.buffer-lines",
        "log_buffer_lines",
        _non_negative_int,
        "0",
        "Log lines that may wait in memory while stdout is slow (0: write each at once).",
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
    metrics_listen_address: ListenAddress | None = None
    max_connections: int = 1000
    header_timeout: float = 10.0
    body_timeout: float = 60.0
    idle_timeout: float = 30.0
    auth_mode: AuthMode = AuthMode.AUTO
    auth_token: str | None = None
    auth_token_file: Path | None = None
    signed_headers: tuple[str, ...] = DEFAULT_SIGNED_HEADERS
    max_clock_skew: float = 60.0
    copernica_id: str | None = None
    public_key_file: Path | None = None
    dns_nameserver: ListenAddress | None = None
    public_url: str | None = None
    dedup_window: float = 86400.0
    dedup_max_entries: int = 500_000
    dedup_redis_url: str | None = None
    #: The domains of ``--metrics.domains-file``, normalized.
    listed_domains: tuple[str, ...] = ()
    log_buffer_lines: int = 0

    @property
    def effective_auth_mode(self) -> AuthMode:
        """The mode in force: ``auto`` resolved by whether a Copernica id is configured."""
        if self.auth_mode is not AuthMode.AUTO:
            return self.auth_mode
        return AuthMode.SIGNATURE if self.copernica_id else AuthMode.NONE


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
            type=option.parse if option.choices else _explained(option.parse),
            default=default,
            choices=[option.parse(choice) for choice in option.choices] if option.choices else None,
            metavar=option.dest.upper() if option.choices is None else None,
            help=f"{option.help} Env: {option.env}. Default: {option.default or 'none'}.",
        )


def _explained(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """``parse`` whose ``ValueError`` message reaches the user (argparse hides it)."""

    def parse_or_explain(text: str) -> Any:  # noqa: ANN401 - whatever the option holds
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse_or_explain


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The :class:`Settings` named by parsed arguments; ``ValueError`` for a bad combination."""
    # An option not given (None) keeps the field's default.
    given = {option.dest: getattr(args, option.dest) for option in OPTIONS}
    settings = Settings(**{dest: value for dest, value in given.items() if value is not None})
    check(settings)
    return settings


def check(settings: Settings) -> None:
    """Refuse combinations of options that cannot work, naming the options."""
    mode = settings.effective_auth_mode
    tokens = [value for value in (settings.auth_token, settings.auth_token_file) if value]
    if mode is AuthMode.TOKEN and len(tokens) != 1:
        raise ValueError("--auth.mode=token needs exactly one of --auth.token, --auth.token-file")
    if mode is not AuthMode.TOKEN and tokens:
        raise ValueError(f"--auth.token or --auth.token-file is set but --auth.mode is {mode}")
    if mode is AuthMode.SIGNATURE and not settings.copernica_id:
        raise ValueError("--auth.mode=signature needs --smtpeter.copernica-id")
    if settings.metrics_listen_address == settings.listen_address:
        raise ValueError("--web.metrics-listen-address must differ from --web.listen-address")


def parse_settings(argv: list[str], environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from command-line arguments and the environment (for tests and embedding)."""
    parser = argparse.ArgumentParser(prog="smtpeter-exporter")
    add_options(parser, os.environ if environ is None else environ)
    args = parser.parse_args(argv)
    try:
        return settings_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
