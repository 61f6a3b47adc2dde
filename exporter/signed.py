"""The signature mode of the authenticate step (``--auth.mode=signature``).

It checks in this order, cheapest first, so that nothing costly (hashing the body, a DNS
lookup, an RSA verification) is spent on a request that is unsigned, addressed to another
account, malformed or old:

 1. the Signature, Digest, Date and X-Copernica-ID headers are there (``missing_signature``);
 2. X-Copernica-ID is this exporter's account, exactly (``wrong_account``);
 3. the Signature header parses, its algorithm (when named) is rsa-sha256, it covers at
    least ``--auth.signed-headers`` and the request carries every header it covers; the
    signing string is built here (``bad_signature``);
 4. the keyId is a DNS name under copernica.com (``unknown_key``);
 5. Date, and the draft's ``created``/``expires`` when sent, are within
    ``--auth.max-clock-skew`` of now (``stale_date``);
 6. X-Nonce, when sent, has not been seen (``replayed``): a look-up only;
 7. Digest matches the body (``digest_mismatch``): a hash, no I/O;
 8. the key: the pinned file, or DNS through a bounded cache (``unknown_key``; 503
    ``key_unavailable`` when DNS fails);
 9. the RSA signature over the signing string (``bad_signature``);
10. X-Nonce is remembered, only now that the request is proven SMTPeter's (``replayed`` if
    a concurrent copy got there first).

Every refusal is a 401 with a ``WWW-Authenticate`` challenge (a 503 with ``Retry-After``
for an unavailable key), and says what was wrong without repeating the signature, the body
or a token.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

from exporter.auth import REALM, NonceStore
from exporter.errors import Outcome, Rejected, unauthenticated
from exporter.keys import DnsKeys, KeyStore, KeyUnavailable, PinnedKey, UnknownKey, is_dns_name
from exporter.pipeline import Arrival
from exporter.settings import AuthMode, Settings
from exporter.signatures import (
    RSA_SHA256,
    DigestError,
    SignatureError,
    SignatureParams,
    digest_matches,
    parse_digest,
    parse_http_date,
    parse_signature,
    signing_string,
    verify,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
    from multidict import CIMultiDictProxy

    from exporter.metrics import Metrics

#: The domain whose DNS publishes SMTPeter's keys; a keyId anywhere else is not theirs.
KEY_DOMAIN: Final = ".copernica.com"
#: The headers without which a request is not signed at all, as their names are spelled.
REQUIRED_HEADERS: Final = ("Signature", "Digest", "Date", "X-Copernica-ID")
#: Seconds after which SMTPeter may retry a request refused because the key was unavailable.
RETRY_AFTER: Final = 30
#: An X-Copernica-ID value safe to repeat in an error: short, letters, digits, - and _.
_PLAIN_ID: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True, slots=True)
class PublicAddress:
    """Where SMTPeter addresses requests when a reverse proxy stands in front of us."""

    #: The ``Host`` SMTPeter sent (``host`` or ``host:port``).
    host: str
    #: The path the proxy strips before passing the request on (no trailing ``/``).
    prefix: str

    @classmethod
    def from_url(cls, url: str) -> PublicAddress:
        parts = urlsplit(url)
        return cls(host=parts.netloc.rpartition("@")[2], prefix=parts.path.rstrip("/"))


class SignatureAuthenticator:
    """SMTPeter's signed headers, checked in the order the module describes."""

    mode: Final = AuthMode.SIGNATURE

    def __init__(
        self,
        *,
        copernica_id: str,
        keys: KeyStore,
        required: tuple[str, ...],
        max_clock_skew: float,
        public: PublicAddress | None = None,
    ) -> None:
        self._copernica_id = copernica_id
        self._keys = keys
        self._required = tuple(name.lower() for name in required)
        self._skew = max_clock_skew
        self._public = public
        self._nonces = NonceStore(2 * max_clock_skew)
        self._challenge = {
            "WWW-Authenticate": f'Signature realm="{REALM}",headers="{" ".join(self._required)}"'
        }

    @classmethod
    def from_settings(cls, settings: Settings, metrics: Metrics) -> SignatureAuthenticator:
        if not settings.copernica_id:
            raise ValueError("--auth.mode=signature needs --smtpeter.copernica-id")
        keys: KeyStore
        if settings.public_key_file is not None:
            keys = PinnedKey.from_file(settings.public_key_file)
        else:
            keys = DnsKeys(
                settings.dns_nameserver,
                on_lookup=lambda outcome: metrics.key_lookups.labels(outcome.value).inc(),
            )
        return cls(
            copernica_id=settings.copernica_id,
            keys=keys,
            required=settings.signed_headers,
            max_clock_skew=settings.max_clock_skew,
            public=PublicAddress.from_url(settings.public_url) if settings.public_url else None,
        )

    async def authenticate(self, arrival: Arrival) -> None:
        headers = arrival.headers
        now = arrival.received_at
        # Steps 1 to 7 read headers and hash the body; only then may a key be looked up.
        self._check_present(headers)
        self._check_account(headers)
        params, signed = self._check_signature_header(arrival)
        self._check_key_id(params.key_id)
        self._check_dates(headers, params, now)
        nonce = self._single(headers, "X-Nonce")
        if nonce is not None and self._nonces.seen(nonce, now):
            raise self._refuse(Outcome.REPLAYED, "this X-Nonce was already used")
        self._check_digest(headers, arrival.body)
        key = await self._key(params.key_id)
        if not verify(key, signed, params.signature):
            raise self._refuse(Outcome.BAD_SIGNATURE, "the signature does not verify")
        # Remembered only now, so a forged request cannot use up SMTPeter's nonce.
        if nonce is not None and not self._nonces.claim(nonce, now):
            raise self._refuse(Outcome.REPLAYED, "this X-Nonce was already used")

    def forget(self, arrival: Arrival) -> None:
        """The request was not recorded after all: SMTPeter's retry (same nonce) is welcome."""
        nonce = self._single(arrival.headers, "X-Nonce")
        if nonce is not None:
            self._nonces.forget(nonce)

    def _check_present(self, headers: CIMultiDictProxy[str]) -> None:
        missing = [name for name in REQUIRED_HEADERS if name not in headers]
        if missing:
            raise self._refuse(
                Outcome.MISSING_SIGNATURE,
                f"the request has no {', '.join(missing)} header{'s' if len(missing) > 1 else ''}",
            )

    def _check_account(self, headers: CIMultiDictProxy[str]) -> None:
        given = self._single(headers, "X-Copernica-ID")
        if given != self._copernica_id:
            # A plain value is shown, so a format slip (environment-1234 against
            # environment_1234) is plain to see in the log line.
            shown = f" ({given})" if given and _PLAIN_ID.fullmatch(given) else ""
            raise self._refuse(
                Outcome.WRONG_ACCOUNT,
                f"X-Copernica-ID{shown} is not the account this exporter is configured for "
                "(--smtpeter.copernica-id)",
            )

    def _check_signature_header(self, arrival: Arrival) -> tuple[SignatureParams, bytes]:
        headers = arrival.headers
        try:
            params = parse_signature(self._single(headers, "Signature") or "")
        except SignatureError as exc:
            raise self._refuse(Outcome.BAD_SIGNATURE, str(exc)) from None
        if params.algorithm not in (None, RSA_SHA256):
            raise self._refuse(
                Outcome.BAD_SIGNATURE, f"the signature algorithm is not {RSA_SHA256}"
            )
        uncovered = [name for name in self._required if name not in params.covered]
        if uncovered:
            raise self._refuse(
                Outcome.BAD_SIGNATURE,
                f"the signature does not cover {' '.join(uncovered)} "
                f"(it must cover at least: {' '.join(self._required)})",
            )
        values = {
            name: ", ".join(headers.getall(name)) for name in params.covered if name in headers
        }
        target = arrival.target
        if self._public is not None:
            values["host"] = self._public.host
            target = self._public.prefix + target
        try:
            signed = signing_string(params, method=arrival.method, target=target, headers=values)
        except SignatureError as exc:
            raise self._refuse(Outcome.BAD_SIGNATURE, str(exc)) from None
        return params, signed

    def _check_key_id(self, key_id: str) -> None:
        if not (is_dns_name(key_id) and key_id.lower().endswith(KEY_DOMAIN)):
            raise self._refuse(
                Outcome.UNKNOWN_KEY, f"the keyId is not a DNS name under {KEY_DOMAIN[1:]}"
            )

    def _check_dates(
        self, headers: CIMultiDictProxy[str], params: SignatureParams, now: float
    ) -> None:
        date = parse_http_date(self._single(headers, "Date") or "")
        if date is None:
            raise self._refuse(Outcome.STALE_DATE, "the Date header is not an HTTP date")
        if abs(now - date) > self._skew:
            raise self._refuse(
                Outcome.STALE_DATE,
                f"the Date header is {now - date:+.0f} s from now; "
                f"at most {self._skew:g} s either way is accepted",
            )
        if params.created is not None and params.created > now + self._skew:
            raise self._refuse(Outcome.STALE_DATE, "the signature was created in the future")
        if params.expires is not None and params.expires < now - self._skew:
            raise self._refuse(Outcome.STALE_DATE, "the signature has expired")

    def _check_digest(self, headers: CIMultiDictProxy[str], body: bytes) -> None:
        try:
            matches = digest_matches(parse_digest(",".join(headers.getall("Digest"))), body)
        except DigestError as exc:
            raise self._refuse(Outcome.DIGEST_MISMATCH, str(exc)) from None
        if not matches:
            raise self._refuse(Outcome.DIGEST_MISMATCH, "the Digest header does not match the body")

    async def _key(self, key_id: str) -> RSAPublicKey:
        try:
            return await self._keys.key(key_id)
        except UnknownKey as exc:
            raise self._refuse(Outcome.UNKNOWN_KEY, str(exc)) from None
        except KeyUnavailable as exc:
            raise Rejected(
                503,
                Outcome.KEY_UNAVAILABLE,
                f"{exc}; try again later",
                headers={"Retry-After": str(RETRY_AFTER)},
            ) from None

    def _single(self, headers: CIMultiDictProxy[str], name: str) -> str | None:
        """A header that must be sent at most once; refused when it comes twice."""
        values = headers.getall(name, [])
        if len(values) > 1:
            raise self._refuse(Outcome.BAD_SIGNATURE, f"the {name} header is sent more than once")
        return values[0] if values else None

    def _refuse(self, outcome: Outcome, error: str) -> Rejected:
        return unauthenticated(outcome, error, self._challenge)
