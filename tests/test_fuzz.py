"""Whatever a client sends, decoding, parsing and diagnosing end in an event or a 4xx
rejection: never another exception, so never a 5xx."""

from __future__ import annotations

import json
from urllib.parse import quote

import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.diagnosis import diagnose
from exporter.errors import Rejected
from exporter.events import Kind, RecipientEvent
from exporter.mail.charsets import CHARSETS, NOT_CHARSETS
from exporter.payload import decode
from exporter.webhook import parse_event, resolve_kind

CONTENT_TYPES = st.sampled_from(
    [
        "application/x-www-form-urlencoded",
        "application/x-www-form-urlencoded; charset=latin-1",
        "application/json",
        "multipart/form-data; boundary=b",
        "text/plain",
        "",
    ]
)
FIELD_NAMES = st.sampled_from(
    [
        "id",
        "type",
        "time",
        "timestamp",
        "recipient",
        "state",
        "code",
        "extended",
        "tags",
        "tags[]",
        "x",
    ]
)
VALUES = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        ["a@b.example", "550", "5.1.1", "1700000000", "2024-01-01 00:00:00", "failure"]
    ),
)


def check(body: bytes, content_type: str, kind: Kind | None) -> None:
    """Decoding, parsing and diagnosing either build an event or raise a 4xx with a message.

    Diagnosing never raises (a bounce-reader bug makes the message unrecognized); the
    captured logs show whether the reader failed, which would be a bug to report.
    """
    refused: Rejected | None = None
    try:
        fields = decode(body, content_type)
        event = parse_event(kind if kind is not None else resolve_kind(fields), fields)
    except Rejected as rejected:
        refused = rejected
    if refused is None:
        assert event.kind in Kind
        if isinstance(event, RecipientEvent):
            assert "@" in event.recipient
        with structlog.testing.capture_logs() as logs:
            diagnose(event)
        assert not [entry for entry in logs if entry["event"] == "bounce_reader_failed"]
    else:
        assert 400 <= refused.status < 500
        assert refused.error


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=st.binary(max_size=512), content_type=CONTENT_TYPES, kind=st.sampled_from([*Kind, None])
)
def test_random_bytes_never_raise_anything_but_a_rejection(
    body: bytes, content_type: str, kind: Kind | None
) -> None:
    check(body, content_type, kind)


@settings(max_examples=400, deadline=None)
@given(
    fields=st.dictionaries(
        FIELD_NAMES, st.one_of(VALUES, st.lists(VALUES, max_size=3)), max_size=8
    ),
    kind=st.sampled_from([*Kind, None]),
)
def test_random_json_fields_never_raise_anything_but_a_rejection(
    fields: dict[str, str | list[str]], kind: Kind | None
) -> None:
    check(json.dumps(fields).encode(), "application/json", kind)


# --- Items 1 and 2 of "safe on the public internet": charsets, nesting, MIME, repetition ------

#: Charset names: every one Python decodes, the codecs that are not charsets, and noise.
CHARSET_NAMES = st.one_of(
    st.sampled_from(sorted(CHARSETS) + sorted(NOT_CHARSETS) + ["base64", "zlib", "rot13"]),
    st.text(max_size=12),
)
#: Text a hostile client may send: lone surrogates, NUL, bidi controls, combining marks,
#: characters outside the BMP, next to the values that make a valid event.
ODD_TEXT = st.one_of(
    st.text(st.characters(codec=None, exclude_categories=()), max_size=30),
    st.sampled_from(
        [
            "a@b.example",
            "\x00",
            "\u202ea@b.example",
            "a\u0301@b\u0301.example",
            "\ud800",
            "\U0001f4e7@xn--ls8h.example",
            "0001-01-01T00:00:00+05:00",
            "9999-12-31T23:59:59-23:59",
            "550",
            "5.1.1",
            ";" * 50,
        ]
    ),
)
REPEATED_FIELDS = st.lists(st.tuples(FIELD_NAMES | st.sampled_from(["mime", "type"]), ODD_TEXT))


