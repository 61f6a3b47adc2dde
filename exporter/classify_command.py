"""``smtpeter-exporter classify``: the service's parsing and classification, offline.

Operators use it to test rules before deploying them, or to replay a day of webhooks.
Failure payloads go through exactly the parser and classifier the service uses; raw
messages through the same bounce reader. Output is JSON lines; a bad line or file gives a
line with ``error`` and the run goes on, and the exit status is 1 if anything failed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

from exporter.diagnosis import diagnose
from exporter.errors import Rejected
from exporter.events import FailureEvent, Kind
from exporter.mail import BounceType, Reason, read_bounce
from exporter.mail.smtp import NO_STATUS, code_class, parse_enhanced_status
from exporter.payload import json_fields
from exporter.webhook import parse_event


def classify_payloads(lines: Iterable[str], source: str = "-") -> Iterator[dict[str, Any]]:
    """One output object per input line of a failure payload, in order."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = {"file": source, "line": number}
        try:
            given = json.loads(line)
        except (ValueError, RecursionError):
            given = None
        if not isinstance(given, dict):
            yield {**where, "error": "not a JSON object"}
            continue
        try:
            event = parse_event(Kind.FAILURE, json_fields(given))
        except Rejected as rejected:
            yield {**where, **rejected.body()}
            continue
        assert isinstance(event, FailureEvent)
        verdict = diagnose(event).verdict
        assert verdict is not None  # every failure gets one
        status = parse_enhanced_status(event.extended)
        yield {
            **given,
            "reason": verdict.reason.value,
            "bounce_type": verdict.bounce_type.value,
            "state": event.state,
            "code_class": code_class(event.code),
            "status_class": status.klass if status else NO_STATUS,
            "status_subject": status.subject_label if status else NO_STATUS,
            "domain": event.domain,
        }


def classify_messages(paths: Iterable[str]) -> Iterator[dict[str, Any]]:
    """One output object per recipient a raw message names (one line when it names none)."""
    for name in paths:
        try:
            raw = Path(name).read_bytes()
        except OSError as exc:
            yield {"file": name, "error": exc.strerror or str(exc)}
            continue
        report = read_bounce(raw)
        extra = {"feedback_type": report.feedback_type} if report.kind == "feedback" else {}
        if not report.facts:
            yield {
                "file": name,
                "recipient": "",
                "status": "",
                "code": "",
                "description": "",
                "reason": Reason.UNDEFINED.value,
                "bounce_type": BounceType.SOFT.value,
                "kind": report.kind,
                **extra,
                "excerpt": report.excerpt,
            }
        for fact in report.facts:
            yield {
                "file": name,
                "recipient": fact.recipient,
                "status": fact.status,
                "code": fact.code,
                "description": fact.description,
                "reason": fact.reason.value,
                "bounce_type": fact.bounce_type.value,
                "kind": report.kind,
                **extra,
            }


def _payload_results(files: list[str]) -> Iterator[dict[str, Any]]:
    for name in files or ["-"]:
        if name == "-":
            yield from classify_payloads(sys.stdin)
            continue
        try:
            with Path(name).open(encoding="utf-8", errors="replace") as handle:
                yield from classify_payloads(handle, source=name)
        except OSError as exc:
            yield {"file": name, "error": exc.strerror or str(exc)}


def run(files: list[str], *, mime: bool, out: TextIO | None = None) -> int:
    """Write one JSON line per result; 1 when any input failed, else 0."""
    stream = out if out is not None else sys.stdout
    failed = False
    for result in classify_messages(files) if mime else _payload_results(files):
        failed = failed or "error" in result
        stream.write(json.dumps(result, ensure_ascii=False) + "\n")
    stream.flush()
    return 1 if failed else 0
