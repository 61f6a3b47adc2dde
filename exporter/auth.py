"""The authenticate step: does a webhook request come from SMTPeter?

Three modes (``--auth.mode``): SMTPeter's signatures (:mod:`exporter.signed`), a shared
token, or nothing. The signature mode, and with it ``cryptography`` and ``dnspython``, is
imported only when it is in force: together they hold about 11 MB that the other modes
never use.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections import OrderedDict
from typing import Final

from multidict import CIMultiDictProxy

from exporter.errors import Outcome, Rejected, unauthenticated
from exporter.metrics import Metrics
from exporter.pipeline import Arrival, Authenticator, Unauthenticated
from exporter.settings import AuthMode, Settings

REALM: Final = "smtpeter-exporter"
#: Most nonces remembered (about 10 MB at worst); the oldest is forgotten first.
MAX_NONCES: Final = 50_000


def build_authenticator(settings: Settings, metrics: Metrics) -> Authenticator:
    """The authenticator of ``--auth.mode``."""
    match settings.effective_auth_mode:
        case AuthMode.TOKEN:
            return TokenAuthenticator(_token(settings))
        case AuthMode.SIGNATURE:
            from exporter.signed import SignatureAuthenticator  # noqa: PLC0415 - only in this mode (module docstring)

            return SignatureAuthenticator.from_settings(settings, metrics)
        case _:
            return Unauthenticated()


def _token(settings: Settings) -> str:
    if settings.auth_token_file is not None:
        token = settings.auth_token_file.read_text(encoding="utf-8").strip()
        if not token:
            raise ValueError(f"--auth.token-file {settings.auth_token_file} is empty")
        return token
    if not settings.auth_token:
        raise ValueError("--auth.mode=token needs --auth.token or --auth.token-file")
    return settings.auth_token


class TokenAuthenticator:
    """``--auth.mode=token``: a shared secret as the first path segment or Basic password.

    The path wins when the request came through a ``/{token}/webhooks`` route; otherwise
    the password of an ``Authorization: Basic`` header (any user name) is the token.
    Comparison takes the same time whatever the guess.
    """

    mode: Final = AuthMode.TOKEN

    def __init__(self, token: str) -> None:
        self._token = token.encode("utf-8", "surrogatepass")
        self._challenge = {"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'}

    def forget(self, arrival: Arrival) -> None:
        """Nothing to forget: a token may be used any number of times."""

    async def authenticate(self, arrival: Arrival) -> None:
        given = arrival.path_token
        if given is None:
            given = self._basic_password(arrival.headers)
        if given is None:
            raise self._refuse(
                "no token: send it as the first path segment (/<token>/webhooks/...) "
                "or as the HTTP Basic password"
            )
        if not hmac.compare_digest(given.encode("utf-8", "surrogatepass"), self._token):
            raise self._refuse("the token is wrong")

    def _basic_password(self, headers: CIMultiDictProxy[str]) -> str | None:
        authorization = headers.get("Authorization")
        if authorization is None:
            return None
        scheme, _, credentials = authorization.strip().partition(" ")
        decoded = ""
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
            except (binascii.Error, ValueError):
                decoded = ""
        _user, colon, password = decoded.partition(":")
        if not colon:
            raise self._refuse("the Authorization header is not HTTP Basic (user:token)")
        return password

    def _refuse(self, error: str) -> Rejected:
        return unauthenticated(Outcome.BAD_TOKEN, error, self._challenge)


class NonceStore:
    """X-Nonce values seen lately, so a captured request cannot be replayed in its window.

    A request is accepted while its Date is within the skew of now, so a nonce needs
    remembering for twice the skew after it was first seen. The store is bounded: at
    ``max_entries`` the oldest nonce is forgotten first. Nonces are kept as 16-byte hashes,
    so a long one costs no more memory than a short one.
    """

    def __init__(self, window: float, max_entries: int = MAX_NONCES) -> None:
        self._window = window
        self._max_entries = max_entries
        #: hash -> time after which it is forgotten; insertion order is expiry order.
        self._seen: OrderedDict[bytes, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def seen(self, nonce: str, now: float) -> bool:
        self._forget_expired(now)
        return _nonce_key(nonce) in self._seen

    def claim(self, nonce: str, now: float) -> bool:
        """Remember ``nonce``; ``False`` when it was already remembered."""
        self._forget_expired(now)
        key = _nonce_key(nonce)
        if key in self._seen:
            return False
        self._seen[key] = now + self._window
        while len(self._seen) > self._max_entries:
            self._seen.popitem(last=False)
        return True

    def forget(self, nonce: str) -> None:
        """Forget ``nonce``: its request was authenticated but not recorded, and SMTPeter
        will send the same bytes, nonce included, again."""
        self._seen.pop(_nonce_key(nonce), None)

    def _forget_expired(self, now: float) -> None:
        while self._seen:
            key, expires = next(iter(self._seen.items()))
            if expires > now:
                break
            del self._seen[key]


def _nonce_key(nonce: str) -> bytes:
    return hashlib.blake2b(nonce.encode("utf-8", "surrogatepass"), digest_size=16).digest()
