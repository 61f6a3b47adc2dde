"""Webhook fields to typed events: validation, trimming, truncation, unknown fields."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from exporter.errors import Rejected
from exporter.events import ClickEvent, DeliveryEvent, FailureEvent, Kind, OpenEvent
from exporter.payload import Fields
from exporter.webhook import (
    DEFAULT_FIELD_LIMIT,
    FIELD_LIMITS,
    MAX_EXTRA_FIELDS,
    MAX_TAGS,
    parse_event,
    resolve_kind,
)


def fields(**values: str | list[str]) -> Fields:
    return {name: value if isinstance(value, list) else [value] for name, value in values.items()}


def test_full_failure_becomes_a_typed_event() -> None:
    event = parse_event(
        Kind.FAILURE,
        fields(
            id="msg-1",
            type="failure",
            timestamp="2024-03-01 12:00:00",
            time="1709294400",
            recipient=" John@Example.COM ",
            action="failed",
            state="RCPT TO",
            code="550",
            extended="5.1.1",
            description="  user unknown  ",
            tags="news;march",
        ),
    )
    assert event == FailureEvent(
        message_id="msg-1",
        recipient="John@example.com",
        domain="example.com",
        occurred_at=datetime(2024, 3, 1, 12, 0, tzinfo=UTC),
        tags=("news", "march"),
        extra=(),
        truncated=(),
        action="failed",
        state_raw="RCPT TO",
        state="rcpt",
        code="550",
        extended="5.1.1",
        description="user unknown",
    )


def test_old_field_set_is_enough() -> None:
    event = parse_event(
        Kind.FAILURE,
        fields(
            id="1", recipient="a@example.com", state="data", code="", extended="", description=""
        ),
    )
    assert isinstance(event, FailureEvent)
    assert (event.state, event.code, event.extended, event.occurred_at) == ("data", "", "", None)


def test_missing_state_counts_as_other_but_keeps_the_raw_value_empty() -> None:
    event = parse_event(Kind.FAILURE, fields(recipient="a@example.com"))
    assert isinstance(event, FailureEvent)
    assert (event.state, event.state_raw) == ("other", "")


def test_timestamp_is_used_when_time_is_absent_and_read_as_utc() -> None:
    event = parse_event(
        Kind.DELIVERY, fields(recipient="a@example.com", timestamp="2024-03-01 12:00:00")
    )
    assert event.occurred_at == datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def test_each_kind_builds_its_own_event() -> None:
    base = fields(recipient="a@example.com", ip="192.0.2.7", useragent="UA", referer="r")
    assert isinstance(parse_event(Kind.DELIVERY, base), DeliveryEvent)
    opened = parse_event(Kind.OPEN, base)
    assert isinstance(opened, OpenEvent)
    assert (opened.ip, opened.useragent, opened.referer) == ("192.0.2.7", "UA", "r")
    clicked = parse_event(Kind.CLICK, {**base, "original": ["https://example.org/x"]})
    assert isinstance(clicked, ClickEvent)
    assert clicked.original == "https://example.org/x"


@pytest.mark.parametrize(
    ("recipient", "error"),
    [
        ([], "recipient is required"),
        (["  "], "recipient is required"),
        (["nobody"], "recipient has no domain"),
        (["nobody@"], "recipient has no domain"),
        (
            ["nobody@exa mple.com"],
            "recipient domain is invalid: not a domain name or address literal",
        ),
        (["a@b.example", "c@d.example"], "recipient was given more than once; send it once"),
    ],
)
def test_bad_recipients_are_rejected_with_a_message(recipient: list[str], error: str) -> None:
    with pytest.raises(Rejected) as caught:
        parse_event(Kind.FAILURE, {"recipient": recipient} if recipient else {})
    assert (caught.value.status, caught.value.error, caught.value.field) == (
        400,
        error,
        "recipient",
    )


BAD_EXTENDED = "extended must be an enhanced status code class.subject.detail, class 2, 4 or 5"
BAD_CODE = "code must be a three-digit SMTP reply code from 200 to 599"
BAD_TIME = "time must be whole seconds since the Unix epoch"


@pytest.mark.parametrize(
    ("field", "values", "error"),
    [
        ("code", ["55"], BAD_CODE),
        ("code", ["650"], BAD_CODE),
        ("code", ["150"], BAD_CODE),
        ("code", ["550", "551"], "code was given 2 times; send it once"),
        ("extended", ["5.1"], BAD_EXTENDED),
        ("extended", ["3.1.1"], BAD_EXTENDED),
        ("time", ["yesterday"], BAD_TIME),
        ("time", ["-5"], BAD_TIME),
        ("time", ["1.5"], BAD_TIME),
        ("time", ["999999999999"], BAD_TIME),
        ("timestamp", ["01/03/2024"], "timestamp must look like 'YYYY-MM-DD HH:MM:SS'"),
        ("type", ["delivery"], "type 'delivery' does not match this endpoint (failure)"),
    ],
)
def test_invalid_fields_are_rejected_with_a_message_and_the_field(
    field: str, values: list[str], error: str
) -> None:
    with pytest.raises(Rejected) as caught:
        parse_event(Kind.FAILURE, {"recipient": ["a@example.com"], field: values})
    assert (caught.value.status, caught.value.error, caught.value.field) == (400, error, field)


def test_type_accepts_singular_plural_and_any_case() -> None:
    for name in ("failure", "failures", "FAILURE"):
        assert (
            parse_event(Kind.FAILURE, fields(recipient="a@example.com", type=name)).kind
            is Kind.FAILURE
        )


def test_overlong_values_are_truncated_and_listed() -> None:
    event = parse_event(
        Kind.FAILURE,
        fields(recipient="a@example.com", description="d" * 10_000, action="a" * 10_000),
    )
    assert isinstance(event, FailureEvent)
    assert len(event.description) == FIELD_LIMITS["description"]
    assert len(event.action) == DEFAULT_FIELD_LIMIT
    assert event.truncated == ("action", "description")


def test_overlong_recipient_is_refused_rather_than_cut() -> None:
    with pytest.raises(Rejected) as caught:
        parse_event(Kind.FAILURE, fields(recipient="a" * 600 + "@example.com"))
    assert caught.value.field == "recipient"


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        ("a;b", ("a", "b")),
        (["a", "b"], ("a", "b")),
        (["a;b", "c"], ("a", "b", "c")),
        (" a ; ;b ", ("a", "b")),
        ("", ()),
    ],
)
def test_tag_encodings_all_give_one_flat_tuple(
    tags: str | list[str], expected: tuple[str, ...]
) -> None:
    assert parse_event(Kind.OPEN, fields(recipient="a@example.com", tags=tags)).tags == expected


def test_tags_are_bounded() -> None:
    event = parse_event(Kind.OPEN, fields(recipient="a@example.com", tags=["t"] * 1000))
    assert len(event.tags) == MAX_TAGS


def test_unknown_fields_are_kept_bounded_for_the_log() -> None:
    many = {f"x{i}": ["v" * 1000] for i in range(100)}
    event = parse_event(Kind.DELIVERY, {"recipient": ["a@example.com"], **many})
    assert len(event.extra) == MAX_EXTRA_FIELDS
    assert event.extra[0] == ("x0", "v" * 256)


def test_dispatch_reads_the_kind_from_type() -> None:
    assert resolve_kind(fields(type="Click")) is Kind.CLICK
    with pytest.raises(Rejected) as missing:
        resolve_kind(fields(recipient="a@example.com"))
    assert (missing.value.error, missing.value.field) == (
        "type is required when posting to /webhooks",
        "type",
    )
    with pytest.raises(Rejected) as unknown:
        resolve_kind(fields(type="newsletter"))
    assert unknown.value.error == "type 'newsletter' is not a webhook type this service receives"


@pytest.mark.parametrize(
    "timestamp",
    [
        "0001-01-01T00:00:00+05:00",
        "0001-01-01 04:59:59+05:00",
        "9999-12-31T23:00:00-05:00",
        "9999-12-31 23:59:59-00:01",
    ],
)
def test_a_timestamp_whose_utc_offset_leaves_years_1_to_9999_is_a_400(timestamp: str) -> None:
    with pytest.raises(Rejected) as caught:
        parse_event(Kind.DELIVERY, fields(recipient="a@b.example", timestamp=timestamp))
    assert caught.value.body() == {
        "error": "timestamp must fall within the years 1 to 9999 once its UTC offset is applied",
        "field": "timestamp",
    }


@pytest.mark.parametrize(
    ("timestamp", "utc"),
    [
        ("0001-01-01T05:00:00+05:00", datetime(1, 1, 1, tzinfo=UTC)),
        ("9999-12-31T18:59:59-05:00", datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)),
        ("2024-03-01T12:00:00Z", datetime(2024, 3, 1, 12, tzinfo=UTC)),
        ("2024-03-01", datetime(2024, 3, 1, tzinfo=UTC)),
        ("20240301T120000+0100", datetime(2024, 3, 1, 11, tzinfo=UTC)),
    ],
)
def test_other_iso_8601_forms_within_range_are_read_as_utc(timestamp: str, utc: datetime) -> None:
    event = parse_event(Kind.DELIVERY, fields(recipient="a@b.example", timestamp=timestamp))
    assert event.occurred_at == utc


def test_tags_look_at_a_bounded_number_of_pieces() -> None:
    started = time.perf_counter()
    event = parse_event(Kind.OPEN, fields(recipient="a@b.example", tags=";" * 1_000_000 + "late"))
    assert time.perf_counter() - started < 0.1
    assert event.tags == ()
    many = parse_event(Kind.OPEN, fields(recipient="a@b.example", tags=["a;b"] * 1000))
    assert many.tags == ("a", "b") * (MAX_TAGS // 2)


def test_a_huge_recipient_is_refused_before_it_is_cleaned() -> None:
    with pytest.raises(Rejected) as caught:
        parse_event(Kind.OPEN, fields(recipient="\udcff" * 5_000_000 + "@b.example"))
    assert caught.value.body() == {
        "error": "recipient is longer than 512 characters",
        "field": "recipient",
    }
