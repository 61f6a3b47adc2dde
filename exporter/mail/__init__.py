"""Everything that knows about mail and nothing about HTTP.

SMTP vocabulary (``smtp``), the reason vocabulary (``vocabulary``), the rule files and their
loader (``rules/``, ``rulebook``), the wording matcher (``matcher``), the order of evidence
(``precedence``), the decision ladder (``classifier``) and the bounce reader (``bounces``).
The web side imports what it needs from here; nothing here imports the web side.
"""

from __future__ import annotations

from exporter.mail.bounces import BounceFact, BounceReport, read_bounce
from exporter.mail.classifier import Verdict, bounce_type_of, classify_failure
from exporter.mail.vocabulary import BounceType, Reason

__all__ = [
    "BounceFact",
    "BounceReport",
    "BounceType",
    "Reason",
    "Verdict",
    "bounce_type_of",
    "classify_failure",
    "read_bounce",
]
