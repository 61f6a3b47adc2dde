"""The Signature and Digest headers, the signing string, HTTP dates and DKIM key records.

Signatures are made with ``tests.signing`` (written from the draft, apart from the code under
test). Whatever a client puts in these headers ends in a 401, never in another exception.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import time

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy

from exporter.errors import Rejected
from exporter.keys import PinnedKey, key_from_txt, load_pem_key
from exporter.pipeline import Arrival
from exporter.signatures import (
    DigestError,
    InstanceDigest,
    SignatureError,
    digest_matches,
    parse_digest,
    parse_http_date,
    parse_signature,
    signing_string,
    verify,
)
from exporter.signed import SignatureAuthenticator
from tests import signing
from tests.signing import COPERNICA_ID, COVERED, MINIMUM, new_key, sign

KEY = new_key()
SIGNATURE = base64.b64encode(b"\x01" * 256).decode()


# --- the Signature header ---------------------------------------------------------------


def test_signature_header_as_the_draft_writes_it_parses() -> None:
    params = parse_signature(
        f'keyId="one._domainkey.copernica.com",algorithm="rsa-sha256",'
        f'headers="(request-target) host date",signature="{SIGNATURE}"'
    )
    assert params.key_id == "one._domainkey.copernica.com"
    assert params.algorithm == "rsa-sha256"
    assert params.covered == ("(request-target)", "host", "date")
    assert params.signature == b"\x01" * 256


def test_documented_example_without_a_comma_and_folded_over_lines_parses() -> None:
    # The shape of SMTPeter's documented example: no comma after the headers parameter,
    # mixed-case header names, and the header folded over lines (signature included).
    folded = (
        'keyId="one._domainkey.copernica.com",algorithm="rsa-sha256",\n'
        '     headers="(request-target) Host Date Content-length Content-type\n'
        '       X-Copernica-ID Digest X-nonce"\n'
        f'     signature="{SIGNATURE[:40]}\n       {SIGNATURE[40:]}"'
    )
    params = parse_signature(folded)
    assert params.covered == COVERED
    assert params.signature == b"\x01" * 256


def test_parameters_come_in_any_order_case_and_spacing() -> None:
    params = parse_signature(
        f' Signature = "{SIGNATURE}" , HEADERS="Date Digest" ,, keyid="k.copernica.com"  '
    )
    assert (params.key_id, params.covered, params.algorithm) == (
        "k.copernica.com",
        ("date", "digest"),
        None,
    )


def test_unknown_parameters_are_ignored() -> None:
    params = parse_signature(f'keyId="k",nonsense="x",other=token,signature="{SIGNATURE}"')
    assert params.key_id == "k"


def test_headers_default_to_date_as_in_draft_10() -> None:
    assert parse_signature(f'keyId="k",signature="{SIGNATURE}"').covered == ("date",)


def test_created_and_expires_are_read_as_unix_times() -> None:
    params = parse_signature(
        f'keyId="k",created=1402170695,expires="1402170995",signature="{SIGNATURE}"'
    )
    assert (params.created, params.expires) == (1402170695, 1402170995)


def test_quoted_pairs_are_unescaped() -> None:
    assert parse_signature(f'keyId="a\\"b",signature="{SIGNATURE}"').key_id == 'a"b'


@pytest.mark.parametrize(
    ("header", "error"),
    [
        (f'keyId="a",keyid="b",signature="{SIGNATURE}"', "keyid is given more than once"),
        (f'keyId="a",signature="{SIGNATURE}",signature="{SIGNATURE}"', "more than once"),
        (f'signature="{SIGNATURE}"', "no keyId"),
        ('keyId="a"', "no signature"),
        ('keyId="a",signature=""', "no signature"),
        ('keyId="a",signature="not base64!"', "not base64"),
        ('keyId="a",signature="QUJD"extra', "not a list"),
        (f'keyId="a"signature="{SIGNATURE}"', "not a list"),
        (f'keyId="a",headers="",signature="{SIGNATURE}"', "headers parameter is empty"),
        (f'keyId="a",created=soon,signature="{SIGNATURE}"', "not a Unix time"),
        (f'keyId="a,signature="{SIGNATURE}"', "not a list"),
        ("", "no keyId"),
        ("Signature keyId", "not a list"),
    ],
)
def test_malformed_signature_header_is_refused(header: str, error: str) -> None:
    with pytest.raises(SignatureError, match=error):
        parse_signature(header)


@given(st.text())
def test_any_signature_header_parses_or_is_refused_with_a_signature_error(text: str) -> None:
    with contextlib.suppress(SignatureError):
        parse_signature(text)


# --- the signing string -----------------------------------------------------------------

HEADERS = {
    "host": "hooks.example.com",
    "date": "Sun, 05 Jan 2014 21:31:40 GMT",
    "x-copernica-id": COPERNICA_ID,
    "digest": "SHA-256=X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=",
}


def _params(covered: tuple[str, ...]) -> str:
    return f'keyId="k",headers="{" ".join(covered)}",signature="{SIGNATURE}"'


def test_signing_string_is_one_line_per_covered_header_without_a_trailing_newline() -> None:
    params = parse_signature(_params(MINIMUM))
    text = signing_string(params, method="POST", target="/webhooks?x=1", headers=HEADERS)
    assert text == (
        b"(request-target): post /webhooks?x=1\n"
        b"host: hooks.example.com\n"
        b"date: Sun, 05 Jan 2014 21:31:40 GMT\n"
        b"x-copernica-id: environment_1234\n"
        b"digest: SHA-256=X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE="
    )
    assert text.decode() == signing.signing_string("POST", "/webhooks?x=1", HEADERS, MINIMUM)


def test_signing_string_follows_the_signature_s_order_not_the_request_s() -> None:
    params = parse_signature(_params(("digest", "date")))
    text = signing_string(params, method="POST", target="/", headers=HEADERS)
    assert text.startswith(b"digest: ")


def test_a_covered_header_the_request_lacks_is_refused() -> None:
    params = parse_signature(_params((*MINIMUM, "x-nonce")))
    with pytest.raises(SignatureError, match="x-nonce is not in the request"):
        signing_string(params, method="POST", target="/", headers=HEADERS)


def test_created_pseudo_header_without_its_parameter_is_refused() -> None:
    params = parse_signature(_params(("(created)", "date")))
    with pytest.raises(SignatureError, match=r"\(created\) is signed"):
        signing_string(params, method="POST", target="/", headers=HEADERS)


def test_created_pseudo_header_is_signed_as_its_parameter() -> None:
    params = parse_signature(f'keyId="k",created=17,headers="(created)",signature="{SIGNATURE}"')
    assert signing_string(params, method="POST", target="/", headers={}) == b"(created): 17"


def test_a_signature_from_the_test_signer_verifies_and_a_tampered_one_does_not() -> None:
    url = "https://hooks.example.com/webhooks/failures"
    headers = sign(
        "POST",
        url,
        b"{}",
        {"Content-Type": "application/json", "X-Copernica-ID": COPERNICA_ID},
        key=KEY.private,
        key_id=KEY.key_id,
    )
    params = parse_signature(headers["Signature"])
    values = {name.lower(): value for name, value in headers.items()}
    signed = signing_string(params, method="POST", target="/webhooks/failures", headers=values)
    public = KEY.private.public_key()
    assert verify(public, signed, params.signature)
    assert not verify(public, signed.replace(b"post", b"get"), params.signature)
    assert not verify(public, signed, params.signature[:-1] + b"\x00")
    assert not verify(public, signed, b"short")
    assert not verify(new_key(seed=1).private.public_key(), signed, params.signature)


# --- the Digest header ------------------------------------------------------------------

BODY = b'{"recipient": "john@gmail.com"}'
SHA256_OF_BODY = base64.b64encode(hashlib.sha256(BODY).digest()).decode()


@pytest.mark.parametrize("algorithm", ["SHA-256", "sha-256", "Sha-256"])
def test_digest_algorithm_name_is_read_in_any_case(algorithm: str) -> None:
    assert digest_matches(parse_digest(f"{algorithm}={SHA256_OF_BODY}"), BODY)


def test_digest_splits_on_the_first_equals_sign_only() -> None:
    [digest] = parse_digest(f"SHA-256={SHA256_OF_BODY}")
    assert SHA256_OF_BODY.endswith("=")
    assert digest == InstanceDigest("sha-256", hashlib.sha256(BODY).digest())


def test_digest_of_another_body_does_not_match() -> None:
    assert not digest_matches(parse_digest(f"SHA-256={SHA256_OF_BODY}"), BODY + b" ")


def test_every_checkable_digest_must_match_and_unknown_ones_are_skipped() -> None:
    sha512 = base64.b64encode(hashlib.sha512(BODY).digest()).decode()
    assert digest_matches(parse_digest(f"MD5=AAAA, SHA-256={SHA256_OF_BODY}"), BODY)
    assert digest_matches(parse_digest(f"SHA-256={SHA256_OF_BODY},SHA-512={sha512}"), BODY)
    wrong512 = base64.b64encode(hashlib.sha512(b"x").digest()).decode()
    assert not digest_matches(parse_digest(f"SHA-256={SHA256_OF_BODY},SHA-512={wrong512}"), BODY)


@pytest.mark.parametrize(
    ("header", "error"),
    [
        ("MD5=AAAA", "no SHA-256 digest"),
        ("SHA-256", "not algorithm=base64"),
        ("=AAAA", "not algorithm=base64"),
        ("SHA-256=", "empty"),
        ("SHA-256=***", "not base64"),
        ("", "not algorithm=base64"),
    ],
)
def test_malformed_or_unusable_digest_is_refused(header: str, error: str) -> None:
    with pytest.raises(DigestError, match=error):
        digest_matches(parse_digest(header), BODY)


@given(st.text())
def test_any_digest_header_parses_or_is_refused_with_a_digest_error(text: str) -> None:
    with contextlib.suppress(DigestError):
        digest_matches(parse_digest(text), BODY)


# --- HTTP dates -------------------------------------------------------------------------

NOV_6_1994 = 784111777.0


@pytest.mark.parametrize(
    "text",
    [
        "Sun, 06 Nov 1994 08:49:37 GMT",
        "sun, 06 nov 1994 08:49:37 gmt",
        "Sun, 6 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 08:49:37 +0000",
        "Sunday, 06-Nov-94 08:49:37 GMT",
        "Sun Nov  6 08:49:37 1994",
    ],
)
def test_all_three_http_date_forms_are_read(text: str) -> None:
    assert parse_http_date(text) == NOV_6_1994


def test_the_test_signer_s_date_is_read_as_now() -> None:
    now = time.time()
    parsed = parse_http_date(signing.http_date(now))
    assert parsed is not None
    assert abs(parsed - now) < 1


@pytest.mark.parametrize(
    "text",
    [
        "",
        "yesterday",
        "Sun, 30 Feb 1994 08:49:37 GMT",
        "Sun, 06 Foo 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 25:49:37 GMT",
        "Sun, 06 Nov 1994 08:49:37 +0200",
        "1709294400",
    ],
)
def test_what_is_not_an_http_date_is_none(text: str) -> None:
    assert parse_http_date(text) is None


@given(st.text())
def test_any_date_header_is_a_time_or_none(text: str) -> None:
    assert parse_http_date(text) is None or isinstance(parse_http_date(text), float)


# --- DKIM key records -------------------------------------------------------------------


def _numbers(record: str) -> int:
    key = key_from_txt([(record.encode(),)])
    assert key is not None
    return key.public_numbers().n


def test_dkim_record_with_a_subject_public_key_info_gives_the_key() -> None:
    assert _numbers(KEY.dkim_record()) == KEY.private.public_key().public_numbers().n


def test_dkim_record_with_a_bare_rsa_public_key_gives_the_key() -> None:
    assert _numbers(KEY.dkim_record(pkcs1=True)) == KEY.private.public_key().public_numbers().n


def test_dkim_record_split_into_strings_and_with_whitespace_in_p_gives_the_key() -> None:
    record = KEY.dkim_record()
    prefix, p = record.split("p=")
    spaced = prefix + "p=" + " ".join(p[i : i + 60] for i in range(0, len(p), 60))
    strings = tuple(spaced[i : i + 100].encode() for i in range(0, len(spaced), 100))
    key = key_from_txt([strings])
    assert key is not None
    assert key.public_numbers().n == KEY.private.public_key().public_numbers().n


@pytest.mark.parametrize(
    "record",
    [
        "v=DKIM1; k=rsa; p=",
        "v=DKIM2; k=rsa; p=AAAA",
        "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
        "v=DKIM1; k=rsa; p=not base64",
        "v=DKIM1; k=rsa; p=QUJDRA==",
        "v=spf1 -all",
        "garbage",
    ],
)
def test_dkim_record_without_a_usable_rsa_key_gives_none(record: str) -> None:
    assert key_from_txt([(record.encode(),)]) is None


def test_the_first_usable_record_among_several_is_taken() -> None:
    key = key_from_txt([(b"v=spf1 -all",), (b"\xff\xfe",), (KEY.dkim_record().encode(),)])
    assert key is not None


def test_duplicate_dkim_tags_make_the_record_unusable() -> None:
    record = KEY.dkim_record() + "; p=AAAA"
    assert key_from_txt([(record.encode(),)]) is None


def test_pem_of_a_non_rsa_key_is_refused() -> None:
    ec_pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    assert load_pem_key(KEY.public_pem()).key_size == 2048
    with pytest.raises(ValueError, match="not an RSA public key"):
        load_pem_key(ec_pem)
    with pytest.raises(ValueError, match="not a PEM public key"):
        load_pem_key(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")


# --- whatever arrives, the authenticator answers with a 401 ------------------------------

AUTHENTICATOR = SignatureAuthenticator(
    copernica_id=COPERNICA_ID,
    keys=PinnedKey(KEY.private.public_key()),
    required=MINIMUM,
    max_clock_skew=60,
)
HEADER_TEXT = st.text(
    st.characters(min_codepoint=32, max_codepoint=0x2FF, exclude_characters="\x7f"), max_size=80
)


@given(
    signature=st.one_of(
        HEADER_TEXT,
        st.builds(
            lambda names, sig: f'keyId="x.copernica.com",headers="{names}",signature="{sig}"',
            st.sampled_from([" ".join(MINIMUM), "date", "(request-target) host"]),
            st.sampled_from([SIGNATURE, "", "AA==", "%%"]),
        ),
    ),
    digest=st.one_of(HEADER_TEXT, st.just(f"SHA-256={SHA256_OF_BODY}")),
    date=st.one_of(HEADER_TEXT, st.just(signing.http_date())),
)
def test_any_signature_digest_and_date_headers_end_in_a_401(
    signature: str, digest: str, date: str
) -> None:
    headers = CIMultiDictProxy(
        CIMultiDict(
            {
                "Host": "hooks.example.com",
                "Signature": signature,
                "Digest": digest,
                "Date": date,
                "X-Copernica-ID": COPERNICA_ID,
            }
        )
    )
    arrival = Arrival("POST", "/webhooks", headers, BODY, None, time.time())
    with pytest.raises(Rejected) as refused:
        asyncio.run(AUTHENTICATOR.authenticate(arrival))
    assert refused.value.status == 401
    assert "WWW-Authenticate" in refused.value.headers
