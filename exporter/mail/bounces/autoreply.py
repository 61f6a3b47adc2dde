"""RFC 3834 auto-replies: out-of-office answers, which are not bounces."""

from __future__ import annotations

import re
from typing import Final

from exporter.mail.bounces.mime import Headers, first
from exporter.mail.bounces.report import BounceFact, BounceReport
from exporter.mail.bounces.text import address, fold
from exporter.mail.classifier import bounce_type_of
from exporter.mail.vocabulary import Reason

# RFC 3834 auto-replies: header (lowercase name) -> pattern its value must match.
_AUTOREPLY_HEADERS: Final = (
    ("auto-submitted", re.compile(r"auto-replied", re.IGNORECASE)),
    ("x-autoreply", re.compile(r"^(?!no\b|false\b)", re.IGNORECASE)),
    ("x-autorespond", re.compile(r"")),
    ("x-autoresponder", re.compile(r"")),
    ("x-auto-reply", re.compile(r"^(?!no\b|false\b)", re.IGNORECASE)),
    ("precedence", re.compile(r"auto[-_]?reply", re.IGNORECASE)),
    ("x-apple-action", re.compile(r"vacation", re.IGNORECASE)),
)

# Subjects auto-responders write, in the languages seen in the wild; they lead the subject.
_AUTOREPLY_SUBJECT: Final = re.compile(
    r"[ \t]*(?:(?:re|aw|fw|fwd|tr|sv|antw)[ \t]*:[ \t]*)?(?:"
    r"auto(?:matic|matische|matisch|matique|matico|matica)?[ _-]?(?:reply|replied|response"
    r"|answer|antwort|antwoord|réponse|respuesta|risposta|resposta|svar)"
    r"|réponse automatique|respuesta automática|risposta automatica|resposta automática"
    r"|out of (?:the )?office|away\b|on vacation|vacation|abwesenheit|absence|absent\b"
    r"|congés?\b|afwezig|fuera de la oficina|autoresponder|autosvar)",
    re.IGNORECASE,
)


def is_autoreply(headers: Headers, subject: str) -> bool:
    """Whether the headers (RFC 3834 and the vendors' own) or the subject say auto-reply."""
    for name, pattern in _AUTOREPLY_HEADERS:
        if any(pattern.search(value) for value in headers.get(name, ())):
            return True
    return _AUTOREPLY_SUBJECT.match(subject) is not None


def autoreply_report(headers: Headers, subject: str, text: str) -> BounceReport:
    """One ``vacation`` fact for the auto-reply's sender, the recipient that answered."""
    recipient = address(first(headers, "from") or first(headers, "reply-to"))
    verdict_type = bounce_type_of(Reason.VACATION, "", "")
    fact = BounceFact(
        recipient, "", "", "", fold(f"{subject} {text}"), Reason.VACATION, verdict_type
    )
    return BounceReport("autoreply", (fact,))
