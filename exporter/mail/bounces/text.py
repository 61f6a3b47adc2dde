"""Addresses, status and reply codes in a bounce's free text, and text folded for a log line."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

from exporter.mail.bounces.report import MAX_DESCRIPTION
from exporter.mail.smtp import parse_enhanced_status

# Bounded repeats (RFC 5321 limits a local part to 64 octets) keep every scan linear.
ADDR: Final = r"[\w.!#$%&'*+/=?^`{|}~-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63}){1,16}"
ADDRESS: Final = re.compile(ADDR)
REPLY_CODE: Final = re.compile(r"(?<![\w.#/=:+-])([245][0-5]\d)(?![\w.]|-\d{3})")
ENHANCED: Final = re.compile(r"(?<![\w.])([245])\.(\d{1,3})\.(\d{1,3})(?![\w]|\.\d)")

# The status a server put beside its own reply code ("550 5.7.1", "550-'5.7.1") says more than
# one a relay wrote around it ("5.1.0 - Unknown address error 550-'5.7.1 ... denied'").
_REPLY_STATUS: Final = re.compile(
    r"(?<![\w.])[245]\d\d[ -]['\"]?([245]\.\d{1,3}\.\d{1,3})(?![\w]|\.\d)"
)

# Control characters (bar whitespace, which folding handles) have no place in a log line.
_CONTROLS: Final = dict.fromkeys(
    c for c in (*range(32), *range(127, 160)) if chr(c) not in "\t\n\r\x0b\x0c"
)


def fold(text: str, limit: int = MAX_DESCRIPTION) -> str:
    """Whitespace folded to single spaces, control characters dropped, at most ``limit``."""
    return " ".join(text[: limit * 4].translate(_CONTROLS).split())[:limit]


def address(text: str) -> str:
    """The first address in ``text``, domain lowercased; "" when there is none."""
    match = ADDRESS.search(text)
    if match is None:
        return ""
    local, _, domain = match.group(0).rpartition("@")
    return f"{local.strip('.')}@{domain.lower()}"


def addresses(values: Iterable[str]) -> list[str]:
    """Every address in ``values``, once each, in order."""
    found: dict[str, None] = {}
    for value in values:
        for match in ADDRESS.finditer(value):
            found.setdefault(address(match.group(0)))
    return [each for each in found if each]


def enhanced_in(text: str) -> str:
    """The enhanced status code ``text`` gives, preferring one beside a reply code."""
    match = _REPLY_STATUS.search(text)
    found = match.group(1) if match else ""
    if not found:
        match = ENHANCED.search(text)
        found = match.group(0) if match else ""
    status = parse_enhanced_status(found)
    return str(status) if status is not None else ""


def reply_code_in(text: str) -> str:
    """The first 4xx/5xx reply code in ``text``; a 2xx only when there is no other (a greeting
    quoted before the refusal is not the answer that failed the delivery)."""
    codes = REPLY_CODE.findall(text)
    return next((code for code in codes if code[0] != "2"), codes[0] if codes else "")
