"""SMTPeter webhook fields to typed events: every field is checked and bounded here.

SMTPeter documents its variables loosely (older accounts send fewer, every field but
``recipient`` may be missing or empty), so the rules are: trim everything, cut overlong
values and say so, keep unknown fields for the log, and reject with a 400 only what would
make the event wrong (no recipient, a malformed code, a time that is not a time).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Final, TypedDict

from exporter.domains import InvalidDomainError, normalize_domain
from exporter.errors import invalid
from exporter.events import (
    CODE_CLASSES,
    AbuseEvent,
    BounceEvent,
    ClickEvent,
    DeliveryEvent,
    Event,
    FailureEvent,
    Kind,
    OpenEvent,
    enhanced_status,
)
from exporter.mail.smtp import normalize_state
from exporter.payload import Fields, clean_text, raw_bytes

#: Longest value kept per field; longer ones are cut and the field is listed in ``truncated``.
DEFAULT_FIELD_LIMIT: Final = 512
FIELD_LIMITS: Final[dict[str, int]] = {
    "description": 4096,
    "original": 2048,
    "useragent": 1024,
    # A raw message is bounded by the body limit, not cut: a cut message may lose its
    # delivery-status part.
    "mime": 1 << 40,
}
#: An address longer than this is not an address (RFC 5321 allows 64 + 1 + 255).
RECIPIENT_LIMIT: Final = 512
MAX_TAGS: Final = 32
TAG_LIMIT: Final = 128
#: Most ``;``-separated pieces looked at for tags, empty ones included.
MAX_TAG_PIECES: Final = MAX_TAGS * 4
#: Unknown fields kept for the log line, and how much of each.
MAX_EXTRA_FIELDS: Final = 16
EXTRA_NAME_LIMIT: Final = 64
EXTRA_VALUE_LIMIT: Final = 256
#: Latest instant ``time`` may name: the end of year 9999, where ``datetime`` ends.
MAX_UNIX_TIME: Final = 253_402_300_799

#: ``type`` values SMTPeter (or a re-encoding proxy) may send for each kind.
TYPE_NAMES: Final[dict[str, Kind]] = {
    "failure": Kind.FAILURE,
    "failures": Kind.FAILURE,
    "delivery": Kind.DELIVERY,
    "deliveries": Kind.DELIVERY,
    "open": Kind.OPEN,
    "opens": Kind.OPEN,
    "click": Kind.CLICK,
    "clicks": Kind.CLICK,
    "bounce": Kind.BOUNCE,
    "bounces": Kind.BOUNCE,
    "abuse": Kind.ABUSE,
    "abuses": Kind.ABUSE,
}

_COMMON_FIELDS: Final = frozenset({"id", "type", "timestamp", "time", "recipient", "tags"})
#: Fields each kind documents beyond the common ones; anything else is ``extra``.
KNOWN_FIELDS: Final[dict[Kind, frozenset[str]]] = {
    Kind.FAILURE: _COMMON_FIELDS | {"action", "state", "code", "extended", "description"},
    Kind.DELIVERY: _COMMON_FIELDS | {"code", "extended", "description"},
    Kind.OPEN: _COMMON_FIELDS | {"ip", "useragent", "referer"},
    Kind.CLICK: _COMMON_FIELDS | {"ip", "useragent", "referer", "original"},
    Kind.BOUNCE: _COMMON_FIELDS | {"envelope", "mailfrom", "rcptto", "mime"},
    Kind.ABUSE: (_COMMON_FIELDS - {"recipient"}) | {"emailfrom", "mime"},
}

_UNIX_TIME: Final = re.compile(r"[0-9]{1,12}")


class _Reader:
    """Single-valued, trimmed, bounded access to decoded fields; remembers what it cut."""

    __slots__ = ("_fields", "truncated")

    def __init__(self, fields: Fields) -> None:
        self._fields = fields
        self.truncated: list[str] = []

    def _one(self, name: str) -> str:
        values = self._fields.get(name)
        if not values:
            return ""
        if len(values) > 1:
            raise invalid(f"{name} was given {len(values)} times; send it once", name)
        value = values[0]
        limit = FIELD_LIMITS.get(name, DEFAULT_FIELD_LIMIT)
        if len(value) > limit:
            self.truncated.append(name)
            value = value[:limit]
        return value

    def text(self, name: str) -> str:
        """The field as trimmed, valid Unicode text; empty when absent."""
        return clean_text(self._one(name).strip())

    def message(self, name: str) -> bytes:
        """The field as the bytes sent (a raw MIME message), untrimmed."""
        return raw_bytes(self._one(name))

    def values(self, name: str) -> list[str]:
        return self._fields.get(name, [])


def resolve_kind(fields: Fields) -> Kind:
    """The kind named by ``type``, for ``POST /webhooks`` which serves every kind."""
    name = _Reader(fields).text("type")
    if not name:
        raise invalid("type is required when posting to /webhooks", "type")
    kind = TYPE_NAMES.get(name.lower())
    if kind is None:
        raise invalid(f"type {name[:64]!r} is not a webhook type this service receives", "type")
    return kind


def parse_event(kind: Kind, fields: Fields) -> Event:
    """Build the typed event for ``kind`` or raise :class:`~exporter.errors.Rejected`."""
    reader = _Reader(fields)
    _check_type(reader, kind)
    common = _Common(
        message_id=reader.text("id"),
        occurred_at=_occurred_at(reader),
        tags=_tags(reader.values("tags")),
        extra=_extra(fields, KNOWN_FIELDS[kind]),
    )
    return _BUILDERS[kind](reader, common)


def _check_type(reader: _Reader, kind: Kind) -> None:
    name = reader.text("type")
    if name and TYPE_NAMES.get(name.lower()) is not kind:
        raise invalid(f"type {name[:64]!r} does not match this endpoint ({kind})", "type")


def _recipient(reader: _Reader) -> tuple[str, str]:
    values = reader.values("recipient")
    if len(values) > 1:
        raise invalid("recipient was given more than once; send it once", "recipient")
    # Trimmed and measured before it is cleaned: cleaning costs in proportion to the length.
    recipient = values[0].strip().strip("<>").strip() if values else ""
    if not recipient:
        raise invalid("recipient is required", "recipient")
    if len(recipient) > RECIPIENT_LIMIT:
        raise invalid(f"recipient is longer than {RECIPIENT_LIMIT} characters", "recipient")
    recipient = clean_text(recipient)
    local, at, raw_domain = recipient.rpartition("@")
    if not at or not raw_domain.strip():
        raise invalid("recipient has no domain", "recipient")
    try:
        domain = normalize_domain(raw_domain)
    except InvalidDomainError as exc:
        raise invalid(f"recipient domain is invalid: {exc}", "recipient") from None
    return f"{local}@{domain}", domain


def _occurred_at(reader: _Reader) -> datetime | None:
    unix = reader.text("time")
    if unix:
        if _UNIX_TIME.fullmatch(unix) is None or int(unix) > MAX_UNIX_TIME:
            raise invalid("time must be whole seconds since the Unix epoch", "time")
        return datetime.fromtimestamp(int(unix), tz=UTC)
    stamp = reader.text("timestamp")
    if not stamp:
        return None
    try:
        parsed = datetime.fromisoformat(stamp)
    except ValueError:
        raise invalid("timestamp must look like 'YYYY-MM-DD HH:MM:SS'", "timestamp") from None
    # SMTPeter's timestamp carries no zone; read it as UTC, as its unix ``time`` is.
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        # 0001-01-01T00:00:00+05:00 is a valid ISO 8601 time whose UTC falls before year 1.
        raise invalid(
            "timestamp must fall within the years 1 to 9999 once its UTC offset is applied",
            "timestamp",
        ) from None


def _tags(values: list[str]) -> tuple[str, ...]:
    """Tags arrive as ``a;b``, as repeated ``tags[]``, or as a JSON list: one flat tuple.

    At most :data:`MAX_TAG_PIECES` pieces are looked at, so ``;;;;...`` costs nothing.
    """
    tags: list[str] = []
    looked_at = 0
    for value in values:
        for part in value.split(";", MAX_TAG_PIECES - looked_at)[: MAX_TAG_PIECES - looked_at]:
            looked_at += 1
            tag = clean_text(part[: TAG_LIMIT * 4].strip()[:TAG_LIMIT])
            if tag:
                tags.append(tag)
                if len(tags) == MAX_TAGS:
                    return tuple(tags)
        if looked_at >= MAX_TAG_PIECES:
            break
    return tuple(tags)


def _extra(fields: Fields, known: frozenset[str]) -> tuple[tuple[str, str], ...]:
    extra: list[tuple[str, str]] = []
    for name, values in fields.items():
        if name in known:
            continue
        joined = ";".join(value[:EXTRA_VALUE_LIMIT] for value in values[:EXTRA_VALUE_LIMIT])
        value = clean_text(joined[:EXTRA_VALUE_LIMIT])
        extra.append((clean_text(name[:EXTRA_NAME_LIMIT]), value))
        if len(extra) == MAX_EXTRA_FIELDS:
            break
    return tuple(extra)


@lru_cache(maxsize=1024)  # SMTPeter sends a handful of spellings
def _state(raw: str) -> str:
    """The state label of ``raw`` (``other`` when none is given or known), remembered."""
    return normalize_state(raw) or "other"


def _code(reader: _Reader) -> str:
    code = reader.text("code")
    if code and code not in CODE_CLASSES:
        raise invalid("code must be a three-digit SMTP reply code from 200 to 599", "code")
    return code


def _extended(reader: _Reader) -> str:
    text = reader.text("extended")
    if not text:
        return ""
    status = enhanced_status(text)
    if status is None:
        raise invalid(
            "extended must be an enhanced status code class.subject.detail, class 2, 4 or 5",
            "extended",
        )
    return str(status)


class _Common(TypedDict):
    message_id: str
    occurred_at: datetime | None
    tags: tuple[str, ...]
    extra: tuple[tuple[str, str], ...]


def _failure(reader: _Reader, common: _Common) -> Event:
    recipient, domain = _recipient(reader)
    state_raw = reader.text("state")
    return FailureEvent(
        **common,
        recipient=recipient,
        domain=domain,
        action=reader.text("action"),
        state_raw=state_raw,
        state=_state(state_raw),
        code=_code(reader),
        extended=_extended(reader),
        description=reader.text("description"),
        truncated=tuple(reader.truncated),
    )


def _delivery(reader: _Reader, common: _Common) -> Event:
    recipient, domain = _recipient(reader)
    return DeliveryEvent(
        **common,
        recipient=recipient,
        domain=domain,
        code=_code(reader),
        extended=_extended(reader),
        description=reader.text("description"),
        truncated=tuple(reader.truncated),
    )


def _open(reader: _Reader, common: _Common) -> Event:
    recipient, domain = _recipient(reader)
    return OpenEvent(
        **common,
        recipient=recipient,
        domain=domain,
        ip=reader.text("ip"),
        useragent=reader.text("useragent"),
        referer=reader.text("referer"),
        truncated=tuple(reader.truncated),
    )


def _click(reader: _Reader, common: _Common) -> Event:
    recipient, domain = _recipient(reader)
    return ClickEvent(
        **common,
        recipient=recipient,
        domain=domain,
        ip=reader.text("ip"),
        useragent=reader.text("useragent"),
        referer=reader.text("referer"),
        original=reader.text("original"),
        truncated=tuple(reader.truncated),
    )


def _bounce(reader: _Reader, common: _Common) -> Event:
    recipient, domain = _recipient(reader)
    return BounceEvent(
        **common,
        recipient=recipient,
        domain=domain,
        envelope=reader.text("envelope"),
        mailfrom=reader.text("mailfrom"),
        rcptto=reader.text("rcptto"),
        mime=_mime(reader),
        truncated=tuple(reader.truncated),
    )


def _abuse(reader: _Reader, common: _Common) -> Event:
    return AbuseEvent(
        **common,
        emailfrom=reader.text("emailfrom"),
        mime=_mime(reader),
        truncated=tuple(reader.truncated),
    )


def _mime(reader: _Reader) -> bytes:
    mime = reader.message("mime")
    if not mime.strip():
        raise invalid("mime is required: the whole received message", "mime")
    return mime


_BUILDERS: Final[dict[Kind, Callable[[_Reader, _Common], Event]]] = {
    Kind.FAILURE: _failure,
    Kind.DELIVERY: _delivery,
    Kind.OPEN: _open,
    Kind.CLICK: _click,
    Kind.BOUNCE: _bounce,
    Kind.ABUSE: _abuse,
}
