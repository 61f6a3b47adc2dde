"""Recipient domains: normalizing them, and keeping the ``domain`` label bounded.

A webhook receiver on the public internet sees whatever recipient domains its senders mail
to. Giving each its own label value would let one list import (or one attacker) grow the
series count without limit, so the label takes a fixed set of major mailbox providers and
the domains of ``--metrics.domains-file``, then the first ``limit`` other domains seen, and
folds everything after that into ``other``. A domain that cannot exist in the DNS (see
:data:`IMPOSSIBLE`) never takes one of those ``limit`` slots, so junk cannot squat them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
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


#: How many normalized domains are remembered: a list mails a few thousand domains, most of
#: them over and over, and the IDNA and shape checks cost more than the lookup.
_MAX_NORMALIZED: Final = 4096


@lru_cache(maxsize=_MAX_NORMALIZED)  # an invalid domain raises, and is not remembered
def normalize_domain(raw: str) -> str:
    """Lowercase, IDNA-encode (UTS #46) and drop the trailing dot of a recipient domain."""
    return _normalize(raw)


def _normalize(raw: str) -> str:
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


# --- Domains that can take a label value ------------------------------------------------------

# A host name label (RFC 1123 section 2.1, RFC 3696 section 2): letters, digits and hyphens,
# not starting or ending with a hyphen, 1 to 63 characters.
_HOST_LABEL: Final = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
# A top-level label: alphabetic (RFC 1123 section 2.1, RFC 3696 section 2), or an IDNA
# A-label for an internationalized top-level domain (RFC 5890 section 2.3.2.1).
_TOP_LABEL: Final = re.compile(r"[a-z]{1,63}|xn--[a-z0-9-]{1,59}")


def _valid_a_labels(labels: list[str]) -> bool:
    for label in labels:
        if label.startswith("xn--"):
            try:
                idna.decode(label)
            except (idna.IDNAError, UnicodeError):
                return False
    return True


#: Why a normalized recipient domain cannot exist in the DNS as a mail domain, each with its
#: source, checked in order. Such a domain is still accepted (the event is valid and counted)
#: but never takes a ``domain`` label value of its own: it counts as ``other``, not as an
#: overflow of the cap. Each check is given the domain and its labels.
IMPOSSIBLE: Final[tuple[tuple[str, Callable[[str, list[str]], bool], str], ...]] = (
    (
        "an address literal names a host, not a domain",
        lambda domain, labels: domain.startswith("["),
        "RFC 5321 section 4.1.3",
    ),
    (
        "a single label is not a fully-qualified domain name",
        lambda domain, labels: len(labels) < 2,
        "RFC 5321 section 2.3.5",
    ),
    (
        "a host name label has only letters, digits and inner hyphens (no underscores)",
        lambda domain, labels: not all(_HOST_LABEL.fullmatch(label) for label in labels),
        "RFC 1123 section 2.1, RFC 3696 section 2",
    ),
    (
        "the top-level label is alphabetic (or an IDNA A-label)",
        lambda domain, labels: _TOP_LABEL.fullmatch(labels[-1]) is None,
        "RFC 1123 section 2.1, RFC 3696 section 2",
    ),
    (
        "an xn-- label is not a valid IDNA A-label",
        lambda domain, labels: not _valid_a_labels(labels),
        "RFC 5890 section 2.3.2.1, RFC 5891 section 5.4",
    ),
    (
        ".invalid and .localhost never name a mail domain",
        lambda domain, labels: labels[-1] in {"invalid", "localhost"},
        "RFC 6761 sections 6.3 and 6.4",
    ),
)


def impossible(domain: str) -> str | None:
    """Why the normalized ``domain`` cannot exist in the DNS, or ``None`` when it can."""
    labels = domain.split(".")
    for reason, check, source in IMPOSSIBLE:
        if check(domain, labels):
            return f"{reason} ({source})"
    return None


# --- The domains file ---------------------------------------------------------------------------


def parse_domains(lines: Iterable[str], source: str) -> tuple[str, ...]:
    """The domains of a ``--metrics.domains-file``: one per line, ``#`` starts a comment.

    Each is normalized like a recipient domain. A line that is not a domain that can exist
    in the DNS raises ``ValueError`` naming ``source`` and the line number, so a typo is
    refused at start instead of silently never matching.
    """
    domains: dict[str, None] = {}
    for number, line in enumerate(lines, start=1):
        text = line.partition("#")[0].strip()
        if not text:
            continue
        try:
            domain = normalize_domain(text)
        except InvalidDomainError as exc:
            raise ValueError(f"{source}:{number}: {text[:80]!r} is not a domain: {exc}") from None
        why = impossible(domain)
        if why is not None:
            raise ValueError(f"{source}:{number}: {text[:80]!r} cannot be a mail domain: {why}")
        domains[domain] = None
    return tuple(domains)


def read_domains_file(path: Path) -> tuple[str, ...]:
    """:func:`parse_domains` of a file; ``ValueError`` when it cannot be read or is invalid."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: cannot be read: {exc}") from None
    return parse_domains(text.splitlines(), str(path))


# --- The label ------------------------------------------------------------------------------------


class DomainLabels:
    """Hands out ``domain`` label values under a fixed cap.

    Providers and ``listed`` domains (``--metrics.domains-file``) always keep their own value
    and do not count against ``limit``; the first ``limit`` other domains that can exist in
    the DNS claim one each, for the life of the process (a value that later became ``other``
    would split its series). Domains that cannot exist are ``other`` without overflowing.
    """

    __slots__ = ("_claimed", "_fixed", "_labels", "_limit", "_past_cap")

    def __init__(
        self,
        limit: int,
        providers: Mapping[str, Provider] = PROVIDERS,
        listed: Iterable[str] = (),
    ) -> None:
        if limit < 0:
            raise ValueError("domain limit must be zero or more")
        self._limit = limit
        fixed = dict(providers)
        for domain in listed:
            fixed.setdefault(domain, Provider.OTHER)
        self._fixed: Mapping[str, Provider] = MappingProxyType(fixed)
        # A claimed domain's provider is fixed when it claims its value, so its series never
        # split; a lookup that learns a custom domain's host (by MX) can fill it in here.
        self._claimed: dict[str, Provider] = {}
        #: The labels of every fixed and claimed domain, made once each.
        self._labels: dict[str, RecipientLabels] = {
            domain: RecipientLabels(domain, provider) for domain, provider in fixed.items()
        }
        #: Domains seen that have no value of their own (bounded), and whether each one
        #: overflowed the cap (``False``: it cannot exist in the DNS, or is reserved).
        self._past_cap: dict[str, bool] = {}

    @property
    def fixed(self) -> Mapping[str, Provider]:
        """Domains that always have their own value (providers, then listed ones), for
        creating their series at start."""
        return self._fixed

    def label(self, domain: str) -> tuple[RecipientLabels, bool]:
        """The labels for ``domain``, and whether it overflowed the cap into ``other``."""
        labels = self._labels.get(domain)
        if labels is not None:
            return labels, False
        overflowed = self._past_cap.get(domain)
        if overflowed is not None:
            return OVERFLOW, overflowed
        if domain in _RESERVED or impossible(domain) is not None:
            overflowed = False
        elif len(self._claimed) < self._limit:
            self._claimed[domain] = Provider.OTHER
            labels = self._labels[domain] = RecipientLabels(domain, Provider.OTHER)
            return labels, False
        else:
            overflowed = True
        if len(self._past_cap) >= _MAX_NORMALIZED:
            self._past_cap.clear()
        self._past_cap[domain] = overflowed
        return OVERFLOW, overflowed

    @property
    def claimed(self) -> int:
        """How many domains (beyond providers and listed ones) hold their own label value."""
        return len(self._claimed)
