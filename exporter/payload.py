"""Request bodies to fields: form, JSON and multipart all become ``{name: [values]}``.

SMTPeter posts ``application/x-www-form-urlencoded``; JSON and ``multipart/form-data`` are
accepted too so a proxy or a replay tool may re-encode. After this step nothing else looks
at content types: webhook parsing sees one shape whatever the wire format was.

Everything here is bounded by what a client cannot choose: the number of values
(:data:`MAX_VALUES`), distinct names (:data:`MAX_FIELDS`), JSON nesting
(:data:`MAX_JSON_DEPTH`), multipart part headers (:data:`MAX_PART_HEADER`), and charsets
(Python codecs that are not character sets are refused, see :mod:`exporter.mail.charsets`). Work on
large values is done a slice at a time (:data:`SLICE`), so that when a big body is decoded
in a worker thread no single call holds the GIL, and with it the event loop, for long.
"""

from __future__ import annotations

import binascii
import codecs
import json
import re
from collections.abc import Mapping
from functools import lru_cache
from types import MappingProxyType
from typing import Final
from urllib.parse import unquote_to_bytes

from aiohttp.helpers import parse_mimetype

from exporter.errors import Outcome, Rejected, invalid
from exporter.mail.charsets import MAX_CHARSET_NAME, codec_for

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
#: Most values one body may carry, all names together: form pairs, multipart parts, JSON
#: values and list items. SMTPeter sends about a dozen, plus a few tags.
MAX_VALUES: Final = MAX_FIELDS * 4
#: Longest field name looked at; a longer one is cut (names are words, not data).
MAX_NAME: Final = 256
#: Deepest JSON nesting accepted. SMTPeter sends a flat object whose ``tags`` may be a list
#: (depth 2); anything nested deeper than this is not a webhook, and nesting near Python's
#: recursion limit would crash the parser or the serializer instead of being refused.
MAX_JSON_DEPTH: Final = 32
#: Most keys, values and list items a JSON body may hold, at every depth together. Nested
#: values are kept as compact JSON text for the log's ``extra``; this bounds that work.
MAX_JSON_ITEMS: Final = 4096
#: Longest boundary RFC 2046 (section 5.1.1) allows, and the most header bytes one
#: multipart part may have (a form-data part has two or three short header lines).
MAX_BOUNDARY: Final = 70
MAX_PART_HEADER: Final = 8 * 1024
#: Work on values longer than this is done a slice at a time (see the module docstring):
#: at the slowest codec measured (euc_jp on random bytes, ~64 ms per MiB) a slice costs
#: about 4 ms.
SLICE: Final = 64 * 1024


# "tags[]" and "tags[0]" are how PHP-style encoders repeat a field. Greedy and without
# brackets inside the index, so matching is linear in the name.
_INDEXED_NAME: Final = re.compile(r"(.*)\[[^\[\]]*\]")
# A parameter of a header value: name=token or name="quoted string" (RFC 2045 section 5.1),
# with the RFC 2231 star for extended values.
_PARAM: Final = re.compile(r';\s*([^\s=;"]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;]*))', re.DOTALL)
_QUOTED_PAIR: Final = re.compile(r"\\(.)", re.DOTALL)
_HEAD_END: Final = re.compile(rb"\r?\n\r?\n")
_FOLDED: Final = re.compile(r"\n[ \t]+")


#: The codec of each charset name seen, bounded: nearly every body declares none (UTF-8) or
#: one of a handful of spellings, and the lookup folds the name each time otherwise.
_codec_for: Final = lru_cache(maxsize=256)(codec_for)


def text_codec(charset: str, field: str | None = None) -> str:
    """The Python codec for a declared charset, or a 400 naming the charset (and the field
    it was declared for, in a multipart body)."""
    codec = _codec_for(charset)
    if codec is None:
        raise invalid(f"unknown charset {charset[:MAX_CHARSET_NAME]!r}", field)
    return codec


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
    params = header_params(content_type)
    if essence == FORM:
        return _decode_form(body, text_codec(params.get("charset", "utf-8")))
    if essence == JSON:
        return _decode_json(body)
    return _decode_multipart(body, params.get("boundary", ""))


