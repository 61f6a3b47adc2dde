"""Addresses in a bounce's free text, and text folded for a log line."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

from exporter.mail.bounces.report import MAX_DESCRIPTION

# Bounded repeats (RFC 5321 limits a local part to 64 octets) keep every scan linear.
ADDR: Final = r"[\w.!#$%&'*+/=?^`{|}~-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63}){1,16}"
ADDRESS: Final = re.compile(ADDR)

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
