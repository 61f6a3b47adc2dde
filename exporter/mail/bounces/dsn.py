"""RFC 3464 delivery reports: the per-recipient field groups, and who failed in them."""

from __future__ import annotations

import re
from typing import Final

from exporter.mail.bounces.report import MAX_FACTS, Failure
from exporter.mail.bounces.text import ADDRESS, address

# Delivery-report fields (RFC 3464) that may also appear inside a notification's text.
_DSN_FIELDS: Final = frozenset(
    {
        "final-recipient",
        "original-recipient",
        "action",
        "status",
        "diagnostic-code",
        "remote-mta",
        "last-attempt-date",
        "will-retry-until",
        "x-actual-recipient",
        "reporting-mta",
        "arrival-date",
        "received-from-mta",
        "x-postfix-sender",
        "x-postfix-queue-id",
        "original-envelope-id",
    }
)
_RECIPIENT_FIELDS: Final = ("final-recipient", "original-recipient", "x-actual-recipient")
_NOT_FAILED: Final = frozenset({"delivered", "relayed", "expanded"})
_MAX_FIELD_LINES: Final = 64
_DSN_LINE: Final = re.compile(r"^([A-Za-z][A-Za-z0-9-]*)[ \t]*:[ \t]*(.*)$")
DIAGNOSTIC_TYPE: Final = re.compile(r"^[ \t]*smtp[ \t]*;[ \t]*", re.IGNORECASE)


def dsn_groups(text: str, *, embedded: bool) -> list[dict[str, str]]:
    """RFC 3464 field groups, first value of each field; ``embedded`` reads only the known
    fields out of free text, where a line of prose ends a group."""
    groups: list[dict[str, list[str]]] = []
    current: dict[str, list[str]] = {}
    value: list[str] | None = None  # the field that continuation lines extend
    for line in text.split("\n"):
        if not line.strip():
            groups.append(current)
            current, value = {}, None
            continue
        if line[0] in " \t" and value is not None:
            if len(value) < _MAX_FIELD_LINES:
                value.append(line.strip())
            continue
        match = _DSN_LINE.match(line.strip() if embedded else line)
        name = match.group(1).lower() if match else ""
        if match is None or (embedded and name not in _DSN_FIELDS):
            if embedded:
                groups.append(current)
                current = {}
            value = None
            continue
        if name in current and name in _RECIPIENT_FIELDS:  # a group with no blank line before
            groups.append(current)
            current = {}
        value = current.setdefault(name, [match.group(2).strip()])
    groups.append(current)
    return [{name: " ".join(lines) for name, lines in group.items()} for group in groups if group]


def names_recipient(groups: list[dict[str, str]]) -> bool:
    """Whether any group names a recipient address a reader can use."""
    return any(ADDRESS.search(g.get(name, "")) for g in groups for name in _RECIPIENT_FIELDS)


def failures_from_groups(groups: list[dict[str, str]]) -> list[Failure]:
    """One failure per recipient whose delivery the report says did not succeed."""
    failures: dict[str, Failure] = {}
    for group in groups:
        verb = (group.get("action", "").split() or [""])[0].lower()
        status = (group.get("status", "").split() or [""])[0]
        if verb in _NOT_FAILED or (not verb and status.startswith("2.")):
            continue
        recipient = next(filter(None, (address(group.get(n, "")) for n in _RECIPIENT_FIELDS)), "")
        if recipient and recipient not in failures:
            diagnostic = DIAGNOSTIC_TYPE.sub("", group.get("diagnostic-code", ""))
            host = _remote_host(group.get("remote-mta", ""))
            failures[recipient] = Failure(recipient, diagnostic, status, host=host)
            if len(failures) >= MAX_FACTS:
                break
    return list(failures.values())


def _remote_host(field: str) -> str:
    """The host name of a Remote-MTA field (RFC 3464 §2.3.5: ``dns; mx.example.com``)."""
    kind, _, name = field.partition(";")
    if kind.strip().lower() != "dns":
        return ""
    return (name.split() or [""])[0].strip("[]").rstrip(".").lower()


def is_report_field(line: str) -> bool:
    """Whether ``line`` is a delivery-report field, as notices quote them in their text."""
    match = _DSN_LINE.match(line.strip()) if ":" in line else None
    return match is not None and match.group(1).lower() in _DSN_FIELDS
