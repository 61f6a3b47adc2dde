"""Request bodies to fields: form, JSON and multipart all become ``{name: [values]}``.

SMTPeter posts ``application/x-www-form-urlencoded``; JSON and ``multipart/form-data`` are
accepted too so a proxy or a replay tool may re-encode. After this step nothing else looks
at content types: webhook parsing sees one shape whatever the wire format was.
"""

from __future__ import annotations

import email.parser
import email.policy
import email.utils
import json
import re
from email.message import Message
from typing import Final
from urllib.parse import parse_qsl

from aiohttp.helpers import parse_mimetype

from exporter.errors import Outcome, Rejected, invalid

#: A decoded body: field name (lowercase, ``[]`` suffix removed) to its values in order.
#: Bytes that are not valid in the body's charset are kept as lone surrogates
#: (``surrogateescape``), so a raw message field can be turned back into its exact bytes
#: with :func:`raw_bytes`; text fields go through :func:`clean_text` instead.
Fields = dict[str, list[str]]

FORM: Final = "application/x-www-form-urlencoded"
JSON: Final = "application/json"
MULTIPART: Final = "multipart/form-data"
ACCEPTED_TYPES: Final = (FORM, JSON, MULTIPART)

#: More fields than any SMTPeter webhook has, by an order of magnitude.
MAX_FIELDS: Final = 256

# "tags[]" and "tags[0]" are how PHP-style encoders repeat a field.
_INDEXED_NAME: Final = re.compile(r"(.*?)\[[^\]]*\]")
_multipart_parser: Final = email.parser.BytesParser(policy=email.policy.compat32)


def media_type(content_type: str) -> str:
    """The accepted media type named by a ``Content-Type`` value, or a 415 rejection.

    Checked before the body is read, so an unsupported upload costs nothing.
    """
    mime = parse_mimetype(content_type)
    essence = JSON if mime.suffix == "json" else f"{mime.type}/{mime.subtype}"
    if essence in ACCEPTED_TYPES:
        return essence
    shown = essence if essence != "/" else "none"
    raise Rejected(
        415,
        Outcome.UNSUPPORTED_MEDIA,
        f"content type {shown!r} is not supported; send one of {', '.join(ACCEPTED_TYPES)}",
    )


def decode(body: bytes, content_type: str, essence: str | None = None) -> Fields:
    """Decode ``body`` according to the ``Content-Type`` header value ``content_type``.

    ``essence`` is what :func:`media_type` returned for it, when the caller already asked.
    """
    if essence is None:
        essence = media_type(content_type)
    if essence == FORM:
        charset = parse_mimetype(content_type).parameters.get("charset", "utf-8")
        return _decode_form(body, charset)
    if essence == JSON:
        return _decode_json(body)
    return _decode_multipart(body, content_type)


def field_name(raw: str) -> str:
    """Lowercase, trimmed, with any ``[...]`` index suffix removed."""
    name = raw.strip().lower()
    match = _INDEXED_NAME.fullmatch(name)
    return match.group(1) if match else name


def _add(fields: Fields, raw_name: str, value: str) -> None:
    name = field_name(raw_name)
    values = fields.get(name)
    if values is None:
        if len(fields) >= MAX_FIELDS:
            raise invalid(f"more than {MAX_FIELDS} distinct fields")
        fields[name] = [value]
    else:
        values.append(value)


def clean_text(value: str) -> str:
    """``value`` with any undecodable bytes replaced by U+FFFD, safe to log as JSON."""
    if value.isascii():
        return value
    return raw_bytes(value).decode("utf-8", "replace")


def raw_bytes(value: str) -> bytes:
    """The bytes a field value was sent as (for UTF-8 and 8-bit data alike)."""
    try:
        return value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        # A surrogate that JSON spelled out (\ud800) stands for no byte at all.
        return value.encode("utf-8", "replace")


def _text(body: bytes, charset: str) -> str:
    try:
        return body.decode(charset, errors="surrogateescape")
    except LookupError:
        raise invalid(f"unknown charset {charset!r}") from None
    except UnicodeError:
        # surrogateescape only covers bytes >= 0x80; wider codecs can fail on others.
        return body.decode(charset, errors="replace")


def _decode_form(body: bytes, charset: str) -> Fields:
    try:
        pairs = parse_qsl(
            _text(body, charset),
            keep_blank_values=True,
            max_num_fields=MAX_FIELDS * 4,
            encoding=charset,
            errors="surrogateescape",
        )
    except ValueError:
        raise invalid(f"more than {MAX_FIELDS * 4} form fields") from None
    fields: Fields = {}
    for name, value in pairs:
        _add(fields, name, value)
    return fields


def _json_scalar(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _decode_json(body: bytes) -> Fields:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        # json.JSONDecodeError and UnicodeDecodeError are both ValueErrors; RecursionError is
        # what a few thousand nested brackets give.
        raise invalid("body is not valid JSON") from None
    if not isinstance(document, dict):
        raise invalid("JSON body must be an object of fields")
    return json_fields(document)


def json_fields(document: dict[str, object]) -> Fields:
    """The fields of a decoded JSON object: scalars as text, lists as repeated values."""
    fields: Fields = {}
    for name, value in document.items():
        if value is None:
            continue
        if isinstance(value, list):
            for item in value:
                if item is not None:
                    _add(fields, name, _json_scalar(item))
        else:
            _add(fields, name, _json_scalar(value))
    return fields


def _decode_multipart(body: bytes, content_type: str) -> Fields:
    if "boundary=" not in content_type.lower():
        raise invalid("multipart/form-data without a boundary parameter")
    head = b"Content-Type: " + content_type.encode("latin-1", errors="replace") + b"\r\n\r\n"
    message = _multipart_parser.parsebytes(head + body)
    parts = message.get_payload()
    if not message.is_multipart() or not isinstance(parts, list):
        raise invalid("multipart body has no parts")
    fields: Fields = {}
    for part in parts:
        if not isinstance(part, Message):
            continue
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            # RFC 2231 encoded names come back as (charset, language, value) tuples.
            name = email.utils.collapse_rfc2231_value(name) if name else ""
        if not name:
            continue
        raw = part.get_payload(decode=True)
        data = raw if isinstance(raw, bytes) else b""
        _add(fields, name, _text(data, part.get_content_charset() or "utf-8"))
    return fields
