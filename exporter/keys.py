"""SMTPeter's signing keys: one pinned PEM file, or DNS TXT records with a bounded cache.

SMTPeter publishes each public key as a DKIM-style TXT record at the signature's keyId
(``<selector>._domainkey.copernica.com``) and rotates it monthly. :class:`DnsKeys` looks a
key up the first time a keyId is seen and keeps it for its DNS TTL. Anyone can send a
request naming a keyId, so every resource a lookup takes is bounded:

- a found key is kept for its TTL, clamped to [``min_ttl``, ``max_ttl``] (1 minute to
  1 hour: a short TTL cannot make every request a lookup, a removed key is dropped within
  the hour); at most ``max_keys`` keys, least recently used dropped first;
- an answer without a usable key (NXDOMAIN, no TXT, no RSA key in it) is remembered for
  ``negative_ttl`` (1 minute) in a separate, bounded table, so repeating a bad keyId costs
  nothing and a flood of made-up keyIds cannot push out the real keys;
- concurrent requests for one keyId share one lookup (single-flight); at most
  ``max_in_flight`` lookups run at once, and a keyId beyond that is answered "unavailable"
  at once (SMTPeter retries) rather than queued;
- each lookup has a deadline (``lookup_timeout``, 5 s); requests for cached keys never wait
  for a lookup of another keyId;
- when a lookup fails (timeout, SERVFAIL) and the key's TTL has passed, the last key found
  is still used for up to ``stale_for`` (a day; keys rotate monthly) and the lookup retried
  every ``retry_interval`` (RFC 8767's serve-stale). An answer saying the key is gone ends
  that at once.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

import dns.asyncresolver
import dns.exception
import dns.inet
import dns.nameserver
import dns.rdtypes.txtbase
import dns.resolver
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_public_key

from exporter.errors import KeyLookup
from exporter.logs import log
from exporter.settings import ListenAddress

#: RSA keys shorter than this are refused: RFC 8301 forbids them for DKIM.
MIN_KEY_BITS: Final = 1024


class UnknownKey(Exception):  # noqa: N818 - an answer, not a failure of ours
    """No usable key is published at the keyId."""


class KeyUnavailable(Exception):  # noqa: N818 - an answer, not a failure of ours
    """The key cannot be looked up right now; asking again later may work."""


class KeyStore(Protocol):
    """Where the public key of a keyId comes from."""

    async def key(self, key_id: str) -> RSAPublicKey:
        """The key; :class:`UnknownKey` or :class:`KeyUnavailable` when there is none."""
        ...


def load_pem_key(data: bytes) -> RSAPublicKey:
    """An RSA public key from PEM (SubjectPublicKeyInfo or PKCS#1); ``ValueError`` if not."""
    try:
        key = load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise ValueError(f"not a PEM public key: {exc}") from None
    if not isinstance(key, RSAPublicKey) or key.key_size < MIN_KEY_BITS:
        raise ValueError(f"not an RSA public key of at least {MIN_KEY_BITS} bits")
    return key


@dataclass(frozen=True, slots=True)
class PinnedKey:
    """One key for every keyId (``--smtpeter.public-key-file``): no DNS at all."""

    public_key: RSAPublicKey

    @classmethod
    def from_file(cls, path: Path) -> PinnedKey:
        try:
            return cls(load_pem_key(path.read_bytes()))
        except ValueError as exc:
            raise ValueError(f"--smtpeter.public-key-file {path}: {exc}") from None

    async def key(self, key_id: str) -> RSAPublicKey:
        return self.public_key


def key_from_txt(records: Iterable[Sequence[bytes]]) -> RSAPublicKey | None:
    """The first usable RSA key among TXT records, each given as its character-strings.

    A record is read DKIM style (RFC 6376 section 3.6.1): ``v=DKIM1`` when present,
    ``k=rsa`` (the default), and ``p=`` the base64 of a SubjectPublicKeyInfo, or of a bare
    RSAPublicKey as some publishers write; a long record arrives split into several strings
    and ``p=`` may hold whitespace. An empty ``p=`` is a revoked key.
    """
    for strings in records:
        try:
            text = b"".join(strings).decode("ascii")
        except UnicodeDecodeError:
            continue
        tags = _dkim_tags(text)
        if tags is None or tags.get("v", "DKIM1") != "DKIM1" or tags.get("k", "rsa") != "rsa":
            continue
        key = _rsa_key(tags.get("p", ""))
        if key is not None:
            return key
    return None


def _dkim_tags(text: str) -> dict[str, str] | None:
    tags: dict[str, str] = {}
    for item in text.split(";"):
        name, equals, value = item.partition("=")
        name = name.strip()
        if not name and not equals:
            continue  # a trailing ";" or an empty item
        if not equals or not name or name in tags:
            return None
        tags[name] = value.strip()
    return tags


def _rsa_key(text: str) -> RSAPublicKey | None:
    try:
        der = base64.b64decode("".join(text.split()), validate=True)
        # cryptography reads a bare PKCS#1 RSAPublicKey here too.
        key = load_der_public_key(der)
    except (binascii.Error, ValueError, UnsupportedAlgorithm):
        return None
    if not isinstance(key, RSAPublicKey) or key.key_size < MIN_KEY_BITS:
        return None
    return key


#: A DNS name as a keyId must be: labels of letters, digits, ``-`` and ``_`` (RFC 1035,
#: RFC 6376's ``_domainkey``), at most 63 characters each and 253 in all.
_DNS_NAME: Final = re.compile(r"(?=.{1,253}\Z)(?:[A-Za-z0-9_-]{1,63}\.)+[A-Za-z0-9-]{1,63}")


def is_dns_name(text: str) -> bool:
    """Whether ``text`` can be looked up as a DNS name (checked before any lookup)."""
    return _DNS_NAME.fullmatch(text) is not None


@dataclass(frozen=True, slots=True)
class CacheLimits:
    """How long keys are kept and how much a flood of keyIds can cost; see the module."""

    min_ttl: float = 60.0
    max_ttl: float = 3600.0
    negative_ttl: float = 60.0
    stale_for: float = 86400.0
    retry_interval: float = 30.0
    max_keys: int = 64
    max_negative: int = 4096
    max_in_flight: int = 16
    lookup_timeout: float = 5.0


@dataclass(frozen=True, slots=True)
class _Cached:
    key: RSAPublicKey
    #: Monotonic time after which the key is looked up again.
    fresh_until: float
    #: Monotonic time after which a failing lookup no longer keeps the key in use.
    stale_until: float


@dataclass(frozen=True, slots=True)
class _Failure:
    """A lookup's failure, returned (not raised) so the shared task never holds an
    exception nobody retrieves; each waiting request raises its own."""

    unavailable: bool
    reason: str

    def error(self) -> Exception:
        return KeyUnavailable(self.reason) if self.unavailable else UnknownKey(self.reason)


def resolver_for(nameserver: ListenAddress | None) -> dns.asyncresolver.Resolver:
    """A resolver asking ``nameserver`` (an IP address and port), or the system's."""
    if nameserver is None:
        return dns.asyncresolver.Resolver()
    if not dns.inet.is_address(nameserver.host):
        raise ValueError(f"--smtpeter.dns-nameserver {nameserver}: the host must be an IP address")
    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers = [dns.nameserver.Do53Nameserver(nameserver.host, nameserver.port)]
    return resolver


class DnsKeys:
    """Keys looked up as TXT records at their keyId, cached within the bounds of the module."""

    def __init__(
        self,
        nameserver: ListenAddress | None = None,
        *,
        on_lookup: Callable[[KeyLookup], None] = lambda outcome: None,
        limits: CacheLimits = CacheLimits(),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # A configured nameserver is checked at start; the system's configuration is read at
        # the first lookup, so a machine without /etc/resolv.conf still starts.
        self._resolver = resolver_for(nameserver) if nameserver is not None else None
        self._on_lookup = on_lookup
        self._limits = limits
        self._clock = clock
        self._keys: OrderedDict[str, _Cached] = OrderedDict()
        self._negative: OrderedDict[str, float] = OrderedDict()
        self._in_flight: dict[str, asyncio.Task[RSAPublicKey | _Failure]] = {}

    async def key(self, key_id: str) -> RSAPublicKey:
        name = key_id.lower()
        if not is_dns_name(name):
            raise UnknownKey("the keyId is not a DNS name")
        now = self._clock()
        cached = self._keys.get(name)
        if cached is not None and now < cached.fresh_until:
            self._keys.move_to_end(name)
            return cached.key
        if self._negative.get(name, now) > now:
            raise UnknownKey(f"no signing key is published at {name}")
        task = self._in_flight.get(name)
        if task is None:
            if len(self._in_flight) >= self._limits.max_in_flight:
                raise KeyUnavailable("too many signing-key lookups are running")
            task = asyncio.create_task(self._fetch(name), name=f"signing key {name}")
            self._in_flight[name] = task
        # Shielded: a request that gives up does not cancel the lookup others wait for.
        found = await asyncio.shield(task)
        if isinstance(found, _Failure):
            raise found.error()
        return found

    async def _fetch(self, name: str) -> RSAPublicKey | _Failure:
        try:
            return await self._lookup(name)
        finally:
            del self._in_flight[name]

    async def _lookup(self, name: str) -> RSAPublicKey | _Failure:
        timeout = self._limits.lookup_timeout
        try:
            if self._resolver is None:
                self._resolver = resolver_for(None)
            async with asyncio.timeout(timeout):
                answer = await self._resolver.resolve(name, "TXT", lifetime=timeout, search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return self._not_found(name, "there is no TXT record")
        except (TimeoutError, dns.exception.DNSException, OSError) as exc:
            return self._failed(name, exc)
        key = key_from_txt(
            rdata.strings for rdata in answer if isinstance(rdata, dns.rdtypes.txtbase.TXTBase)
        )
        if key is None:
            return self._not_found(name, "its TXT records hold no usable RSA key")
        ttl = float(answer.rrset.ttl) if answer.rrset is not None else 0.0
        ttl = min(max(ttl, self._limits.min_ttl), self._limits.max_ttl)
        now = self._clock()
        self._keys[name] = _Cached(key, now + ttl, now + ttl + self._limits.stale_for)
        self._keys.move_to_end(name)
        while len(self._keys) > self._limits.max_keys:
            self._keys.popitem(last=False)
        self._on_lookup(KeyLookup.FOUND)
        log.info("signing_key_found", key_id=name, ttl_seconds=ttl)
        return key

    def _not_found(self, name: str, why: str) -> _Failure:
        self._keys.pop(name, None)
        self._negative[name] = self._clock() + self._limits.negative_ttl
        self._negative.move_to_end(name)
        while len(self._negative) > self._limits.max_negative:
            self._negative.popitem(last=False)
        self._on_lookup(KeyLookup.NOT_FOUND)
        log.debug("signing_key_not_found", key_id=name, reason=why)
        return _Failure(unavailable=False, reason=f"no signing key is published at {name}: {why}")

    def _failed(self, name: str, exc: BaseException) -> RSAPublicKey | _Failure:
        self._on_lookup(KeyLookup.ERROR)
        error = str(exc) or type(exc).__name__
        now = self._clock()
        stale = self._keys.get(name)
        if stale is not None and now < stale.stale_until:
            self._keys[name] = _Cached(
                stale.key, now + self._limits.retry_interval, stale.stale_until
            )
            log.warning("signing_key_lookup_failed", key_id=name, error=error, using="stale key")
            return stale.key
        log.warning("signing_key_lookup_failed", key_id=name, error=error)
        return _Failure(unavailable=True, reason=f"the signing key {name} cannot be looked up now")
