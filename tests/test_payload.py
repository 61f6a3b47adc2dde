"""Body decoding: form, JSON and multipart become the same fields."""

from __future__ import annotations

import base64
import json
import os
import time
from urllib.parse import quote_from_bytes

import pytest

from exporter.errors import Outcome, Rejected
from exporter.mail.charsets import CHARSETS, NOT_CHARSETS
from exporter.payload import (
    MAX_FIELDS,
    MAX_JSON_DEPTH,
    MAX_JSON_ITEMS,
    MAX_PART_HEADER,
    MAX_VALUES,
    SLICE,
    LongText,
    decode,
    media_type,
    raw_bytes,
    text_codec,
)

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
        (b"[" * 100_000 + b"]" * 100_000, "JSON body is nested deeper than 32 levels"),
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


# --- Charsets -----------------------------------------------------------------------------------


def _decodable(charset: str) -> bool:
    try:
        text_codec(charset)
    except Rejected:
        return False
    return True


#: Every codec module Python ships that is a character set.
DECODABLE = [module for module in sorted(set(CHARSETS.values())) if _decodable(module)]


@pytest.mark.parametrize("charset", DECODABLE)
def test_every_charset_decodes_any_bytes(charset: str) -> None:
    """Only codecs whose ``replace`` handler cannot raise are taken as charsets."""
    for data in (b"", b"\xff", b"\x00\xff\xfe\x80", b"+AGE-\x1b$B", os.urandom(SLICE + 7)):
        body = _multipart(('name="x"', f"Content-Type: text/plain; charset={charset}", data))
        assert isinstance(decode(body, MULTIPART_B)["x"][0], str)


def test_codec_modules_that_are_not_charsets_are_the_ones_refused() -> None:
    refused = set(CHARSETS.values()) - set(DECODABLE)
    not_text = {"base64_codec", "bz2_codec", "hex_codec", "quopri_codec", "rot_13", "uu_codec"}
    assert refused >= {"idna", "punycode", "undefined", "unicode_escape", "raw_unicode_escape"}
    assert refused >= not_text | {"zlib_codec"}
    assert "utf_8" in DECODABLE
    assert len(DECODABLE) > 90


@pytest.mark.parametrize(
    "charset", ["undefined", "idna", "punycode", "unicode_escape", "raw-unicode-escape"]
)
def test_codecs_that_are_not_charsets_are_refused(charset: str) -> None:
    assert charset.replace("_", "-") in NOT_CHARSETS
    with pytest.raises(Rejected) as caught:
        decode(b"recipient=a%40b.example", f"{FORM}; charset={charset}")
    assert (caught.value.status, caught.value.error) == (400, f"unknown charset {charset!r}")


@pytest.mark.parametrize("charset", ["base64", "zlib", "rot13", "hex", "x" * 200, "utf-9"])
def test_codecs_that_are_not_text_and_odd_names_are_unknown_charsets(charset: str) -> None:
    with pytest.raises(Rejected) as caught:
        decode(b"a=b", f"{FORM}; charset={charset}")
    assert caught.value.error.startswith("unknown charset")


@pytest.mark.parametrize("charset", ["UTF-8", "utf8", "Utf_8", '"utf-8"', "ISO-8859-1", "latin1"])
def test_charset_names_are_matched_whatever_their_spelling(charset: str) -> None:
    assert decode(b"description=Empf%C3%A4nger", f"{FORM}; charset={charset}")["description"][
        0
    ] in {"Empfänger", "EmpfÃ¤nger"}


@pytest.mark.parametrize(
    ("charset", "field"),
    [("undefined", "recipient"), ("idna", "recipient"), ("punycode", "description")],
)
def test_a_multipart_part_with_a_codec_that_is_not_a_charset_is_a_400_naming_the_field(
    charset: str, field: str
) -> None:
    body = _multipart(
        (f'name="{field}"', f"Content-Type: text/plain; charset={charset}", b"a@b.example")
    )
    with pytest.raises(Rejected) as caught:
        decode(body, MULTIPART_B)
    assert caught.value.body() == {"error": f"unknown charset {charset!r}", "field": field}


