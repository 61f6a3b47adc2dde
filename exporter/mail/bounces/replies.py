"""The SMTP reply a failure quotes: its reply code and enhanced status, and nothing else.

A notice's text is full of three-digit numbers (sizes, ports, counts) and quotes whole SMTP
dialogues, "250 2.1.5 Ok" included. So a reply code is read only where a reply is quoted: at
the start of a line, or after a marker that MTAs write in front of the reply they got
(:data:`REPLY_MARKERS`); an enhanced status (RFC 3463) only in such a reply, or after
:data:`STATUS_MARKER`. Two shapes are replies wherever they stand: a code with a status of its
own class beside it ("550 5.1.1"), and the first line of a multi-line reply ("550-Mailbox
unavailable", RFC 5321 section 4.2.1). Only a failure's reply counts: a 4xx or 5xx code, a
4.x.x or 5.x.x status.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from itertools import islice
from typing import Final

from exporter.mail.smtp import parse_enhanced_status


class Follows(StrEnum):
    """What must stand between a marker and the reply it introduces."""

    COLON = ":"
    SEMICOLON = ";"
    ANYTHING = ""  # the marker alone says that a reply follows


@dataclass(frozen=True, slots=True)
class Marker:
    """Words that MTAs write just before a reply they quote, and who writes them."""

    words: str
    follows: Follows
    source: str


#: Words before a quoted reply, lowercase; quotes and brackets between them and the reply are
#: skipped. A reply at the start of a line needs no marker (RFC 5321 section 4.2; Sendmail's
#: transcript quotes it as "<<< 550 ...", Gmail and Exchange give it a line of its own).
REPLY_MARKERS: Final = (
    Marker(
        "said",
        Follows.COLON,
        "Postfix bounce(8) 'host mx[192.0.2.1] said: 550 ...'; qmail QSBMF "
        "(cr.yp.to/proto/qsbmf.txt) 'Remote host said: 550 ...'",
    ),
    Marker("smtp", Follows.SEMICOLON, "RFC 3464 2.3.6 diagnostic type: 'smtp; 550 ...'"),
    Marker("]", Follows.COLON, "Exim: 'host mx.example.com [192.0.2.1]: 550 ...'"),
    Marker("refused to talk to me", Follows.COLON, "Postfix smtp(8): '... refused to talk to me:'"),
    Marker("reason", Follows.COLON, "Sendmail: '(reason: 550 5.1.1 ...)'"),
    Marker("was", Follows.COLON, "Gmail: 'The error that the other server returned was: 550'"),
    Marker("failure", Follows.COLON, "MailFoundry: 'responded with failure: 552 ...'"),
    Marker("failed with", Follows.COLON, "MailFoundry: 'Server mx[192.0.2.1] failed with: 550'"),
    Marker("diagnostic-code", Follows.COLON, "RFC 3464 2.3.6 field, as notices quote it"),
    Marker("status", Follows.COLON, "RFC 3464 2.3.4 field, as notices quote it"),
    Marker("returned", Follows.ANYTHING, "Exchange: Remote Server returned '550 5.1.1 ...'"),
    Marker("responsecode", Follows.ANYTHING, "Zoho Mail: '[Status: Error, ResponseCode 421, ...]'"),
)
#: Before a status alone: qmail's QSBMF notation "(#5.1.1)", Exchange's "<mx #5.1.1 smtp;...>".
STATUS_MARKER: Final = "#"

#: Exim's "SMTP error from remote mail server after RCPT TO:<user@example.com>:" names the
#: command between its words and the colon, so it marks a reply anywhere before that colon.
_EXIM_SMTP_ERROR: Final = "smtp error from remote mail"

# Quotes, brackets and transcript arrows that may stand between a marker and the reply.
_OPENERS: Final = " \t'\"([<>"
_LOOK_BACK: Final = 400  # Exim's phrase, a command and a 254-octet address
_LONGEST_MARKER: Final = 32  # the longest marker, its punctuation and some space
_BARE_MARKERS: Final = tuple(m.words for m in REPLY_MARKERS if m.follows is Follows.ANYTHING)
# Punctuation after a marker -> the markers it may end.
_PUNCTUATED_MARKERS: Final = {
    punctuation: _BARE_MARKERS + tuple(m.words for m in REPLY_MARKERS if m.follows == punctuation)
    for punctuation in (":", ";", "=")
}

_STATUS: Final = r"[245]\.\d{1,3}\.\d{1,3}(?![\w]|\.\d)"
# A code or a status on its own; a code with the status that follows it ("550 5.1.1",
# "550-'5.7.1", "550: 5.2.2"). Not 5500, 550.5 or 555-1234.
_CANDIDATE: Final = re.compile(
    r"(?<![\w.])(?:(?P<code>[245][0-5]\d)(?![\w]|\.\d|-\d\d)"
    r"(?:(?:[ \t]|-|:[ \t]?)['\"]?(?P<status>" + _STATUS + r"))?"
    r"|(?P<alone>" + _STATUS + r"))"
)
_FAILURE_CLASSES: Final = ("4", "5")
#: How much of a diagnostic is searched, and how many numbers in it are looked at: the reply
#: that failed the delivery comes early.
MAX_SEARCHED: Final = 4000
MAX_CANDIDATES: Final = 64


@dataclass(frozen=True, slots=True)
class Reply:
    """What a failure's text says the server answered; "" where it does not say."""

    code: str = ""
    status: str = ""