def _quoted(text: str) -> str:
    """Percent-encoded UTF-8, lone surrogates included (as the bytes they would be)."""
    return quote(text.encode("utf-8", "surrogatepass"))


def _json_nest(depth: int) -> str:
    return "[" * depth + "]" * depth


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | ODD_TEXT,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(ODD_TEXT, children, max_size=4)
    ),
    max_leaves=40,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(charset=CHARSET_NAMES, pairs=REPEATED_FIELDS, kind=st.sampled_from([*Kind, None]))
def test_forms_in_any_charset_with_repeated_and_odd_fields_are_never_a_5xx(
    charset: str, pairs: list[tuple[str, str]], kind: Kind | None
) -> None:
    body = "&".join(f"{_quoted(name)}={_quoted(value)}" for name, value in pairs).encode()
    check(body, f"application/x-www-form-urlencoded; charset={charset}", kind)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    document=st.dictionaries(FIELD_NAMES, JSON_VALUES, max_size=6),
    deep=st.one_of(st.none(), st.integers(min_value=0, max_value=1500)),
    kind=st.sampled_from([*Kind, None]),
)
def test_json_of_any_shape_and_depth_is_never_a_5xx(
    document: dict[str, object], deep: int | None, kind: Kind | None
) -> None:
    text = json.dumps(document)
    if deep is not None:
        text = text[:-1] + ("," if document else "") + f'"deep": {_json_nest(deep)}}}'
    check(text.encode("utf-8", "surrogatepass"), "application/json", kind)


MIME_PIECES = st.sampled_from(
    [
        b"--B\r\n",
        b"--B--\r\n",
        b"--B",
        b"\r\n",
        b"\n",
        b"\r\n\r\n",
        b'Content-Disposition: form-data; name="recipient"\r\n',
        b'Content-Disposition: form-data; name="mime"\r\n',
        b"Content-Disposition: form-data; name*=utf-8''t%C3%A4gs\r\n",
        b"Content-Disposition: form-data; name*=undefined''x\r\n",
        b'Content-Disposition: form-data; name="\r\n',
        b"Content-Type: text/plain; charset=idna\r\n",
        b"Content-Type: text/plain; charset=utf-16\r\n",
        b"Content-Type: multipart/mixed; boundary=B\r\n",
        b"Content-Transfer-Encoding: base64\r\n",
        b"Content-Transfer-Encoding: quoted-printable\r\n",
        b"a@b.example",
        b"=\r\n=3",
        b"\x00\xff\xfe",
        b"Subject: Undelivered Mail\r\nFrom: MAILER-DAEMON@x.example\r\n",
        b"Content-Type: multipart/report; boundary=R\r\n\r\n--R\r\n",
        b"Content-Type: message/delivery-status\r\n\r\nFinal-Recipient: rfc822; a@b.example\r\n",
        b"Status: 5.1.1\r\nDiagnostic-Code: smtp; 550 user unknown\r\n",
    ]
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pieces=st.lists(st.one_of(MIME_PIECES, st.binary(max_size=16)), max_size=40),
    boundary=st.sampled_from(["B", '"B"', "", "R", "B; charset=undefined"]),
    kind=st.sampled_from([Kind.BOUNCE, Kind.ABUSE, Kind.FAILURE, None]),
)
def test_broken_multipart_and_raw_mime_are_never_a_5xx(
    pieces: list[bytes], boundary: str, kind: Kind | None
) -> None:
    body = b"".join(pieces)
    check(body, f"multipart/form-data; boundary={boundary}", kind)
    # The same bytes as the raw message of a bounce: the reader must cope.
    form = b"recipient=a%40b.example&mime=" + quote(body).encode()
    check(form, "application/x-www-form-urlencoded", Kind.BOUNCE)
