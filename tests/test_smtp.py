"""SMTP vocabulary: state spellings, reply-code classes, enhanced status codes."""

from __future__ import annotations

import pytest

from exporter.mail.smtp import (
    STATES,
    code_class,
    is_reply_code,
    normalize_state,
    parse_enhanced_status,
)


@pytest.mark.parametrize(
    ("raw", "state"),
    [
        ("connect", "connect"),
        ("CONNECT", "connect"),
        ("connection", "connect"),
        ("helo", "helo"),
        ("EHLO", "helo"),
        ("starttls", "starttls"),
        ("STARTTLS", "starttls"),
        ("auth", "auth"),
        ("AUTH PLAIN", "auth"),
        ("mail from", "mail"),
        ("mailfrom", "mail"),
        ("MAIL", "mail"),
        ("MAIL FROM:<sender@example.org>", "mail"),
        ("rcpt to", "rcpt"),
        ("rcptto", "rcpt"),
        ("RCPT", "rcpt"),
        ("Rcpt-To", "rcpt"),
        ("RCPT TO:<user@example.com>", "rcpt"),
        ("data", "data"),
        ("DATA", "data"),
        ("message", "data"),
        ("body", "data"),
        ("bounce", "bounce"),
        ("BOUNCE", "bounce"),
        ("quit", "other"),
        ("something new", "other"),
        ("42", "other"),
    ],
)
def test_state_spellings_map_onto_the_fixed_vocabulary(raw: str, state: str) -> None:
    assert normalize_state(raw) == state
    assert state in STATES


def test_missing_state_stays_empty_so_callers_can_tell_it_from_unknown() -> None:
    assert normalize_state("") == ""


@pytest.mark.parametrize(
    ("code", "klass"),
    [("250", "2xx"), ("421", "4xx"), ("550", "5xx"), ("599", "5xx"), ("", "none"), ("199", "none")],
)
def test_code_class(code: str, klass: str) -> None:
    assert code_class(code) == klass


@pytest.mark.parametrize("code", ["600", "55", "5500", "abc", " 550", "\uff15\uff15\uff10"])
def test_reply_code_must_be_three_ascii_digits_in_200_to_599(code: str) -> None:
    assert not is_reply_code(code)


def test_enhanced_status_parses_and_drops_leading_zeros() -> None:
    status = parse_enhanced_status("5.01.001")
    assert status is not None
    assert (status.klass, status.subject, status.detail) == ("5", "1", "1")
    assert str(status) == "5.1.1"


@pytest.mark.parametrize("text", ["3.1.1", "5.1", "5.1.1.1", "x.1.1", "5.1.1 ", "5.1234.1", ""])
def test_enhanced_status_rejects_what_rfc_3463_does_not_allow(text: str) -> None:
    assert parse_enhanced_status(text) is None


def test_undefined_subject_is_labelled_other() -> None:
    status = parse_enhanced_status("5.9.1")
    assert status is not None
    assert status.subject_label == "other"
    assert parse_enhanced_status("4.7.1") is not None
