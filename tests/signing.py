"""Sign test requests as SMTPeter does, with the tests' own RSA keys.

Written from draft-cavage-http-signatures and SMTPeter's webhook-security page, apart from
``exporter.signatures``, so a test that signs here and verifies there checks the exporter
against the draft rather than against itself::

    key = new_key()
    headers = sign("POST", url, body, {"Content-Type": "application/json",
                   "X-Copernica-ID": "environment_1234"}, key=key.private,
                   key_id=key.key_id)
    await client.post(path, data=body, headers=headers)
"""

from __future__ import annotations

import base64
import functools
import hashlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.utils import formatdate
from typing import Final
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.hashes import SHA256

#: What SMTPeter's documented example signs: every header the reference verifier demands.
COVERED: Final = (
    "(request-target)",
    "host",
    "date",
    "content-length",
    "content-type",
    "x-copernica-id",
    "digest",
    "x-nonce",
)
#: The headers the exporter demands by default (``--auth.signed-headers``).
MINIMUM: Final = ("(request-target)", "host", "date", "x-copernica-id", "digest")
COPERNICA_ID: Final = "environment_1234"


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A test key pair and the keyId it is published under."""

    private: rsa.RSAPrivateKey
    key_id: str

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def dkim_record(self, *, pkcs1: bool = False) -> str:
        """The TXT record SMTPeter would publish: ``v=DKIM1; k=rsa; p=<base64 DER>``."""
        der = self.private.public_key().public_bytes(
            serialization.Encoding.DER,
            serialization.PublicFormat.PKCS1
            if pkcs1
            else serialization.PublicFormat.SubjectPublicKeyInfo,
        )
        return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"


@functools.cache
def _private_key(seed: int, bits: int) -> rsa.RSAPrivateKey:
    # Cached per seed: generating a 2048-bit key takes tens of milliseconds.
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def new_key(selector: str = "one", *, seed: int = 0, bits: int = 2048) -> SigningKey:
    """A key published at ``<selector>._domainkey.copernica.com``; one key per ``seed``."""
    return SigningKey(_private_key(seed, bits), f"{selector}._domainkey.copernica.com")


def http_date(when: float | None = None) -> str:
    """``when`` (default now) as an IMF-fixdate: ``Sun, 06 Nov 1994 08:49:37 GMT``."""
    return formatdate(time.time() if when is None else when, usegmt=True)


def digest_header(body: bytes) -> str:
    return "SHA-256=" + base64.b64encode(hashlib.sha256(body).digest()).decode()


def signing_string(
    method: str, target: str, headers: Mapping[str, str], covered: Sequence[str]
) -> str:
    """Draft-cavage section 2.3: ``name: value`` per covered header, joined by newlines."""
    lower = {name.lower(): value for name, value in headers.items()}
    lines = []
    for name in (covered_name.lower() for covered_name in covered):
        value = f"{method.lower()} {target}" if name == "(request-target)" else lower[name]
        lines.append(f"{name}: {value.strip()}")
    return "\n".join(lines)


def sign(
    method: str,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    key: rsa.RSAPrivateKey,
    key_id: str,
    covered: Sequence[str] = COVERED,
    algorithm: str | None = "rsa-sha256",
) -> dict[str, str]:
    """The headers to send ``body`` to ``url`` with, signed by ``key``.

    ``headers`` are sent as given; Host, Date, Digest, Content-Length and X-Nonce are added
    when missing (a given one, a stale Date say, is kept), then the Signature over
    ``covered``.
    """
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    sent = {name.lower(): name for name in headers}
    out = dict(headers)
    defaults = {
        "Host": parts.netloc,
        "Date": http_date(),
        "Digest": digest_header(body),
        "Content-Length": str(len(body)),
        "X-Nonce": base64.b32encode(hashlib.sha256(body + str(time.time_ns()).encode()).digest())
        .decode()[:16]
        .lower(),
    }
    out.update({name: value for name, value in defaults.items() if name.lower() not in sent})
    text = signing_string(method, target, out, covered)
    signature = key.sign(text.encode(), padding.PKCS1v15(), SHA256())
    out["Signature"] = signature_header(key_id, covered, signature, algorithm=algorithm)
    return out


def signature_header(
    key_id: str,
    covered: Sequence[str],
    signature: bytes,
    *,
    algorithm: str | None = "rsa-sha256",
) -> str:
    """The Signature header's value, parameters comma separated as the draft writes them."""
    params = [f'keyId="{key_id}"']
    if algorithm is not None:
        params.append(f'algorithm="{algorithm}"')
    params.append(f'headers="{" ".join(covered)}"')
    params.append(f'signature="{base64.b64encode(signature).decode()}"')
    return ",".join(params)
