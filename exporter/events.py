"""Typed webhook events: what SMTPeter told us, validated and normalized, nothing more.

Parsing (``exporter.webhook``) builds these; classification, metrics and logging only read
them. Every event is a frozen dataclass so no later step can change what was received.
:data:`Event` is the closed union of the kinds: a dispatch on it ends in
``case _: assert_never(event)``, so mypy names the step that forgets a new kind.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from typing import ClassVar, Final, TypeAlias

from exporter.domains import Provider, provider_of
from exporter.mail.smtp import EnhancedStatus, parse_enhanced_status

#: The ``code_class`` of every valid reply code (200-599); anything else is ``none``. A
#: table, so that the class is a lookup once per event, not a match per reader.
CODE_CLASSES: Final[dict[str, str]] = {str(code): f"{code // 100}xx" for code in range(200, 600)}
NO_CODE: Final = "none"


@lru_cache(maxsize=1024)  # a few dozen codes occur in practice
def enhanced_status(text: str) -> EnhancedStatus | None:
    """:func:`~exporter.mail.smtp.parse_enhanced_status`, remembered for the codes seen."""
    return parse_enhanced_status(text)


class Kind(StrEnum):
    """The webhook kinds this service receives, as used in paths, ``type`` and labels."""

    FAILURE = "failure"
    DELIVERY = "delivery"
    OPEN = "open"
    CLICK = "click"
    BOUNCE = "bounce"
    ABUSE = "abuse"


@dataclass(frozen=True, slots=True, kw_only=True)
class BaseEvent:
    """Fields every SMTPeter webhook shares."""

    kind: ClassVar[Kind]

    message_id: str
    #: When SMTPeter says it happened: from ``time``, else ``timestamp`` (read as UTC).
    occurred_at: datetime | None
    tags: tuple[str, ...]
    #: Fields SMTPeter sent that this version does not know, bounded, for the log line.
    extra: tuple[tuple[str, str], ...]
    #: Names of fields whose values were cut to the field limit.
    truncated: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class RecipientEvent(BaseEvent):
    """An event about one recipient: every kind but abuse reports."""

    recipient: str
    #: The recipient's domain, normalized (lowercase, IDNA ASCII, no trailing dot).
    domain: str

    @property
    def provider(self) -> Provider:
        """Who runs the mailbox behind :attr:`domain` (``other`` for unlisted domains)."""
        return provider_of(self.domain)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplyEvent(RecipientEvent):
    """An event carrying the receiving server's reply: a failure or a delivery.

    The reply's code class and enhanced status are worked out once, when the event is made;
    classification, metrics and logs read them, and none of them parses a string again.
    """

    code: str
    extended: str
    description: str
    #: ``2xx``, ``4xx`` or ``5xx`` for a valid ``code``, else ``none``.
    code_class: str = field(init=False)
    #: ``extended`` parsed, or ``None`` when it is empty.
    status: EnhancedStatus | None = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "code_class", CODE_CLASSES.get(self.code, NO_CODE))
        object.__setattr__(self, "status", enhanced_status(self.extended))


@dataclass(frozen=True, slots=True, kw_only=True)
class FailureEvent(ReplyEvent):
    """A delivery that failed during the SMTP conversation, or bounced later (state bounce)."""

    kind: ClassVar[Kind] = Kind.FAILURE

    action: str
    #: ``state`` exactly as sent (trimmed); ``state`` is its normalized form.
    state_raw: str
    state: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryEvent(ReplyEvent):
    """A message the receiving server accepted."""

    kind: ClassVar[Kind] = Kind.DELIVERY


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenEvent(RecipientEvent):
    """A recipient loaded the tracking pixel."""

    kind: ClassVar[Kind] = Kind.OPEN

    ip: str
    useragent: str
    referer: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ClickEvent(RecipientEvent):
    """A recipient followed a tracked link; ``original`` is the link's target."""

    kind: ClassVar[Kind] = Kind.CLICK

    ip: str
    useragent: str
    referer: str
    original: str


@dataclass(frozen=True, slots=True, kw_only=True)
class BounceEvent(RecipientEvent):
    """A bounce message that came back for ``recipient``; ``mime`` is the whole message."""

    kind: ClassVar[Kind] = Kind.BOUNCE

    envelope: str
    #: Older accounts send the bounce's own envelope as mailfrom and rcptto instead.
    mailfrom: str
    rcptto: str
    mime: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class AbuseEvent(BaseEvent):
    """A spam complaint: ``mime`` is an ARF report (RFC 5965) naming the recipient."""

    kind: ClassVar[Kind] = Kind.ABUSE

    emailfrom: str
    mime: bytes


#: Every kind of event: match on it, and end with ``case _: assert_never(event)``.
Event: TypeAlias = FailureEvent | DeliveryEvent | OpenEvent | ClickEvent | BounceEvent | AbuseEvent