def failure_reply(text: str) -> Reply:
    """The code of the first failure reply ``text`` quotes, and its status (else the first
    failure status any quoted reply gives)."""
    earlier = ""
    replies = _quoted_replies(text[:MAX_SEARCHED])
    for code, given in replies:
        status = failure_status(given)
        if code[:1] in _FAILURE_CLASSES:
            later = (failure_status(each) for _, each in replies)
            return Reply(code, status or earlier or next(filter(None, later), ""))
        earlier = earlier or status
    return Reply("", earlier)


def failure_status(value: str) -> str:
    """``value`` (a report's Status field, or a status a reply gave) when it is a failure's
    enhanced status, normalized ("5.01.001" -> "5.1.1"); else ""."""
    status = parse_enhanced_status(value.split(maxsplit=1)[0] if value.strip() else "")
    return str(status) if status is not None and status.klass in _FAILURE_CLASSES else ""


def quotes_reply(text: str) -> bool:
    """Whether ``text`` quotes a failure's reply code or enhanced status."""
    reply = failure_reply(text)
    return bool(reply.code or reply.status)


def _quoted_replies(text: str) -> Iterator[tuple[str, str]]:
    """Each quoted reply's code ("" for a status alone) and status ("" when it gives none)."""
    for match in islice(_CANDIDATE.finditer(text), MAX_CANDIDATES):
        code, beside = match.group("code"), match.group("status")
        if code is None:
            if _is_marked(text, match.start(), status=True):
                yield "", match.group("alone")
        elif _is_reply(text, match, code, beside):
            yield code, beside or ""


def _is_reply(text: str, match: re.Match[str], code: str, status: str | None) -> bool:
    if status is not None and status[0] == code[0]:
        return True  # "550 5.1.1": a reply wherever it stands
    after = text[match.end("code") : match.end("code") + 2]
    if after[:1] == "-" and (after[1:].isalpha() or after[1:] in ("'", '"')):
        return True  # "550-Mailbox unavailable": the first line of a multi-line reply
    return _is_marked(text, match.start(), status=False)


def _is_marked(text: str, start: int, *, status: bool) -> bool:
    """Whether a reply (``status``: a status alone) at ``start`` opens its line or follows
    a marker."""
    window = max(0, start - _LOOK_BACK)
    newline = text.rfind("\n", window, start)
    line_start = newline + 1 if newline != -1 else (0 if window == 0 else -1)  # -1: too far
    low = max(window, line_start)
    end = start
    while end > low and text[end - 1] in _OPENERS:
        end -= 1
    if end == low:  # nothing but quotes and brackets since the line began
        return low == line_start
    tail = text[max(low, end - _LONGEST_MARKER) : end].lower()
    if tail.endswith(_BARE_MARKERS) or (status and tail[-1] == STATUS_MARKER):
        return True
    markers = _PUNCTUATED_MARKERS.get(tail[-1])
    if markers is None:
        return False
    if tail[-1] == ":" and _EXIM_SMTP_ERROR in text[low:end].lower():
        return True
    return tail[:-1].rstrip().endswith(markers)