def test_an_rfc_2231_field_name_in_a_codec_that_is_not_a_charset_is_a_400() -> None:
    body = _multipart(("name*=undefined''recipient", "", b"a@b.example"))
    with pytest.raises(Rejected) as caught:
        decode(body, MULTIPART_B)
    assert caught.value.error == "unknown charset 'undefined'"


def test_utf_16_without_a_byte_order_mark_is_read_big_endian() -> None:
    body = _multipart(
        ('name="description"', "Content-Type: text/plain; charset=utf-16", "né".encode("utf-16-be"))
    )
    assert decode(body, MULTIPART_B) == {"description": ["né"]}


# --- JSON ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b'{"x": ' + b"[" * (MAX_JSON_DEPTH) + b"]" * (MAX_JSON_DEPTH) + b"}",
        b'{"x": ' + b'{"a": ' * MAX_JSON_DEPTH + b"1" + b"}" * MAX_JSON_DEPTH + b"}",
        # Nesting the parser survives but the serializer of nested values did not (a 500).
        b'{"recipient": "a@b.example", "x": ' + b'{"a":' * 992 + b"1" + b"}" * 992 + b"}",
        b'{"recipient": "a@b.example", "x": ' + b"[" * 1000 + b"]" * 1000 + b"}",
    ],
    ids=["lists-33", "objects-33", "objects-993", "lists-1001"],
)
def test_json_nested_deeper_than_the_limit_is_a_400(body: bytes) -> None:
    with pytest.raises(Rejected) as caught:
        decode(body, "application/json")
    assert caught.value.body() == {
        "error": f"JSON body is nested deeper than {MAX_JSON_DEPTH} levels"
    }


def test_json_nested_to_the_limit_is_kept_as_compact_text() -> None:
    depth = MAX_JSON_DEPTH - 1
    body = b'{"x": ' + b"[" * depth + b"1" + b"]" * depth + b"}"
    assert decode(body, "application/json") == {"x": ["[" * (depth - 1) + "1" + "]" * (depth - 1)]}


def test_json_with_too_many_values_is_a_400_before_they_are_looked_at() -> None:
    wide = json.dumps({"recipient": "a@b.example", "x": [[0]] * (MAX_JSON_ITEMS + 1)}).encode()
    with pytest.raises(Rejected) as caught:
        decode(wide, "application/json")
    assert caught.value.error == f"JSON body holds more than {MAX_JSON_ITEMS} values"
    tags = json.dumps({"tags": ["t"] * (MAX_VALUES + 1)}).encode()
    with pytest.raises(Rejected) as caught:
        decode(tags, "application/json")
    assert caught.value.error == f"more than {MAX_VALUES} values"


def test_a_long_json_string_keeps_its_bytes_including_escaped_surrogates() -> None:
    text = "x\udcff" * SLICE
    [value] = decode(json.dumps({"mime": text}).encode(), "application/json")["mime"]
    assert isinstance(value, LongText)
    assert raw_bytes(value) == b"x\xff" * SLICE


# --- Forms --------------------------------------------------------------------------------------


def test_too_many_form_values_is_a_400() -> None:
    body = b"&".join([b"tags=x"] * (MAX_VALUES + 1))
    with pytest.raises(Rejected) as caught:
        decode(body, FORM)
    assert caught.value.error == f"more than {MAX_VALUES} values"


def test_a_long_form_value_is_percent_decoded_across_slices_to_its_exact_bytes() -> None:
    sent = os.urandom(3 * SLICE + 11)
    body = b"recipient=a%40b.example&mime=" + quote_from_bytes(sent).encode()
    [mime] = decode(body, FORM)["mime"]
    assert isinstance(mime, LongText)
    assert raw_bytes(mime) == sent
    assert mime == sent.decode("utf-8", "surrogateescape")


