"""Recipient domains: normalizing them, and keeping the ``domain`` label bounded.

A webhook receiver on the public internet sees whatever recipient domains its senders mail
to. Giving each its own label value would let one list import (or one attacker) grow the
series count without limit, so the label takes a fixed set of major mailbox providers, then
the first ``limit`` other domains seen, and folds everything after that into ``other``.
"""

from __future__ import annotations

import re
from typing import Final

import idna

#: Domains that always get their own label value: the large mailbox providers whose
#: blocking or throttling a sender must see at once. Extend it here; the README's series
#: budget grows by (states x code classes + 3) per domain added.
PROVIDER_DOMAINS: Final[tuple[str, ...]] = (
    # Google
    "gmail.com",
    "googlemail.com",
    # Microsoft
    "outlook.com",
    "hotmail.com",
    "live.com",
    "msn.com",
    "hotmail.co.uk",
    "hotmail.fr",
    "live.nl",
    # Yahoo / AOL
    "yahoo.com",
    "yahoo.co.uk",
    "yahoo.fr",
    "ymail.com",
    "aol.com",
    # Apple
    "icloud.com",
    "me.com",
    "mac.com",
    # Europe
    "gmx.de",
    "gmx.net",
    "web.de",
    "t-online.de",
    "orange.fr",
    "free.fr",
    "laposte.net",
    "libero.it",
    "ziggo.nl",
    "kpnmail.nl",
    "proton.me",
    "protonmail.com",
    # Elsewhere
    "comcast.net",
    "att.net",
    "mail.ru",
    "yandex.ru",
    "qq.com",
    "163.com",
    "naver.com",
)

#: The label value for every domain past the cap.
OTHER: Final = "other"

_MAX_DOMAIN_LENGTH: Final = 253
# Letters, digits, hyphens and underscores (seen in real MX-less test domains) per label, or an
# address literal such as [192.0.2.1] / [IPv6:2001:db8::1] (RFC 5321 section 4.1.3).
_LABEL: Final = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_ASCII_DOMAIN: Final = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_ADDRESS_LITERAL: Final = re.compile(r"\[[0-9a-f:.]+\]|\[ipv6:[0-9a-f:.]+\]")


class InvalidDomainError(ValueError):
    """The text after the ``@`` is not a domain name or address literal."""


def normalize_domain(raw: str) -> str:
    """Lowercase, IDNA-encode (UTS #46) and drop the trailing dot of a recipient domain."""
    domain = raw.strip().rstrip(".").lower()
    if not domain:
        raise InvalidDomainError("empty domain")
    if not domain.isascii():
        try:
            domain = idna.encode(domain, uts46=True).decode("ascii")
        except idna.IDNAError as exc:
            raise InvalidDomainError(f"not a valid internationalized domain name: {exc}") from exc
    if len(domain) > _MAX_DOMAIN_LENGTH:
        raise InvalidDomainError(f"longer than {_MAX_DOMAIN_LENGTH} characters")
    if _ASCII_DOMAIN.fullmatch(domain) is None and _ADDRESS_LITERAL.fullmatch(domain) is None:
        raise InvalidDomainError("not a domain name or address literal")
    return domain


def domain_of(address: str) -> str | None:
    """The normalized domain of an address, or ``None`` when it has no valid one."""
    _, at, raw = address.rpartition("@")
    if not at:
        return None
    try:
        return normalize_domain(raw)
    except InvalidDomainError:
        return None


class DomainLabels:
    """Hands out ``domain`` label values under a fixed cap.

    Providers always keep their own value; the first ``limit`` other domains claim one each,
    for the life of the process (a value that later became ``other`` would split its series).
    """

    __slots__ = ("_claimed", "_limit", "_providers")

    def __init__(self, limit: int, providers: tuple[str, ...] = PROVIDER_DOMAINS) -> None:
        if limit < 0:
            raise ValueError("domain limit must be zero or more")
        self._limit = limit
        self._providers = frozenset(providers)
        self._claimed: set[str] = set()

    def label(self, domain: str) -> tuple[str, bool]:
        """The label value for ``domain``, and whether it overflowed into ``other``."""
        if domain in self._providers or domain in self._claimed:
            return domain, False
        if len(self._claimed) < self._limit and domain != OTHER:
            self._claimed.add(domain)
            return domain, False
        return OTHER, True

    @property
    def claimed(self) -> int:
        """How many non-provider domains hold their own label value."""
        return len(self._claimed)
