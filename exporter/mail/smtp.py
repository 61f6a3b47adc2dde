"""SMTP vocabulary: conversation states, reply-code classes, enhanced status codes, replies.

Everything here is a pure function over strings, shared by webhook parsing, the classifier,
the bounce reader and the metrics, so that each of them agrees on what "rcpt" or "5xx" means.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

#: The fixed vocabulary of the ``state`` label, in SMTP conversation order.
STATES: Final = ("connect", "helo", "starttls", "auth", "mail", "rcpt", "data", "bounce", "other")

#: Reply-code classes used as the ``code_class`` label; ``none`` when no code was given.
CODE_CLASSES: Final = ("2xx", "4xx", "5xx", "none")

#: RFC 3463 classes and subjects as label values; ``none`` when no enhanced code was given.
STATUS_CLASSES: Final = ("2", "4", "5")
STATUS_SUBJECTS: Final = ("0", "1", "2", "3", "4", "5", "6", "7")
NO_STATUS: Final = "none"

# What SMTPeter (and MTAs quoting it) call each stage, keyed by the spelling folded to
# lowercase letters only, so "RCPT TO", "rcpt-to", "rcpt_to:" and "RcptTo" meet in one key.
_STATE_ALIASES: Final[dict[str, str]] = {
    "connect": "connect",
    "connection": "connect",
    "conn": "connect",
    "banner": "connect",
    "greeting": "connect",
    "initial": "connect",
    "helo": "helo",
    "ehlo": "helo",
    "lhlo": "helo",
    "starttls": "starttls",
    "tls": "starttls",
    "auth": "auth",
    "authentication": "auth",
    "authplain": "auth",
    "authlogin": "auth",
    "authcrammd5": "auth",
    "mail": "mail",
    "mailfrom": "mail",
    "envelopefrom": "mail",
    "sender": "mail",
    "rcpt": "rcpt",
    "rcptto": "rcpt",
    "recipient": "rcpt",
    "envelopeto": "rcpt",
    "data": "data",
    "enddata": "data",
    "dataend": "data",
    "bdat": "data",
    "message": "data",
    "body": "data",
    "content": "data",
    "quit": "other",
    "rset": "other",
    "bounce": "bounce",
    "bounced": "bounce",
    "async": "bounce",
    "asynchronous": "bounce",
    "dsn": "bounce",
}

_NOT_LETTERS: Final = re.compile(r"[^a-z]+")
_REPLY_CODE: Final = re.compile(r"[2-5][0-9][0-9]")
_ENHANCED: Final = re.compile(r"([245])\.([0-9]{1,3})\.([0-9]{1,3})")
#: The first line of a multi-line reply (RFC 5321 section 4.2.1): the code, then a hyphen.
CONTINUED_REPLY: Final = re.compile(r"(?<![\w.])([245]\d\d)-(?=[\w'\"])")
_REPLY_PREFIX: Final = re.compile(r"\s([245]\d\d)[ -](?:[245]\.\d{1,3}\.\d{1,3}\s)?")


def normalize_state(raw: str) -> str:
    """Map any spelling of an SMTP stage onto :data:`STATES`; unknown values become ``other``.

    The empty string stays empty: "no state given" is not the same fact as "a state we do not
    know", and the caller decides how to label it.
    """
    if not raw:
        return ""
    key = _NOT_LETTERS.sub("", raw.lower())
    found = _STATE_ALIASES.get(key)
    if found is not None:
        return found
    # "RCPT TO:<x@y>" and "MAIL FROM:<...>" carry an argument: try the leading verbs.
    for prefix_len in (6, 4):
        found = _STATE_ALIASES.get(key[:prefix_len])
        if found is not None:
            return found
    return "other"


def is_reply_code(code: str) -> bool:
    """True for a three-digit SMTP reply code in 200-599."""
    return _REPLY_CODE.fullmatch(code) is not None


def code_class(code: str) -> str:
    """``2xx``/``4xx``/``5xx`` for a valid reply code, ``none`` otherwise."""
    return f"{code[0]}xx" if is_reply_code(code) else "none"


@dataclass(frozen=True, slots=True)
class EnhancedStatus:
    """An RFC 3463 enhanced status code, ``class.subject.detail``."""

    klass: str
    subject: str
    detail: str

    def __str__(self) -> str:
        return f"{self.klass}.{self.subject}.{self.detail}"

    @property
    def subject_label(self) -> str:
        """The subject as a label value; subjects RFC 3463 does not define fold into ``other``."""
        return self.subject if self.subject in STATUS_SUBJECTS else "other"


def parse_enhanced_status(text: str) -> EnhancedStatus | None:
    """Parse ``5.1.1``; ``None`` when ``text`` is not exactly an enhanced status code."""
    match = _ENHANCED.fullmatch(text)
    if match is None:
        return None
    klass, subject, detail = match.groups()
    # "5.01.001" and "5.1.1" are the same code: drop leading zeros so labels agree.
    return EnhancedStatus(klass, str(int(subject)), str(int(detail)))


def unwrap_reply(text: str) -> str:
    """A multi-line SMTP reply as one sentence: "550-5.7.1 a / 550-5.7.1 b / 550 5.7.1 c"
    becomes "550-5.7.1 a b c", so that wording split across lines reads as written."""
    first = CONTINUED_REPLY.search(text) if _has_continued_code(text) else None
    if first is None:
        return text
    code = first.group(1)

    def drop(match: re.Match[str]) -> str:
        return " " if match.group(1) == code else match.group(0)

    return text[: first.end()] + _REPLY_PREFIX.sub(drop, text[first.end() :])


def _has_continued_code(text: str) -> bool:
    """Whether ``text`` may hold "NNN-": hyphens are few, and testing them with ``str.find``
    is ten times faster than the regular expression it saves."""
    hyphen = text.find("-", 3)
    while hyphen != -1:
        if text[hyphen - 3 : hyphen].isdigit():
            return True
        hyphen = text.find("-", hyphen + 1)
    return False
