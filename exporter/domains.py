"""Recipient domains: normalizing them, and keeping the ``domain`` label bounded.

A webhook receiver on the public internet sees whatever recipient domains its senders mail
to. Giving each its own label value would let one list import (or one attacker) grow the
series count without limit, so the label takes a fixed set of major mailbox providers, then
the first ``limit`` other domains seen, and folds everything after that into ``other``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Final, NamedTuple

import idna


class Provider(StrEnum):
    """The ``provider`` label: who runs the mailbox behind a recipient domain.

    Operators ask "is Microsoft blocking us?", not "is hotmail.co.uk?": a provider answers
    for all of its domains with one set of servers, rules and postmaster pages.
    """

    GOOGLE = "google"
    MICROSOFT = "microsoft"
    #: Yahoo Mail and AOL Mail, one platform (Yahoo Inc.), which also receives AT&T's
    #: consumer domains (their MX records point at Yahoo's servers since mid-2025).
    YAHOO = "yahoo"
    APPLE = "apple"
    #: GMX and WEB.DE, one platform (1&1 Mail & Media).
    GMX = "gmx"
    TELEKOM = "telekom"
    ORANGE = "orange"
    FREE = "free"
    LAPOSTE = "laposte"
    LIBERO = "libero"
    ZIGGO = "ziggo"
    KPN = "kpn"
    PROTON = "proton"
    COMCAST = "comcast"
    MAILRU = "mailru"
    YANDEX = "yandex"
    QQ = "qq"
    NETEASE = "netease"
    NAVER = "naver"
    #: Every domain not in :data:`PROVIDERS`, and the ``other``/``unknown`` domain values.
    OTHER = "other"


#: Domains that always get their own label value, and the provider that runs each: the
#: large mailbox providers whose blocking or throttling a sender must see at once. Extend
#: it here; the README's series budget grows by the per-domain figure for each domain added.
#: (A domain hosted by one of these under its own name is ``other`` until it is listed.)
PROVIDERS: Final[Mapping[str, Provider]] = MappingProxyType(
    {
        "gmail.com": Provider.GOOGLE,
        "googlemail.com": Provider.GOOGLE,
        "outlook.com": Provider.MICROSOFT,
        "hotmail.com": Provider.MICROSOFT,
        "live.com": Provider.MICROSOFT,
        "msn.com": Provider.MICROSOFT,
        "hotmail.co.uk": Provider.MICROSOFT,
        "hotmail.fr": Provider.MICROSOFT,
        "live.nl": Provider.MICROSOFT,
        "yahoo.com": Provider.YAHOO,
        "yahoo.co.uk": Provider.YAHOO,
        "yahoo.fr": Provider.YAHOO,
        "ymail.com": Provider.YAHOO,
        "aol.com": Provider.YAHOO,
        "icloud.com": Provider.APPLE,
        "me.com": Provider.APPLE,
        "mac.com": Provider.APPLE,
        "gmx.de": Provider.GMX,
        "gmx.net": Provider.GMX,
        "web.de": Provider.GMX,
        "t-online.de": Provider.TELEKOM,
        "orange.fr": Provider.ORANGE,
        "free.fr": Provider.FREE,
        "laposte.net": Provider.LAPOSTE,
        "libero.it": Provider.LIBERO,
        "ziggo.nl": Provider.ZIGGO,
        "kpnmail.nl": Provider.KPN,
        "proton.me": Provider.PROTON,
        "protonmail.com": Provider.PROTON,
        "comcast.net": Provider.COMCAST,
        "att.net": Provider.YAHOO,
        "mail.ru": Provider.MAILRU,
        "yandex.ru": Provider.YANDEX,
        "qq.com": Provider.QQ,
        "163.com": Provider.NETEASE,
        "naver.com": Provider.NAVER,
    }
)
PROVIDER_DOMAINS: Final[tuple[str, ...]] = tuple(PROVIDERS)


def provider_of(domain: str) -> Provider:
    """The provider behind a normalized domain; ``other`` for every unlisted domain."""
    return PROVIDERS.get(domain, Provider.OTHER)


#: The label value for every domain past the cap.
OTHER: Final = "other"
#: The label value for an event that names no recipient (a complaint without one).
UNKNOWN: Final = "unknown"
_RESERVED: Final = frozenset({OTHER, UNKNOWN})


class RecipientLabels(NamedTuple):
    """The ``domain`` and ``provider`` label values of one recipient."""

    domain: str
    provider: Provider


OVERFLOW: Final = RecipientLabels(OTHER, Provider.OTHER)
NO_RECIPIENT: Final = RecipientLabels(UNKNOWN, Provider.OTHER)

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

    def __init__(self, limit: int, providers: Mapping[str, Provider] = PROVIDERS) -> None:
        if limit < 0:
            raise ValueError("domain limit must be zero or more")
        self._limit = limit
        self._providers = providers
        # A claimed domain's provider is fixed when it claims its value, so its series never
        # split; a lookup that learns a custom domain's host (by MX) can fill it in here.
        self._claimed: dict[str, Provider] = {}

    def label(self, domain: str) -> tuple[RecipientLabels, bool]:
        """The labels for ``domain``, and whether it overflowed into ``other``."""
        provider = self._providers.get(domain)
        if provider is not None:
            return RecipientLabels(domain, provider), False
        provider = self._claimed.get(domain)
        if provider is not None:
            return RecipientLabels(domain, provider), False
        if len(self._claimed) < self._limit and domain not in _RESERVED:
            self._claimed[domain] = Provider.OTHER
            return RecipientLabels(domain, Provider.OTHER), False
        return OVERFLOW, True

    @property
    def claimed(self) -> int:
        """How many non-provider domains hold their own label value."""
        return len(self._claimed)
