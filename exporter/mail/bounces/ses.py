"""Amazon SES notifications delivered by e-mail: JSON, not MIME reports.

SES publishes bounce, complaint and delivery notifications, and with event publishing
("eventType" instead of "notificationType") delivery delays too, to an Amazon SNS topic; an
e-mail subscription receives the notification itself as the body ("Amazon SNS notification
contents for Amazon SES"), an "email-json" subscription the SNS envelope with the notification
as a JSON *string* in its "Message" ("HTTP/HTTPS notification JSON format" in the SNS guide).
Both are read here. Text that is not valid JSON (a notice cut short, a line wrapped inside a
token) is scanned for the same fields instead.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Final

from exporter.mail.bounces.arf import feedback_report
from exporter.mail.bounces.dsn import DIAGNOSTIC_TYPE
from exporter.mail.bounces.facts import facts
from exporter.mail.bounces.report import MAX_FACTS, BounceReport, Failure
from exporter.mail.bounces.text import address

#: Names of the field that says what a notification is about: SES notifications, event records.
_KIND_FIELDS: Final = ("notificationType", "eventType")

#: Notification kinds with failed recipients -> (object field, recipient list field); from
#: "Amazon SNS notification contents for Amazon SES" and "Contents of event data that Amazon
#: SES publishes to Amazon SNS".
_FAILED_RECIPIENTS: Final = {
    "bounce": ("bounce", "bouncedRecipients"),
    "deliverydelay": ("deliveryDelay", "delayedRecipients"),
}
#: Fields that say why, when a recipient has no diagnostic code of its own.
_KIND_DETAILS: Final = ("bounceType", "bounceSubType", "delayType")

_DECODER: Final = json.JSONDecoder(strict=False)  # SES texts wrapped inside strings stay readable
_ENVELOPE_TYPE: Final = "Notification"

# The fallback scan, for text that is not JSON; escaped quotes (an SNS envelope) unescaped.
_SES_TYPE: Final = re.compile(r'"(?:notificationType|eventType)"\s*:\s*"(\w+)"')
_SES_RECIPIENT: Final = re.compile(r'\{[^{}]*?"emailAddress"\s*:\s*"([^"]+)"[^{}]*\}')
_JSON_STRING: Final = r'\s*:\s*"((?:[^"\\]|\\.)*)"'
_SES_STATUS: Final = re.compile(r'"status"' + _JSON_STRING)
_SES_DIAGNOSTIC: Final = re.compile(r'"diagnosticCode"' + _JSON_STRING)
_SES_DETAILS: Final = re.compile(r'"(?:bounceType|bounceSubType|delayType)"' + _JSON_STRING)
_SES_FEEDBACK_TYPE: Final = re.compile(r'"complaintFeedbackType"' + _JSON_STRING)

JsonObject = Mapping[str, object]


def ses_report(text: str) -> BounceReport | None:
    """An SES bounce, complaint, delay or delivery notification, bare or in an SNS envelope;
    None when ``text`` is none of these."""
    notification = _notification(text)
    if notification is None:
        return _scanned(text.replace('\\"', '"'))
    kind = next(filter(None, (_text(notification, f) for f in _KIND_FIELDS)), "").lower()
    if kind == "delivery":
        return BounceReport("dsn", ())
    if kind == "complaint":
        complaint = _object(notification, "complaint")
        complained = [
            address(_text(each, "emailAddress"))
            for each in _objects(complaint, "complainedRecipients")
        ]
        feedback = _text(complaint, "complaintFeedbackType") or "abuse"
        return feedback_report([each for each in complained if each], feedback, "")
    if kind not in _FAILED_RECIPIENTS:
        return None
    field, recipients = _FAILED_RECIPIENTS[kind]
    details = _object(notification, field)
    why = " ".join(filter(None, (_text(details, name) for name in _KIND_DETAILS)))
    failures = [
        Failure(
            address(_text(each, "emailAddress")),
            DIAGNOSTIC_TYPE.sub("", _text(each, "diagnosticCode")) or why,
            _text(each, "status"),
        )
        for each in _objects(details, recipients)[:MAX_FACTS]
    ]
    return BounceReport("dsn", tuple(facts(failures, "")))


def _notification(text: str) -> JsonObject | None:
    """The SES notification ``text`` holds, unwrapped from an SNS envelope; None when ``text``
    holds no JSON object that names its kind."""
    found = _first_object(text)
    if found is not None and found.get("Type") == _ENVELOPE_TYPE:
        message = found.get("Message")
        found = _first_object(message) if isinstance(message, str) else None
    if found is None or not any(isinstance(found.get(f), str) for f in _KIND_FIELDS):
        return None
    return found


def _first_object(text: str) -> JsonObject | None:
    start = text.find("{")
    if start == -1:
        return None
    try:
        found, _ = _DECODER.raw_decode(text, start)
    except (ValueError, RecursionError):  # not JSON, cut short, or nested beyond reason
        return None
    return found if isinstance(found, dict) else None


def _object(value: JsonObject, name: str) -> JsonObject:
    found = value.get(name)
    return found if isinstance(found, dict) else {}


def _objects(value: JsonObject, name: str) -> list[JsonObject]:
    found = value.get(name)
    return [each for each in found if isinstance(each, dict)] if isinstance(found, list) else []


def _text(value: JsonObject, name: str) -> str:
    found = value.get(name)
    return found if isinstance(found, str) else ""


def _scanned(text: str) -> BounceReport | None:
    """The same notification read field by field from text that is not valid JSON."""
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
    if notification not in _FAILED_RECIPIENTS:
        return None
    why = " ".join(_json_text(m) for m in _SES_DETAILS.finditer(text))
    failures = [
        Failure(
            address(raw),
            DIAGNOSTIC_TYPE.sub("", _json_text(_SES_DIAGNOSTIC.search(obj))) or why,
            _json_text(_SES_STATUS.search(obj)),
        )
        for raw, obj in recipients[:MAX_FACTS]
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
