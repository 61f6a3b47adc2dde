"""Body decoding: form, JSON and multipart become the same fields."""

from __future__ import annotations

import json

import pytest

from exporter.errors import Outcome, Rejected
from exporter.payload import MAX_FIELDS, decode, media_type

FORM = "application/x-www-form-urlencoded"


def test_form_fields_are_decoded_with_plus_and_percent_escapes() -> None:
    fields = decode(b"recipient=a%40example.com&description=User+unknown&code=", FORM)
    assert fields == {
        "recipient": ["a@example.com"],
        "description": ["User unknown"],
        "code": [""],
    }


def test_repeated_bracketed_names_collect_into_one_field() -> None:
    fields = decode(b"tags%5B%5D=a&tags[]=b&tags[2]=c", FORM)
    assert fields == {"tags": ["a", "b", "c"]}


def test_form_honours_a_latin_1_charset() -> None:
    fields = decode(b"description=Empf%E4nger", FORM + "; charset=iso-8859-1")
    assert fields == {"description": ["Empfänger"]}


def test_unknown_charset_is_a_400() -> None:
    with pytest.raises(Rejected) as caught:
        decode(b"a=b", FORM + "; charset=no-such-charset")
    assert caught.value.status == 400


def test_json_scalars_become_strings_and_lists_become_repeated_values() -> None:
    body = json.dumps(
        {"recipient": "a@example.com", "code": 550, "tags": ["x", "y"], "id": None, "ok": True}
    ).encode()
    assert decode(body, "application/json; charset=utf-8") == {
        "recipient": ["a@example.com"],
        "code": ["550"],
        "tags": ["x", "y"],
        "ok": ["true"],
    }


def test_json_suffix_media_types_are_json() -> None:
    assert decode(b'{"a": "b"}', "application/vnd.smtpeter+json") == {"a": ["b"]}


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"{", "body is not valid JSON"),
        (b"\xff\xfe\x00", "body is not valid JSON"),
        (b"[1, 2]", "JSON body must be an object of fields"),
        (b"[" * 100_000 + b"]" * 100_000, "body is not valid JSON"),
    ],
)
def test_bad_json_is_a_400_that_says_why(body: bytes, error: str) -> None:
    with pytest.raises(Rejected) as caught:
        decode(body, "application/json")
    assert (caught.value.status, caught.value.error) == (400, error)


def test_multipart_fields_and_file_parts_are_read() -> None:
    body = (
        b"--XyZ\r\n"
        b'Content-Disposition: form-data; name="recipient"\r\n\r\n'
        b"a@example.com\r\n"
        b"--XyZ\r\n"
        b'Content-Disposition: form-data; name="tags[]"\r\n\r\n'
        b"one\r\n"
        b"--XyZ\r\n"
        b'Content-Disposition: form-data; name="description"; filename="d.txt"\r\n'
        b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
        b"Mailbox voll \xc3\xa4\r\n"
        b"--XyZ--\r\n"
    )
    assert decode(body, "multipart/form-data; boundary=XyZ") == {
        "recipient": ["a@example.com"],
        "tags": ["one"],
        "description": ["Mailbox voll ä"],
    }


def test_multipart_without_boundary_is_a_400() -> None:
    with pytest.raises(Rejected) as caught:
        decode(b"whatever", "multipart/form-data")
    assert caught.value.error == "multipart/form-data without a boundary parameter"


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "", "garbage"])
def test_other_media_types_are_a_415(content_type: str) -> None:
    with pytest.raises(Rejected) as caught:
        media_type(content_type)
    assert caught.value.status == 415
    assert caught.value.outcome is Outcome.UNSUPPORTED_MEDIA
    assert "application/x-www-form-urlencoded" in caught.value.error


def test_too_many_distinct_fields_is_a_400() -> None:
    body = "&".join(f"f{i}=v" for i in range(MAX_FIELDS + 1)).encode()
    with pytest.raises(Rejected) as caught:
        decode(body, FORM)
    assert caught.value.error == f"more than {MAX_FIELDS} distinct fields"
