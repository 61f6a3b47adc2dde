"""Structured logging: configured once, one JSON line per event, readable on a terminal.

structlog renders everything, including what aiohttp and asyncio log through the standard
library, so a log shipper sees one JSON object per line with the same keys whatever wrote it.
"""

from __future__ import annotations

import hashlib
import logging
import sys
from enum import StrEnum
from typing import Any, Final, TextIO

import structlog
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse

from exporter.diagnosis import Diagnosis
from exporter.domains import domain_of, provider_of
from exporter.events import (
    AbuseEvent,
    BounceEvent,
    ClickEvent,
    DeliveryEvent,
    Event,
    FailureEvent,
    OpenEvent,
    RecipientEvent,
)
from exporter.smtp import code_class


class LogFormat(StrEnum):
    AUTO = "auto"
    JSON = "json"
    CONSOLE = "console"


class RecipientMode(StrEnum):
    """How much of a recipient address a log line shows."""

    FULL = "full"
    HASH = "hash"
    DOMAIN = "domain"


LEVELS: Final = ("debug", "info", "warning", "error")

log = structlog.get_logger("exporter")


def configure_logging(
    level: str = "info", log_format: LogFormat = LogFormat.AUTO, stream: TextIO | None = None
) -> None:
    """Set up structlog and route the standard library's ``logging`` through it."""
    out = stream if stream is not None else sys.stdout
    console = log_format is LogFormat.CONSOLE or (log_format is LogFormat.AUTO and out.isatty())
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer(colors=out.isatty())
        if console
        else structlog.processors.JSONRenderer()
    )
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    numeric_level = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.StackInfoRenderer(),
            *([] if console else [structlog.processors.dict_tracebacks]),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=structlog.WriteLoggerFactory(file=out),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                *([] if console else [structlog.processors.dict_tracebacks]),
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric_level)


def render_recipient(recipient: str, domain: str, mode: RecipientMode) -> str:
    """The recipient as the log shows it: in full, as a stable hash, or as its domain only.

    The hash is SHA-256 of the address with its domain normalized: it lets two lines about
    one address be matched without showing it, but it is a pseudonym, not anonymity.
    """
    if mode is RecipientMode.FULL:
        return recipient
    if mode is RecipientMode.HASH:
        return "sha256:" + hashlib.sha256(recipient.encode()).hexdigest()
    return f"*@{domain}"


def event_fields(event: Event, diagnosis: Diagnosis, mode: RecipientMode) -> dict[str, Any]:
    """The keys of an event's log line (the README's log schema), in a stable order."""
    fields: dict[str, Any] = {"kind": event.kind.value, "id": event.message_id}
    if isinstance(event, RecipientEvent):
        fields["recipient"] = render_recipient(event.recipient, event.domain, mode)
        fields["domain"] = event.domain
        fields["provider"] = provider_of(event.domain).value
    fields["occurred_at"] = event.occurred_at.isoformat() if event.occurred_at else None
    fields["tags"] = list(event.tags)
    match event:
        case FailureEvent():
            fields.update(
                action=event.action,
                state=event.state,
                state_raw=event.state_raw,
                code=event.code,
                code_class=code_class(event.code),
                extended=event.extended,
                description=event.description,
            )
            if diagnosis.verdict is not None:
                fields.update(
                    reason=diagnosis.verdict.reason, bounce_type=diagnosis.verdict.bounce_type
                )
        case DeliveryEvent():
            fields.update(
                code=event.code,
                code_class=code_class(event.code),
                extended=event.extended,
                description=event.description,
            )
        case ClickEvent():
            fields.update(
                ip=event.ip,
                useragent=event.useragent,
                referer=event.referer,
                original=event.original,
            )
        case OpenEvent():
            fields.update(ip=event.ip, useragent=event.useragent, referer=event.referer)
        case BounceEvent():
            fields.update(envelope=event.envelope, mailfrom=event.mailfrom, rcptto=event.rcptto)
            fields.update(_report_fields(diagnosis, mode))
        case AbuseEvent():
            fields.update(emailfrom=event.emailfrom, feedback_type=diagnosis.feedback_type)
            fields.update(_report_fields(diagnosis, mode))
    if event.extra:
        fields["extra"] = dict(event.extra)
    if event.truncated:
        fields["truncated"] = list(event.truncated)
    return fields


def _report_fields(diagnosis: Diagnosis, mode: RecipientMode) -> dict[str, Any]:
    """What a raw bounce or ARF message said: its kind, a fact per recipient, or an excerpt."""
    report = diagnosis.report
    if report is None:
        return {}
    facts = []
    for fact in report.facts:
        domain = domain_of(fact.recipient) or ""
        facts.append(
            {
                "recipient": render_recipient(fact.recipient, domain, mode),
                "status": fact.status,
                "code": fact.code,
                "state": fact.state,
                "description": fact.description,
                "reason": fact.reason,
                "bounce_type": fact.bounce_type,
            }
        )
    fields: dict[str, Any] = {"message_kind": report.kind, "facts": facts}
    if not facts:
        fields["excerpt"] = report.excerpt
    return fields


def logged_path(request: BaseRequest) -> str:
    """The request's path for a log line: token mode's secret path segment is masked."""
    match_info = getattr(request, "match_info", None)
    token = match_info.get("token") if match_info is not None else None
    return request.path.replace(token, "<token>", 1) if token else request.path


class AccessLogger(AbstractAccessLogger):
    """aiohttp's access log as structlog lines (``event="http_request"``)."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        log.info(
            "http_request",
            method=request.method,
            path=logged_path(request),
            status=response.status,
            bytes=response.body_length,
            duration_seconds=round(time, 6),
            remote=request.remote,
            user_agent=request.headers.get("User-Agent", ""),
        )