def test_field_names_are_cut_and_indexes_dropped_in_linear_time() -> None:
    name = "%5B" * 100_000
    started = time.perf_counter()
    fields = decode(f"{name}=v&tags[]=a&tags[0][x]=b".encode(), FORM)
    assert time.perf_counter() - started < 1
    assert fields["tags"] == ["a"]
    assert fields["tags[0]"] == ["b"]
    assert ["v"] in fields.values()


# --- Multipart ----------------------------------------------------------------------------------

MULTIPART_B = "multipart/form-data; boundary=B"


def _multipart(*parts: tuple[str, str, bytes | str], close: bool = True) -> bytes:
    """A body of parts given as (Content-Disposition parameters, other headers, content)."""
    out = b""
    for params, headers, content in parts:
        data = content.encode() if isinstance(content, str) else content
        extra = f"{headers}\r\n" if headers else ""
        out += f"--B\r\nContent-Disposition: form-data; {params}\r\n{extra}\r\n".encode()
        out += data + b"\r\n"
    return out + (b"--B--\r\n" if close else b"")


def test_multipart_reads_quoted_boundaries_transfer_encodings_and_rfc_2231_names() -> None:
    body = (
        b"preamble\r\n--a;b\r\n"
        b"Content-Disposition: form-data; name*=utf-8''d%C3%A9scription\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n"
        + base64.b64encode("Empfänger".encode())
        + b"\r\n--a;b\r\n"
        b'Content-Disposition: form-data; name="x"\r\n'
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        b"a=3Db=\r\nc\r\n--a;b--\r\nepilogue"
    )
    assert decode(body, 'multipart/form-data; boundary="a;b"') == {
        "déscription": ["Empfänger"],
        "x": ["a=bc"],
    }


def test_multipart_with_bare_line_feeds_and_no_close_delimiter_is_read() -> None:
    body = b'--B\nContent-Disposition: form-data; name="recipient"\n\na@b.example\n--B\n'
    body += b'Content-Disposition: form-data; name="code"\n\n550'
    assert decode(body, MULTIPART_B) == {"recipient": ["a@b.example"], "code": ["550"]}


def test_multipart_nested_a_thousand_deep_is_text_not_recursion() -> None:
    inner = b"x"
    for depth in range(1000):
        inner = (
            f"--n{depth}\r\nContent-Type: text/plain\r\n\r\n".encode()
            + inner
            + f"\r\n--n{depth}--".encode()
        )
    body = _multipart(('name="x"', "Content-Type: multipart/mixed; boundary=n999", inner))
    assert decode(body, MULTIPART_B)["x"] == [inner.decode()]


def test_too_many_multipart_parts_is_a_400_before_they_are_split() -> None:
    body = b"--B\r\n\r\n\r\n" * (MAX_VALUES + 2) + b"--B--\r\n"
    with pytest.raises(Rejected) as caught:
        decode(body, MULTIPART_B)
    assert caught.value.error == f"more than {MAX_VALUES} values"


def test_a_part_with_headers_past_the_limit_is_a_400() -> None:
    body = _multipart(('name="x"', "X-Pad: " + "p" * MAX_PART_HEADER, b"v"))
    with pytest.raises(Rejected) as caught:
        decode(body, MULTIPART_B)
    assert (
        caught.value.error == f"a multipart part has more than {MAX_PART_HEADER} bytes of headers"
    )


@pytest.mark.parametrize(
    ("content_type", "error"),
    [
        (
            "multipart/form-data; boundary=" + "b" * 71,
            "multipart boundary must be 1 to 70 ASCII characters",
        ),
        ("multipart/form-data; boundary=é", "multipart boundary must be 1 to 70 ASCII characters"),
        (MULTIPART_B, "multipart body has no parts"),
    ],
)
def test_bad_boundaries_and_bodies_without_parts_are_a_400(content_type: str, error: str) -> None:
    with pytest.raises(Rejected) as caught:
        decode(b"no delimiter here", content_type)
    assert caught.value.error == error
