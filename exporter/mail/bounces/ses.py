"""Amazon SES notifications delivered by e-mail (through Amazon SNS): JSON, not MIME reports."""

from __future__ import annotations

import json
import re
from typing import Final

from exporter.mail.bounces.arf import feedback_report
from exporter.mail.bounces.dsn import DIAGNOSTIC_TYPE
from exporter.mail.bounces.facts import facts
from exporter.mail.bounces.report import BounceReport, Failure
from exporter.mail.bounces.text import address

# Amazon SES notifications delivered by e-mail (Amazon SNS): JSON, not MIME reports.
_SES_TYPE: Final = re.compile(r'"notificationType"\s*:\s*"(\w+)"')
_SES_RECIPIENT: Final = re.compile(r'\{[^{}]*?"emailAddress"\s*:\s*"([^"]+)"[^{}]*\}')
_JSON_STRING: Final = r'\s*:\s*"((?:[^"\\]|\\.)*)"'
_SES_STATUS: Final = re.compile(r'"status"' + _JSON_STRING)
_SES_DIAGNOSTIC: Final = re.compile(r'"diagnosticCode"' + _JSON_STRING)
_SES_BOUNCE_TYPE: Final = re.compile(r'"bounce(?:Sub)?Type"' + _JSON_STRING)
_SES_FEEDBACK_TYPE: Final = re.compile(r'"complaintFeedbackType"' + _JSON_STRING)


def ses_report(text: str) -> BounceReport | None:
    """An SES bounce, complaint or delivery notification; None when ``text`` is none."""
    kind = _SES_TYPE.search(text)
    if kind is None:
        return None
    notification = kind.group(1).lower()
    if notification == "delivery":
        return BounceReport("dsn", ())
    recipients = [(m.group(1), m.group(0)) for m in _SES_RECIPIENT.finditer(text)]
    if notification == "complaint":
        feedback = _SES_FEEDBACK_TYPE.search(text)
        complained = [address(raw) for raw, _ in recipients]
        return feedback_report(complained, _json_text(feedback) or "abuse", "")
    if notification != "bounce":
        return None
    bounce_type = " ".join(_json_text(m) for m in _SES_BOUNCE_TYPE.finditer(text))
    failures = [
        Failure(
            address(raw),
            DIAGNOSTIC_TYPE.sub("", _json_text(_SES_DIAGNOSTIC.search(obj))) or bounce_type,
            _json_text(_SES_STATUS.search(obj)),
        )
        for raw, obj in recipients
    ]
    return BounceReport("dsn", tuple(facts(failures, "")))


def _json_text(match: re.Match[str] | None) -> str:
    if match is None:
        return ""
    try:
        decoded = json.loads(f'"{match.group(1)}"')
    except ValueError:
        return match.group(1)
    return decoded if isinstance(decoded, str) else ""