def header_params(value: str) -> dict[str, str]:
    """The parameters of a header value (``type/sub; name=value; ...``), names lowercased.

    Quoted strings are unquoted; an RFC 2231 extended value (``name*=utf-8''a%20b``) is
    decoded and wins over the plain one.
    """
    params: dict[str, str] = {}
    if ";" not in value:  # what SMTPeter sends: a media type alone
        return params
    extended: dict[str, str] = {}
    for match in _PARAM.finditer(value):
        name = match.group(1).lower()
        quoted = match.group(2)
        text = _QUOTED_PAIR.sub(r"\1", quoted) if quoted is not None else match.group(3).strip()
        if name.endswith("*"):
            extended[name[:-1]] = _rfc2231(text)
        else:
            params.setdefault(name, text)
    params.update(extended)
    return params


def _rfc2231(value: str) -> str:
    """``charset'language'percent-encoded`` (RFC 2231 section 4) as text."""
    charset, quote, rest = value.partition("'")
    if not quote:
        return value
    _, _, encoded = rest.partition("'")
    data = _percent_decode(encoded.encode("utf-8", "surrogateescape"))
    return _text(data, text_codec(charset or "us-ascii"))


def field_name(raw: str) -> str:
    """Lowercase, trimmed, with any ``[...]`` index suffix removed."""
    name = raw[:MAX_NAME].strip().lower()
    if not name.endswith("]"):
        return name
    match = _INDEXED_NAME.fullmatch(name)
    return match.group(1) if match else name


def _add(fields: Fields, count: list[int], raw_name: str, value: str) -> None:
    """Append a value; ``count`` is the one-element counter of values so far."""
    count[0] += 1
    if count[0] > MAX_VALUES:
        raise invalid(f"more than {MAX_VALUES} values")
    name = field_name(raw_name)
    values = fields.get(name)
    if values is None:
        if len(fields) >= MAX_FIELDS:
            raise invalid(f"more than {MAX_FIELDS} distinct fields")
        fields[name] = [value]
    else:
        values.append(value)


class LongText(str):
    """A long value with the bytes :func:`raw_bytes` gives for it already worked out.

    Encoding 10 MiB of text back to bytes takes up to ~45 ms (random bytes, every other
    one an escape). The decode step, which may run in a worker thread, does it a slice at
    a time; parsing the webhook on the event loop then finds the bytes ready.
    """

    raw: bytes


def _long(text: str, raw: bytes | None = None) -> str:
    """``text``, as :class:`LongText` when it is longer than a slice."""
    if len(text) <= SLICE:
        return text
    value = LongText(text)
    value.raw = raw if raw is not None else _encode(text)
    return value


def _encode(text: str) -> bytes:
    return b"".join(_raw(text[i : i + SLICE]) for i in range(0, len(text), SLICE))


def _raw(text: str) -> bytes:
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        # A surrogate that JSON spelled out (\ud800) stands for no byte at all.
        return text.encode("utf-8", "replace")


def clean_text(value: str) -> str:
    """``value`` with any undecodable bytes replaced by U+FFFD, safe to log as JSON."""
    if value.isascii():
        return value
    return raw_bytes(value).decode("utf-8", "replace")


def raw_bytes(value: str) -> bytes:
    """The bytes a field value was sent as (for UTF-8 and 8-bit data alike)."""
    if isinstance(value, LongText):
        return value.raw
    return _raw(value)


def _text(data: bytes, codec: str) -> str:
    """``data`` in ``codec``, a slice at a time; invalid bytes kept as lone surrogates.

    Codecs that cannot keep them (UTF-16 and -32, UTF-7, a few CJK ones) replace them
    instead; data that even ``replace`` cannot get through is a 400.
    """
    if codec == "utf-8" and len(data) <= SLICE:
        # Nearly every value: what the incremental decoder below would make of it, at once.
        return data.decode("utf-8", "surrogateescape")
    codec = _byte_order(data, codec)
    for errors in ("surrogateescape", "replace"):
        decoder = codecs.getincrementaldecoder(codec)(errors)
        try:
            if len(data) <= SLICE:
                text = decoder.decode(data, final=True)
            else:
                parts = [decoder.decode(data[i : i + SLICE]) for i in range(0, len(data), SLICE)]
                parts.append(decoder.decode(b"", final=True))
                text = "".join(parts)
        except UnicodeError:
            continue
        # UTF-8 with surrogateescape round-trips: the bytes are the ones sent.
        return _long(text, data if codec == "utf-8" and errors == "surrogateescape" else None)
    raise invalid(f"a value is not valid {codec}")


#: UTF-16 and UTF-32 without a byte-order mark are big-endian (RFC 2781 section 4.3);
#: Python's incremental decoders refuse them instead.
_BYTE_ORDER_MARKS: Final[Mapping[str, tuple[tuple[bytes, ...], str]]] = MappingProxyType(
    {
        "utf-16": ((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE), "utf-16-be"),
        "utf-32": ((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE), "utf-32-be"),
    }
)


