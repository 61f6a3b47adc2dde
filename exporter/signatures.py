"""SMTPeter's signed headers: the Signature and Digest headers, the signing string, the check.

SMTPeter signs each webhook request the way draft-cavage-http-signatures (versions 10 to 12)
describes, with RSA-SHA256 (PKCS#1 v1.5), and sends the SHA-256 of the body in a ``Digest``
header (RFC 3230, RFC 5843). This module knows only those formats: which key to use, which
headers must be covered and what the outcome of a failure is are decided by
:mod:`exporter.auth`. Every malformed input ends in a :class:`SignatureError` (or
:class:`DigestError`), never in another exception, so a request cannot turn into a 500.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.hashes import SHA256

#: The one algorithm SMTPeter documents. ``hs2019`` (draft 12) is refused: it means "derive
#: the algorithm from the key's metadata", and a DKIM record (``k=rsa``) names neither the
#: hash nor the padding, while the draft recommends RSASSA-PSS with SHA-512 for it.
RSA_SHA256: Final = "rsa-sha256"
#: The pseudo-header naming the method and path (draft-cavage section 2.3).
REQUEST_TARGET: Final = "(request-target)"
#: The pseudo-headers of draft 11 and 12, read from the ``created`` and ``expires`` parameters.
CREATED: Final = "(created)"
EXPIRES: Final = "(expires)"
#: What a signature covers when it names no headers (draft 10, which SMTPeter follows).
DEFAULT_COVERED: Final = ("date",)


class SignatureError(ValueError):
    """The Signature header is malformed, or the request lacks what it claims to sign."""


class DigestError(ValueError):
    """The Digest header is malformed or names no algorithm we can check."""


@dataclass(frozen=True, slots=True)
class SignatureParams:
    """The parameters of one Signature header (draft-cavage section 2.1)."""

    key_id: str
    #: Lowercased; ``None`` when the header names none.
    algorithm: str | None
    #: Lowercased header names, in the order they are signed.
    covered: tuple[str, ...]
    signature: bytes
    created: int | None = None
    expires: int | None = None


#: RFC 7230 token characters: parameter names, and the values of unquoted parameters.
_TCHARS: Final = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
#: One ``name=value`` pair: commas and whitespace (a folded header's line breaks included)
#: before it are skipped, so SMTPeter's documented example, which leaves out a comma, parses.
#: A value must be followed by a separator or the end, so ``a="1"b="2"`` is refused.
_PARAMETER: Final = re.compile(
    rf'[\s,]*(?P<name>{_TCHARS})\s*=\s*(?:"(?P<quoted>(?:[^"\\]|\\.)*)"|(?P<token>{_TCHARS}))'
    r"(?=[\s,]|\Z)",
    re.DOTALL,
)
_TRAILER: Final = re.compile(r"[\s,]*")
_QUOTED_PAIR: Final = re.compile(r"\\(.)", re.DOTALL)
_INTEGER: Final = re.compile(r"[0-9]{1,12}")


def parse_signature(header: str) -> SignatureParams:
    """The parameters of a Signature header; :class:`SignatureError` when it is malformed.

    Parameters may come in any order and any case, with or without commas between them;
    unknown ones are ignored (the draft says so); a parameter given twice is refused, since
    which one counts would be a guess.
    """
    params: dict[str, str] = {}
    position = 0
    while (match := _PARAMETER.match(header, position)) is not None:
        name = match["name"].lower()
        if name in params:
            raise SignatureError(f"the Signature parameter {name} is given more than once")
        quoted = match["quoted"]
        params[name] = _QUOTED_PAIR.sub(r"\1", quoted) if quoted is not None else match["token"]
        position = match.end()
    if not _TRAILER.fullmatch(header, position):
        raise SignatureError('the Signature header is not a list of name="value" parameters')
    for required in ("keyid", "signature"):
        if not params.get(required):
            raise SignatureError(f"the Signature header has no {_NAMES[required]} parameter")
    covered = tuple(name.lower() for name in params.get("headers", "").split())
    if "headers" in params and not covered:
        raise SignatureError("the Signature header's headers parameter is empty")
    return SignatureParams(
        key_id=params["keyid"],
        algorithm=params["algorithm"].lower() if "algorithm" in params else None,
        covered=covered or DEFAULT_COVERED,
        signature=_base64(params["signature"], SignatureError, "the signature"),
        created=_integer(params, "created"),
        expires=_integer(params, "expires"),
    )


#: How error messages spell the parameters (the draft's own spelling).
_NAMES: Final = {"keyid": "keyId", "signature": "signature"}


def _integer(params: Mapping[str, str], name: str) -> int | None:
    value = params.get(name)
    if value is None:
        return None
    if not _INTEGER.fullmatch(value):
        raise SignatureError(f"the Signature parameter {name} is not a Unix time")
    return int(value)


def _base64(text: str, error: type[ValueError], what: str) -> bytes:
    """Strict base64, ignoring whitespace (the documented example folds the signature)."""
    try:
        decoded = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise error(f"{what} is not base64") from None
    if not decoded:
        raise error(f"{what} is empty")
    return decoded


def signing_string(
    params: SignatureParams,
    *,
    method: str,
    target: str,
    headers: Mapping[str, str],
) -> bytes:
    """The bytes SMTPeter signed: one ``name: value`` line per covered header.

    ``target`` is the path and query SMTPeter sent to and ``headers`` holds each header's
    value as the request carried it (several values of one header joined by ``", "``), with
    ``host`` as SMTPeter addressed it; both may differ from what the exporter sees behind a
    reverse proxy. A covered header the request lacks is a :class:`SignatureError`.
    """
    lines = []
    for name in params.covered:
        if name == REQUEST_TARGET:
            value = f"{method.lower()} {target}"
        elif name in (CREATED, EXPIRES):
            number = params.created if name == CREATED else params.expires
            if number is None:
                raise SignatureError(f"{name} is signed but the Signature header has no value")
            value = str(number)
        elif (sent := headers.get(name)) is not None:
            value = sent.strip()
        else:
            raise SignatureError(f"the signed header {name} is not in the request")
        lines.append(f"{name}: {value}")
    try:
        # aiohttp decodes header bytes with surrogateescape: this gives the bytes back.
        return "\n".join(lines).encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raise SignatureError("a signed header is not text") from None


def verify(key: RSAPublicKey, signed: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is ``key``'s RSA-SHA256 (PKCS#1 v1.5) signature of ``signed``."""
    try:
        key.verify(signature, signed, PKCS1v15(), SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True


@dataclass(frozen=True, slots=True)
class InstanceDigest:
    """One ``algorithm=value`` of a Digest header (RFC 3230 section 4.3.2)."""

    #: Lowercased (RFC 3230 names are case-insensitive).
    algorithm: str
    value: bytes


#: The algorithms we check (RFC 5843); others a sender lists beside them are skipped.
DIGEST_ALGORITHMS: Final = {"sha-256": "sha256", "sha-512": "sha512"}


def parse_digest(header: str) -> tuple[InstanceDigest, ...]:
    """The digests of a Digest header; :class:`DigestError` when one is malformed."""
    digests = []
    for item in header.split(","):
        algorithm, equals, value = item.strip().partition("=")
        if not equals or not algorithm:
            raise DigestError("the Digest header is not algorithm=base64 (SHA-256=...)")
        digests.append(
            InstanceDigest(
                algorithm.strip().lower(), _base64(value, DigestError, f"the {algorithm} digest")
            )
        )
    return tuple(digests)


def digest_matches(digests: tuple[InstanceDigest, ...], body: bytes) -> bool:
    """Whether every digest we can check matches ``body``; :class:`DigestError` if none can be."""
    checkable = [digest for digest in digests if digest.algorithm in DIGEST_ALGORITHMS]
    if not checkable:
        raise DigestError("the Digest header has no SHA-256 digest")
    return all(
        hmac.compare_digest(
            hashlib.new(DIGEST_ALGORITHMS[digest.algorithm], body).digest(), digest.value
        )
        for digest in checkable
    )


_MONTHS: Final = {
    name: number
    for number, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
        start=1,
    )
}
_TIME: Final = r"(?P<hour>[0-9]{2}):(?P<minute>[0-9]{2}):(?P<second>[0-9]{2})"
_ZONE: Final = r"(?:GMT|UTC|UT|[+-]0000|Z)"
#: The three forms RFC 7231 section 7.1.1.1 asks recipients to read, most common first.
_HTTP_DATES: Final = (
    # IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT (single-digit days tolerated)
    re.compile(
        rf"(?:[A-Za-z]{{3}},\s*)?(?P<day>[0-9]{{1,2}})\s+(?P<month>[A-Za-z]{{3}})\s+"
        rf"(?P<year>[0-9]{{4}})\s+{_TIME}\s+{_ZONE}",
        re.IGNORECASE,
    ),
    # RFC 850: Sunday, 06-Nov-94 08:49:37 GMT
    re.compile(
        rf"[A-Za-z]+,\s*(?P<day>[0-9]{{2}})-(?P<month>[A-Za-z]{{3}})-(?P<year>[0-9]{{2}})\s+"
        rf"{_TIME}\s+{_ZONE}",
        re.IGNORECASE,
    ),
    # asctime: Sun Nov  6 08:49:37 1994
    re.compile(
        rf"[A-Za-z]{{3}}\s+(?P<month>[A-Za-z]{{3}})\s+(?P<day>[0-9]{{1,2}})\s+{_TIME}\s+"
        rf"(?P<year>[0-9]{{4}})",
        re.IGNORECASE,
    ),
)


def parse_http_date(text: str) -> float | None:
    """Unix time of an HTTP date in any of RFC 7231's three forms; ``None`` if it is none."""
    for pattern in _HTTP_DATES:
        match = pattern.fullmatch(text.strip())
        if match is None:
            continue
        month = _MONTHS.get(match["month"].lower())
        year = int(match["year"])
        if len(match["year"]) == 2:
            year += 1900 if year >= 70 else 2000
        if month is None:
            return None
        try:
            when = datetime(
                year,
                month,
                int(match["day"]),
                int(match["hour"]),
                int(match["minute"]),
                # A leap second is read as the second before it.
                min(int(match["second"]), 59),
                tzinfo=UTC,
            )
        except ValueError:
            return None
        return when.timestamp()
    return None
