"""The bounce reader: raw bounces, ARF reports and auto-replies, one fact per recipient.

:func:`read_bounce` (``reader``) tries each reader on what the MIME walk (``mime``) found:
ARF complaints (``arf``), RFC 3464 reports (``dsn``), Amazon SES notifications (``ses``),
auto-replies (``autoreply``) and the plain-text notices of MTAs (``notices``); ``facts``
classifies what they found, with the reply code and status of the reply each failure quotes
(``replies``).
"""

from __future__ import annotations

from exporter.mail.bounces.reader import read_bounce
from exporter.mail.bounces.report import (
    BOUNCE_KINDS,
    MAX_DESCRIPTION,
    MAX_EXCERPT,
    MAX_FACTS,
    BounceFact,
    BounceReport,
)

__all__ = [
    "BOUNCE_KINDS",
    "MAX_DESCRIPTION",
    "MAX_EXCERPT",
    "MAX_FACTS",
    "BounceFact",
    "BounceReport",
    "read_bounce",
]