def _byte_order(data: bytes, codec: str) -> str:
    marks = _BYTE_ORDER_MARKS.get(codec)
    if marks is None or data.startswith(marks[0]):
        return codec
    return marks[1]


def _percent_decode(data: bytes) -> bytes:
    """``%XX`` escapes decoded, a slice at a time, never cutting an escape in two."""
    if b"%" not in data:
        return data
    out: list[bytes] = []
    start = 0
    while start < len(data):
        end = min(start + SLICE, len(data))
        if end < len(data):
            cut = data.rfind(b"%", end - 2, end)
            end = cut if cut > start else end
        out.append(unquote_to_bytes(data[start:end]))
        start = end
    return b"".join(out)


#: Field names of UTF-8 forms as sent, to the names they stand for (a webhook's dozen names
#: arrive in every post), bounded.
_FORM_NAMES: Final[dict[bytes, str]] = {}
_MAX_FORM_NAMES: Final = 1024


def _decode_form(body: bytes, codec: str) -> Fields:
    """``a=1&b=2`` on bytes: ``+`` to space, split, percent-decode, then the charset."""
    # "+" is never a separator ("&" and "=" sent as data are %26 and %3D): replaced in one go.
    pairs = body.replace(b"+", b" ").split(b"&", MAX_VALUES)
    if len(pairs) > MAX_VALUES:
        raise invalid(f"more than {MAX_VALUES} values")
    fields: Fields = {}
    names = _FORM_NAMES if codec == "utf-8" else {}
    for pair in pairs:  # no more than MAX_VALUES of them: no count to keep
        if not pair:
            continue
        raw_name, _, raw_value = pair.partition(b"=")
        name = names.get(raw_name)
        if name is None:
            name = field_name(_form_text(raw_name[: MAX_NAME * 3], codec))
            if names is _FORM_NAMES and len(raw_name) <= MAX_NAME:
                if len(names) >= _MAX_FORM_NAMES:
                    names.clear()
                names[raw_name] = name
        value = _form_text(raw_value, codec)
        values = fields.get(name)
        if values is None:
            if len(fields) >= MAX_FIELDS:
                raise invalid(f"more than {MAX_FIELDS} distinct fields")
            fields[name] = [value]
        else:
            values.append(value)
    return fields


def _form_text(data: bytes, codec: str) -> str:
    if b"%" in data:
        data = unquote_to_bytes(data) if len(data) <= SLICE else _percent_decode(data)
    if codec == "utf-8" and len(data) <= SLICE:  # nearly every value: see _text
        return data.decode("utf-8", "surrogateescape")
    return _text(data, codec)


def _json_scalar(value: object) -> str:
    if isinstance(value, str):
        return _long(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    # Nested: bounded by _check_nesting, so the serializer's recursion is too.
    return _long(json.dumps(value, separators=(",", ":"), ensure_ascii=False))


def _decode_json(body: bytes) -> Fields:
    try:
        document = json.loads(body)
    except RecursionError:
        # Only nesting hundreds deep gets here: the parser recurses once per level.
        raise _too_deep() from None
    except ValueError:
        # json.JSONDecodeError and UnicodeDecodeError are both ValueErrors.
        raise invalid("body is not valid JSON") from None
    if not isinstance(document, dict):
        raise invalid("JSON body must be an object of fields")
    return json_fields(document)


def _too_deep() -> Rejected:
    return invalid(f"JSON body is nested deeper than {MAX_JSON_DEPTH} levels")


def _check_nesting(document: dict[str, object]) -> None:
    """Refuse nesting deeper than :data:`MAX_JSON_DEPTH` or more than :data:`MAX_JSON_ITEMS`.

    Iterative, and each container is sized before it is looked into, so a hostile document
    costs at most :data:`MAX_JSON_ITEMS` steps.
    """
    stack: list[tuple[dict[str, object] | list[object], int]] = [(document, 1)]
    items = 0
    while stack:
        container, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise _too_deep()
        items += len(container)
        if items > MAX_JSON_ITEMS:
            raise invalid(f"JSON body holds more than {MAX_JSON_ITEMS} values")
        children = container.values() if isinstance(container, dict) else container
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))


