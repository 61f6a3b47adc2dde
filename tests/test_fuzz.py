"""Whatever a client sends, decoding and parsing end in an event or a 4xx rejection."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.errors import Rejected
from exporter.events import Kind, RecipientEvent
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
    """Decoding then parsing either builds an event or raises a 4xx with a message."""
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