def json_fields(document: dict[str, object]) -> Fields:
    """The fields of a decoded JSON object: scalars as text, lists as repeated values."""
    _check_nesting(document)
    fields: Fields = {}
    count = [0]
    for name, value in document.items():
        if value is None:
            continue
        if isinstance(value, list):
            for item in value:
                if item is not None:
                    _add(fields, count, name, _json_scalar(item))
        else:
            _add(fields, count, name, _json_scalar(value))
    return fields


def _decode_multipart(body: bytes, boundary: str) -> Fields:
    """``multipart/form-data`` (RFC 7578), read in one pass without recursion.

    Parts are not nested in form data; a part that says it is ``multipart/*`` is taken as
    the text it holds, like any other.
    """
    if not boundary:
        raise invalid("multipart/form-data without a boundary parameter")
    if len(boundary) > MAX_BOUNDARY or not boundary.isascii():
        raise invalid(f"multipart boundary must be 1 to {MAX_BOUNDARY} ASCII characters")
    parts = _parts(body, b"--" + boundary.encode("ascii"))
    if not parts:
        raise invalid("multipart body has no parts")
    fields: Fields = {}
    count = [0]
    for part in parts:
        name, value = _part_field(part)
        if name:
            _add(fields, count, name, value)
    return fields


def _parts(body: bytes, delimiter: bytes) -> list[bytes]:
    """The parts between delimiter lines; a missing close delimiter is tolerated.

    A delimiter is a line of its own (RFC 2046 section 5.1.1): at the very start, or after
    a line break, whose CR (if any) belongs to the delimiter, not to the part before it.
    """
    # Counted first, in one pass in C, so a body of a million empty parts is refused before
    # a million pieces are made. The close delimiter is one more.
    if body.count(b"\n" + delimiter) > MAX_VALUES + 1:
        raise invalid(f"more than {MAX_VALUES} values")
    pieces = body.split(b"\n" + delimiter)
    if pieces[0].startswith(delimiter):
        pieces[0:1] = [b"", pieces[0][len(delimiter) :]]
    parts: list[list[bytes]] = []
    for piece in pieces[1:]:
        line, newline, rest = piece.partition(b"\n")
        if line.startswith(b"--"):  # the close delimiter: the rest is an epilogue
            break
        if not line.strip():
            parts.append([rest if newline else b""])
        elif parts:  # a longer line that merely starts like the delimiter: content
            parts[-1].append(b"\n" + delimiter + piece)
    return [_without_cr(b"".join(chunks)) for chunks in parts]


def _without_cr(part: bytes) -> bytes:
    """The part without the CR of the CRLF that came before the next delimiter."""
    return part[:-1] if part.endswith(b"\r") else part


def _part_field(part: bytes) -> tuple[str, str]:
    """A part's field name (from Content-Disposition) and its value as text."""
    if part.startswith((b"\r\n", b"\n")):
        head, content = b"", part[2 if part.startswith(b"\r\n") else 1 :]
    else:
        end = _HEAD_END.search(part, 0, MAX_PART_HEADER + 4)
        if end is None and len(part) > MAX_PART_HEADER:
            raise invalid(f"a multipart part has more than {MAX_PART_HEADER} bytes of headers")
        head, content = (part, b"") if end is None else (part[: end.start()], part[end.end() :])
    headers = _part_headers(head)
    name = header_params(headers.get("content-disposition", "")).get("name", "")
    if not name:
        return "", ""
    content_type = headers.get("content-type", "")
    charset = header_params(content_type).get("charset") or "utf-8"
    codec = text_codec(charset, field_name(name))
    data = _transfer_decode(content, headers.get("content-transfer-encoding", ""))
    return name, _text(data, codec)


def _part_headers(head: bytes) -> dict[str, str]:
    """Header name (lowercase) to value, folded lines joined; the first of each name wins."""
    text = head.decode("utf-8", "surrogateescape").replace("\r\n", "\n")
    headers: dict[str, str] = {}
    for line in _FOLDED.sub(" ", text).split("\n"):
        name, colon, value = line.partition(":")
        if colon:
            headers.setdefault(name.strip().lower(), value.strip())
    return headers


def _transfer_decode(content: bytes, encoding: str) -> bytes:
    """Base64 and quoted-printable parts decoded (RFC 7578 deprecates them; some still send
    them); anything else is taken as the bytes sent."""
    encoding = encoding.strip().lower()
    if encoding == "base64":
        try:
            return binascii.a2b_base64(content)
        except binascii.Error:  # bad padding: keep what was sent, as the email package did
            return content
    if encoding == "quoted-printable":
        return binascii.a2b_qp(content)
    return content
