"""Raw bounce messages and ARF complaint reports, read into one fact per failed recipient.

SMTPeter's *bounces* webhook hands over the whole returned message (``mime``) and its *abuses*
webhook an ARF report; neither says in a field which recipient failed or why. This module finds
out, so that an asynchronous bounce is counted with the same state, codes and reason as a
failure SMTPeter saw during the SMTP conversation.

It reads RFC 3464 delivery reports, RFC 5965 feedback reports and RFC 3834 auto-replies, and the
plain-text notices of MTAs that follow no standard, through one mechanism: a table of line
shapes that name a recipient (an address alone on a line, ``<addr>: text``, ``addr... text``,
"could not be delivered to <addr>", ...) and the lines that follow it as its diagnostic.

MIME is split by hand instead of with :mod:`email`: a bounce is read on every webhook call,
and on the corpus the stdlib parser is about 4x slower with ``compat32`` and 20x with the
default policy, while bounces are where broken MIME lives. Nothing here raises on malformed
input; what cannot be read comes back as ``unrecognized``.
"""

from __future__ import annotations

import binascii
import contextlib
import html
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Final

from exporter.charsets import codec_for
from exporter.classifier import bounce_type_of, classify_failure
from exporter.smtp import normalize_state, parse_enhanced_status

BOUNCE_KINDS: Final = ("dsn", "autoreply", "feedback", "unrecognized")


@dataclass(frozen=True, slots=True)
class BounceFact:
    """What a bounce says about one recipient, in the vocabulary of a failures webhook."""

    #: The failed recipient address, domain lowercased, without angle brackets.
    recipient: str
    #: RFC 3463 enhanced status ("5.1.1"), or "" when the message gives none of its own.
    status: str
    #: SMTP reply code ("550"), or "".
    code: str
    #: SMTP stage as :func:`exporter.smtp.normalize_state` names it, or "".
    state: str
    #: The diagnostic text, whitespace folded, at most :data:`MAX_DESCRIPTION` characters.
    description: str
    #: From :func:`exporter.classifier.classify_failure`.
    reason: str
    #: "hard" or "soft".
    bounce_type: str


@dataclass(frozen=True, slots=True)
class BounceReport:
    """Everything one raw message says: its kind and a fact per failed recipient."""

    #: One of :data:`BOUNCE_KINDS`.
    kind: str
    #: One per failed recipient; empty when the message is unrecognized.
    facts: tuple[BounceFact, ...]
    #: ARF ``Feedback-Type`` (abuse, fraud, virus, other, not-spam, ...) for ``feedback``.
    feedback_type: str = ""
    #: Subject and start of the text, bounded, for logging a message nobody could read.
    excerpt: str = ""


#: Longest ``description`` kept: enough for a multi-line SMTP reply, bounded for log lines.
MAX_DESCRIPTION: Final = 1000
#: Longest ``excerpt`` of an unrecognized message.
MAX_EXCERPT: Final = 300
#: Only this much of a message is read: reports come first, the returned message after them.
MAX_READ: Final = 1 << 20
#: Bounds on MIME structure, so a crafted message costs no more than a real one.
MAX_PARTS: Final = 64
MAX_DEPTH: Final = 8
#: Bound on facts per message; real bounces name a handful of recipients.
MAX_FACTS: Final = 256

_MAX_HEADER_BLOCK: Final = 64 * 1024
_MAX_TEXT: Final = 256 * 1024

# --- Addresses --------------------------------------------------------------------------------

# Bounded repeats (RFC 5321 limits a local part to 64 octets) keep every scan linear.
_ADDR: Final = r"[\w.!#$%&'*+/=?^`{|}~-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63}){1,16}"
_ADDRESS: Final = re.compile(_ADDR)

# --- MIME -------------------------------------------------------------------------------------

_HEAD_END: Final = re.compile(r"\n[ \t]*\n")
_FIELD_START: Final = re.compile(r"[!-9;-~]+[ \t]*:")
_HEADER_FIELD: Final = re.compile(r"^([!-9;-~]+)[ \t]*:[ \t]*(.*(?:\n[ \t].*)*)", re.MULTILINE)
_PARAM: Final = re.compile(r"""([\w.*-]+)\s*=\s*(?:"([^"]*)"|([^\s;"]+))""")
_UNDECLARED_BOUNDARY: Final = re.compile(r"^--([^\s]{8,70})[ \t]*$", re.MULTILINE)
_NOT_BASE64: Final = re.compile(rb"[^A-Za-z0-9+/]")
_ENCODED_WORD: Final = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")
_ENCODED_GAP: Final = re.compile(r"(\?=)\s+(=\?)")
_HTML_BREAK: Final = re.compile(r"<\s*(?:br|/p|/div|/tr|/li|/h\d)\b[^<>]{0,2000}>", re.IGNORECASE)
_HTML_DROP: Final = re.compile(r"<(?:style|script)\b[^<>]{0,2000}>[^<]*", re.IGNORECASE)
_HTML_TAG: Final = re.compile(r"<[^<>]{0,2000}>")

_REPORT_TYPES: Final = frozenset(
    {"message/delivery-status", "message/global-delivery-status", "text/delivery-status"}
)
_FEEDBACK_TYPES: Final = frozenset({"message/feedback-report"})
_ORIGINAL_TYPES: Final = frozenset(
    {
        "message/rfc822",
        "message/global",
        "message/rfc822-headers",
        "message/global-headers",
        "text/rfc822-headers",
        "text/rfc822-header",
        "message/partial",
    }
)

Headers = dict[str, list[str]]


@dataclass(slots=True)
class _Parts:
    """What the MIME walk found, sorted by what each reader needs."""

    headers: Headers
    texts: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    reports: list[str] = field(default_factory=list)
    feedback: list[str] = field(default_factory=list)
    originals: list[Headers] = field(default_factory=list)
    seen: int = 0


def _parse_headers(block: str) -> Headers:
    headers: Headers = {}
    for match in _HEADER_FIELD.finditer(block[:_MAX_HEADER_BLOCK]):
        value = match.group(2)
        value = " ".join(value.split()) if "\n" in value else value.strip()
        headers.setdefault(match.group(1).lower(), []).append(value)
    return headers


def _split_head(text: str) -> tuple[Headers, str]:
    """Headers and body of a message or MIME part; ``({}, text)`` when it has no headers."""
    if text.startswith("From "):  # an mbox separator line, not a header
        text = text.partition("\n")[2]
    if _FIELD_START.match(text) is None:
        return {}, text
    end = _HEAD_END.search(text)
    if end is None:
        return _parse_headers(text), ""
    return _parse_headers(text[: end.start()]), text[end.end() :]


def _first(headers: Headers, name: str) -> str:
    values = headers.get(name)
    return values[0] if values else ""


def _content_type(value: str) -> tuple[str, dict[str, str]]:
    essence, _, rest = value.partition(";")
    params = {m.group(1).lower(): m.group(2) or m.group(3) or "" for m in _PARAM.finditer(rest)}
    return "".join(essence.split()).lower(), params


def _decode_transfer(body: str, encoding: str) -> bytes:
    data = body.encode("latin-1", "replace")
    if "base64" in encoding:
        data = _NOT_BASE64.sub(b"", data)
        data = data[: len(data) - len(data) % 4] if len(data) % 4 == 1 else data
        data += b"=" * (-len(data) % 4)
        try:
            return binascii.a2b_base64(data)
        except binascii.Error:
            return b""
    if "quoted-printable" in encoding:
        return binascii.a2b_qp(data)
    return data


def _to_text(data: bytes, charset: str) -> str:
    """Decode with the declared charset, else UTF-8, else Windows-1252: never raises."""
    if data.isascii() and not charset.startswith(("iso-2022", "utf-16", "utf-32", "utf-7")):
        return data.decode("ascii")
    # Only a charset from the fixed table reaches the codec machinery (see exporter.charsets).
    for candidate in (codec_for(charset) if charset else None, "utf-8"):
        if not candidate:
            continue
        try:
            return data.decode(candidate)
        except (UnicodeError, LookupError):
            continue
    return data.decode("cp1252", "replace")


def _decode_part(headers: Headers, body: str, charset: str) -> str:
    encoding = _first(headers, "content-transfer-encoding").lower()
    return _to_text(_decode_transfer(body, encoding), charset)


def _decode_words(value: str) -> str:
    """RFC 2047 encoded words and raw 8-bit UTF-8 in a header value, decoded."""
    if not value.isascii():
        with contextlib.suppress(UnicodeError):
            value = value.encode("latin-1").decode("utf-8")
    if "=?" not in value:
        return value

    def word(match: re.Match[str]) -> str:
        charset, kind, text = match.group(1).lower(), match.group(2).lower(), match.group(3)
        if kind == "q":
            data = binascii.a2b_qp(text.replace("_", " ").encode("latin-1", "replace"))
        else:
            data = _decode_transfer(text, "base64")
        return _to_text(data, charset.partition("*")[0])

    return _ENCODED_WORD.sub(word, _ENCODED_GAP.sub(r"\1\2", value))


def _html_text(markup: str) -> str:
    markup = _HTML_DROP.sub(" ", markup)
    return html.unescape(_HTML_TAG.sub(" ", _HTML_BREAK.sub("\n", markup)))


def _split_multipart(body: str, boundary: str) -> list[str]:
    """The parts between ``--boundary`` lines; a broken or missing close line is tolerated."""
    delimiter = "\n--" + boundary
    pieces = ("\n" + body).split(delimiter)
    parts: list[str] = []
    current: list[str] | None = None
    for piece in pieces[1:]:
        line, newline, rest = piece.partition("\n")
        if line.startswith("--") and not line[2:].strip():
            break
        if line.strip():  # a longer boundary that merely starts with ours
            if current is not None:
                current.append(delimiter + piece)
            continue
        if current is not None:
            parts.append("".join(current))
        current = [rest if newline else ""]
    if current is not None:
        parts.append("".join(current))
    return parts


def _undeclared_multipart(body: str) -> tuple[str, dict[str, str]]:
    """MIME parts under headers that forgot to say so: a body that opens, after at most a line
    of preamble, with a boundary line that comes back later."""
    boundary = _UNDECLARED_BOUNDARY.search(body[:200])
    if boundary is None or body.count("\n--" + boundary.group(1)) < 2:
        return "", {}
    return "multipart/mixed", {"boundary": boundary.group(1)}


def _walk(parts: _Parts, headers: Headers, body: str, depth: int) -> None:
    """Sort the leaves of a MIME tree into ``parts``, within the depth and part bounds."""
    kind, params = _content_type(_first(headers, "content-type"))
    if not kind and depth == 0:
        kind, params = _undeclared_multipart(body)
    if kind.startswith("multipart/") and depth < MAX_DEPTH:
        children = _split_multipart(body, params["boundary"]) if params.get("boundary") else []
        for child in children:
            if parts.seen >= MAX_PARTS:
                return
            parts.seen += 1
            child_headers, child_body = _split_head(child)
            _walk(parts, child_headers, child_body, depth + 1)
        if children:
            return
        kind = "text/plain"  # boundary missing or never used: read what is there as text
    _leaf(parts, kind, params.get("charset", "").strip().lower(), headers, body)


def _leaf(parts: _Parts, kind: str, charset: str, headers: Headers, body: str) -> None:
    if kind in _REPORT_TYPES:
        parts.reports.append(_decode_part(headers, body, charset or "utf-8"))
    elif kind in _FEEDBACK_TYPES:
        parts.feedback.append(_decode_part(headers, body, charset or "utf-8"))
    elif kind in _ORIGINAL_TYPES:
        original, _ = _split_head(_decode_part(headers, body, charset or "utf-8")[:_MAX_TEXT])
        parts.originals.append(original)
    elif kind.startswith("text/") or not kind:
        text = _decode_part(headers, body, charset)[:_MAX_TEXT]
        if "attachment" in _first(headers, "content-disposition").lower():
            original, _ = _split_head(text)
            if original:
                parts.originals.append(original)
        elif kind == "text/html":
            parts.html.append(_html_text(text))
        else:
            parts.texts.append(text)


def _read_mime(raw: bytes) -> _Parts:
    text = raw[:MAX_READ].decode("latin-1").replace("\r\n", "\n")
    headers, body = _split_head(text)
    parts = _Parts(headers)
    _walk(parts, headers, body, 0)
    return parts


# --- Tables: what a notification looks like ---------------------------------------------------

# Lines after which a notification quotes the message it returns. Text past one of these is the
# sender's own message: its addresses and words say nothing about the failure.
_ORIGINAL_FOLLOWS: Final = re.compile(
    r"^[ \t>|*=-]*(?:"
    r"[-=]*[ \t]*(?:below this line is|this is|enclosed is|included is|here is)"
    r" a copy of (?:the|your) (?:original )?message"
    r"|(?:the )?original message(?: headers?| details| follows)?[ \t]*(?:[-:.]|$)"
    r"|(?:unsent|returned|undelivered|original) message(?: follows| is attached| headers?)"
    r"|-+[ \t]*(?:unsent|returned|undelivered) message[ \t]*-+"
    r"|message headers follow"
    r"|the header of the original message"
    r"|-+[ \t]*original mail info"
    r")",
    re.IGNORECASE,
)

_RULE_CHARACTERS: Final = ("-", "=", "_", "*")
_RULE: Final = re.compile(r"[ \t]*[-=_*]+[ \t]*")
_ORIGINAL_HEADER: Final = re.compile(
    r"(?:received|return-path|from|to|subject|date|message-id|mime-version|dkim-signature"
    r"|delivered-to|reply-to)[ \t]*:",
    re.IGNORECASE,
)

# Line shapes that name a failed recipient. Each has the group ``addr``; ``diag`` (optional)
# is the diagnostic on the same line. Order matters: the first that matches a line wins.
_RECIPIENT_LINES: Final = tuple(
    re.compile(pattern, re.IGNORECASE)
    for pattern in (
        # An address alone on its line: bare, bracketed, quoted, bulleted, after "Recipient",
        # followed by a mailto link (Exchange) or by "on" and a date (Exchange 2003).
        r"^[ \t]*(?:[*\u2022-][ \t]*)?(?:(?:final-|original-)?recipient(?:[ \t]+address)?"
        r"[ \t]*:[ \t]*)?[<\"'(\[]?(?P<addr>" + _ADDR + r")[>\"')\]]?(?:<mailto:[^>\s]*>)?"
        r"[ \t]*(?:\.\.\.|[:;,.])?[ \t]*(?:\([^)]*\)|on[ \t].*)?[ \t]*$",
        # An address, perhaps "(expanded from ...)", then a colon or three dots and the
        # diagnostic: Postfix, OpenSMTPD, Sendmail.
        r"^[ \t]*[<\"]?(?P<addr>" + _ADDR + r")[>\"]?(?:[ \t]*\([^)]*\))?[ \t]*(?::|\.\.\.)"
        r"[ \t]*(?P<diag>\S.*)$",
        # Sendmail's "550 5.1.1 <user@example.org>... User unknown".
        r"^[ \t]*(?P<code>[245]\d\d[ -](?:[245]\.\d{1,3}\.\d{1,3}[ \t]+)?)<?(?P<addr>"
        + _ADDR
        + r")>?\.\.\.[ \t]*(?P<diag>.*)$",
        # Sentences (from _FIRST_SENTENCE on): "Unable to deliver message to <addr>",
        # "could not be delivered to: <addr>".
        r"\bdeliver(?:y|ed|ing)?\b[^@\n]{0,50}?\b(?:to|for)\b[ \t]*:?[ \t]*[<\"(\[]?(?P<addr>"
        + _ADDR
        + r")[>\")\]]?[ \t.,:;]*(?P<diag>.*)$",
        # "Your message to <addr> couldn't be delivered" (Exchange Online and others).
        r"\bmessage[ \t]+(?:to|for)[ \t]*:?[ \t]*[<\"(\[]?(?P<addr>"
        + _ADDR
        + r")[>\")\]]?[ \t.,:;]*(?P<diag>.*)$",
        # "The following recipients returned permanent errors: addr", "rejected recipient <addr>".
        r"\brecipients?\b[^@\n:]{0,50}?(?::|[ \t])[ \t]*[<\"(\[]?(?P<addr>"
        + _ADDR
        + r")[>\")\]]?[ \t.,:;]*(?P<diag>.*)$",
        # "RCPT TO: <addr>", "RCPT: <addr>", "Address: <addr>", "Delivery failed 3 attempts: addr".
        r"\b(?:rcpt(?:[ \t]*to)?|address|failed[^@\n:]{0,30})[ \t]*:[ \t]*<?(?P<addr>"
        + _ADDR
        + r")>?[ \t.,:;]*(?P<diag>.*)$",
    )
)

_FIRST_SENTENCE: Final = 3

# The SMTP command a failure happened in, as notifications word it. The value is the command
# handed to normalize_state, or None to hand over the captured text.
_COMMAND: Final = (
    r"rcpt[ \t]+to|mail[ \t]+from|(?:rcpt|mail)(?=[ \t]*(?:command|:))|data|bdat|ehlo|helo|lhlo"
    r"|starttls|auth"
)
# Matched against the lowercased text, case-sensitively, which keeps the scans fast.
_COMMANDS: Final = tuple(
    (re.compile(pattern, re.MULTILINE), command)
    for pattern, command in (
        (r"end of data\b|final data\b|after i sent the message|failed on data\b", "DATA"),
        (
            r"(?:after|in reply to|response to|while sending|did not like our)[ \t]+"
            r"(?:the[ \t]+|our[ \t]+)?(" + _COMMAND + r")\b",
            None,
        ),
        (r"following[ \t]+(" + _COMMAND + r")[ \t]+command\b", None),
        (r"(?:performing|during) the (ehlo|helo|lhlo|starttls|auth)\b", None),
        (
            r"after (?:initial connection|connect|greeting|banner)\b|greeting failed"
            r"|refused to talk to me",
            "CONNECT",
        ),
        (r"most progress was (rcpt to|mail from|data|ehlo|helo) response", None),
        (r"does not like recipient|rejected recipient", "RCPT"),
        (r"sender was rejected|does not like sender", "MAIL"),
        (r"my name was rejected", "HELO"),
        (r"^>>> (" + _COMMAND + r")", None),
        (r"\[(rcpt_to|mail_from|data|ehlo|helo|connect)\]", None),
        (r"(?:smtp|command)[ \t]*:[ \t]*(rcpt|mail|data|ehlo|helo)\b", None),
        (r"\((rcpt|mail|data|ehlo|helo)(?:[ \t]+(?:to|from))?(?:[ \t]+command)?\)", None),
    )
)


# The sender of a delivery notification, by the names MTAs give it.
_DAEMON_SENDER: Final = re.compile(
    r"mailer[-_. ]?daemon|\bpost_?master\b|mail[-_. ]?delivery|mail[-_. ]?administrator"
    r"|\bndr\b|delivery[-_. ]?(?:status|notification|subsystem)",
    re.IGNORECASE,
)
# Subjects and opening text of delivery notifications, in the languages seen in the wild.
_BOUNCE_WORDING: Final = re.compile(
    r"undeliver|not (?:be )?delivered|delivery (?:status|fail|notification|problem|report|error"
    r"|has failed|to the following)|returned mail|failure notice|failure delivery"
    r"|delivery failure|mail delivery|non-?deliver|could not deliver|unable to deliver"
    r"|error delivering|permanent(?:ly)? (?:error|failure|failed)|mail system error"
    r"|returned to sender|address(?:\(es\))? failed|failed recipient|unzustellbar"
    r"|nicht zugestellt|non remis|no (?:se pudo )?entregad|non recapitabile|onbestelbaar"
    r"|nicht zustellbar",
    re.IGNORECASE,
)

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

# Delivery-report fields (RFC 3464) that may also appear inside a notification's text.
_DSN_FIELDS: Final = frozenset(
    {
        "final-recipient",
        "original-recipient",
        "action",
        "status",
        "diagnostic-code",
        "remote-mta",
        "last-attempt-date",
        "will-retry-until",
        "x-actual-recipient",
        "reporting-mta",
        "arrival-date",
        "received-from-mta",
        "x-postfix-sender",
        "x-postfix-queue-id",
        "original-envelope-id",
    }
)
_RECIPIENT_FIELDS: Final = ("final-recipient", "original-recipient", "x-actual-recipient")
_NOT_FAILED: Final = frozenset({"delivered", "relayed", "expanded"})
_MAX_FIELD_LINES: Final = 64
_DSN_LINE: Final = re.compile(r"^([A-Za-z][A-Za-z0-9-]*)[ \t]*:[ \t]*(.*)$")
_DIAGNOSTIC_TYPE: Final = re.compile(r"^[ \t]*smtp[ \t]*;[ \t]*", re.IGNORECASE)

_REPLY_CODE: Final = re.compile(r"(?<![\w.#/=:+-])([245][0-5]\d)(?![\w.]|-\d{3})")
_ENHANCED: Final = re.compile(r"(?<![\w.])([245])\.(\d{1,3})\.(\d{1,3})(?![\w]|\.\d)")
# The status a server put beside its own reply code ("550 5.7.1", "550-'5.7.1") says more than
# one a relay wrote around it ("5.1.0 - Unknown address error 550-'5.7.1 ... denied'").
_REPLY_STATUS: Final = re.compile(
    r"(?<![\w.])[245]\d\d[ -]['\"]?([245]\.\d{1,3}\.\d{1,3})(?![\w]|\.\d)"
)
_QUOTED: Final = re.compile(r"^>[ ]?", re.MULTILINE)
_CONTINUED_REPLY: Final = re.compile(r"(?<![\w.])([245]\d\d)-(?=[\w'\"])")
_REPLY_PREFIX: Final = re.compile(r"\s([245]\d\d)[ -](?:[245]\.\d{1,3}\.\d{1,3}\s)?")

# Amazon SES notifications delivered by e-mail (Amazon SNS): JSON, not MIME reports.
_SES_TYPE: Final = re.compile(r'"notificationType"\s*:\s*"(\w+)"')
_SES_RECIPIENT: Final = re.compile(r'\{[^{}]*?"emailAddress"\s*:\s*"([^"]+)"[^{}]*\}')
_JSON_STRING: Final = r'\s*:\s*"((?:[^"\\]|\\.)*)"'
_SES_STATUS: Final = re.compile(r'"status"' + _JSON_STRING)
_SES_DIAGNOSTIC: Final = re.compile(r'"diagnosticCode"' + _JSON_STRING)
_SES_BOUNCE_TYPE: Final = re.compile(r'"bounce(?:Sub)?Type"' + _JSON_STRING)
_SES_FEEDBACK_TYPE: Final = re.compile(r'"complaintFeedbackType"' + _JSON_STRING)


# --- Small helpers ----------------------------------------------------------------------------

# Control characters (bar whitespace, which folding handles) have no place in a log line.
_CONTROLS: Final = dict.fromkeys(
    c for c in (*range(32), *range(127, 160)) if chr(c) not in "\t\n\r\x0b\x0c"
)


def _fold(text: str, limit: int = MAX_DESCRIPTION) -> str:
    """Whitespace folded to single spaces, control characters dropped, at most ``limit``."""
    return " ".join(text[: limit * 4].translate(_CONTROLS).split())[:limit]


def _unwrap_reply(text: str) -> str:
    """A multi-line SMTP reply as one sentence: "550-5.7.1 a / 550-5.7.1 b / 550 5.7.1 c"
    becomes "550-5.7.1 a b c", so that wording split across lines reads as written."""
    first = _CONTINUED_REPLY.search(text)
    if first is None:
        return text
    code = first.group(1)

    def drop(match: re.Match[str]) -> str:
        return " " if match.group(1) == code else match.group(0)

    return text[: first.end()] + _REPLY_PREFIX.sub(drop, text[first.end() :])


def _address(text: str) -> str:
    """The first address in ``text``, domain lowercased; "" when there is none."""
    match = _ADDRESS.search(text)
    if match is None:
        return ""
    local, _, domain = match.group(0).rpartition("@")
    return f"{local.strip('.')}@{domain.lower()}"


def _addresses(values: Iterable[str]) -> list[str]:
    """Every address in ``values``, once each, in order."""
    found: dict[str, None] = {}
    for value in values:
        for match in _ADDRESS.finditer(value):
            found.setdefault(_address(match.group(0)))
    return [address for address in found if address]


def _enhanced(text: str) -> str:
    """The enhanced status code ``text`` gives, preferring one beside a reply code."""
    match = _REPLY_STATUS.search(text)
    found = match.group(1) if match else ""
    if not found:
        match = _ENHANCED.search(text)
        found = match.group(0) if match else ""
    status = parse_enhanced_status(found)
    return str(status) if status is not None else ""


def _reply_code(text: str) -> str:
    """The first 4xx/5xx reply code in ``text``; a 2xx only when there is no other (a greeting
    quoted before the refusal is not the answer that failed the delivery)."""
    codes = _REPLY_CODE.findall(text)
    return next((code for code in codes if code[0] != "2"), codes[0] if codes else "")


def _command(text: str) -> str:
    """The SMTP stage ``text`` says a failure happened in, normalized; "" when it does not say."""
    lowered = text.lower()
    for pattern, command in _COMMANDS:
        match = pattern.search(lowered)
        if match is not None:
            return normalize_state(command or match.group(1))
    return ""


def _unquote(text: str) -> str:
    """Strip one level of ``>`` quoting when most lines carry it (a forwarded bounce)."""
    lines = [line for line in text.split("\n") if line.strip()]
    quoted = sum(1 for line in lines if line.startswith(">"))
    return _QUOTED.sub("", text) if lines and quoted * 2 >= len(lines) else text


def _cut_original(text: str) -> tuple[str, Headers]:
    """The notification without the returned message, and that message's headers.

    The message starts after a line announcing it ("--- Below this line is a copy of the
    message."), or after a rule of dashes that the message's own header fields follow.
    """
    offset = 0
    lines = text.split("\n")
    for number, line in enumerate(lines):
        lowered = line.lower()
        announced = ("message" in lowered or "original" in lowered) and _ORIGINAL_FOLLOWS.match(
            line
        )
        ruled = (
            len(line) >= 10
            and line.lstrip()[:1] in _RULE_CHARACTERS
            and _RULE.fullmatch(line) is not None
            and number + 1 < len(lines)
            and _ORIGINAL_HEADER.match(lines[number + 1]) is not None
        )
        if announced or ruled:
            original, _ = _split_head(text[offset + len(line) + 1 :].lstrip("\n"))
            return text[:offset], original
        offset += len(line) + 1
    return text, {}


# --- Readers ----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Failure:
    """A failed recipient as a reader found it, before classification."""

    recipient: str
    diagnostic: str = ""
    #: The report's own Status field, used when the diagnostic gives none.
    status: str = ""
    #: Text near the recipient that may say which SMTP command failed.
    context: str = ""


def _dsn_groups(text: str, *, embedded: bool) -> list[dict[str, str]]:
    """RFC 3464 field groups, first value of each field; ``embedded`` reads only the known
    fields out of free text, where a line of prose ends a group."""
    groups: list[dict[str, list[str]]] = []
    current: dict[str, list[str]] = {}
    value: list[str] | None = None  # the field that continuation lines extend
    for line in text.split("\n"):
        if not line.strip():
            groups.append(current)
            current, value = {}, None
            continue
        if line[0] in " \t" and value is not None:
            if len(value) < _MAX_FIELD_LINES:
                value.append(line.strip())
            continue
        match = _DSN_LINE.match(line.strip() if embedded else line)
        name = match.group(1).lower() if match else ""
        if match is None or (embedded and name not in _DSN_FIELDS):
            if embedded:
                groups.append(current)
                current = {}
            value = None
            continue
        if name in current and name in _RECIPIENT_FIELDS:  # a group with no blank line before
            groups.append(current)
            current = {}
        value = current.setdefault(name, [match.group(2).strip()])
    groups.append(current)
    return [{name: " ".join(lines) for name, lines in group.items()} for group in groups if group]


def _names_recipient(groups: list[dict[str, str]]) -> bool:
    return any(_ADDRESS.search(g.get(name, "")) for g in groups for name in _RECIPIENT_FIELDS)


def _failures_from_groups(groups: list[dict[str, str]]) -> list[_Failure]:
    """One failure per recipient whose delivery the report says did not succeed."""
    failures: dict[str, _Failure] = {}
    for group in groups:
        verb = (group.get("action", "").split() or [""])[0].lower()
        status = (group.get("status", "").split() or [""])[0]
        if verb in _NOT_FAILED or (not verb and status.startswith("2.")):
            continue
        recipient = next(filter(None, (_address(group.get(n, "")) for n in _RECIPIENT_FIELDS)), "")
        if recipient and recipient not in failures:
            diagnostic = _DIAGNOSTIC_TYPE.sub("", group.get("diagnostic-code", ""))
            failures[recipient] = _Failure(recipient, diagnostic, status)
            if len(failures) >= MAX_FACTS:
                break
    return list(failures.values())


class _Notice:
    """A notification's own text: the recipients it names, each with the lines explaining it,
    and the rest, which explains every recipient whose own lines do not."""

    __slots__ = ("_general", "_rest", "blocks", "explained", "lines")

    def __init__(self, text: str) -> None:
        self.lines = text[:_MAX_TEXT].split("\n")
        self.blocks: dict[str, dict[str, None]] = {}
        #: Recipients whose own lines say why, beyond the sentence that names them.
        self.explained: set[str] = set()
        self._rest: list[str] = []
        self._general: str | None = None
        lines, index = self.lines, 0
        while index < len(lines):
            line = lines[index]
            index += 1
            found = _recipient_line(line)
            if found is None:
                if not _is_report_field(line):  # quoted report fields explain nothing new
                    self._rest.append(line)
                continue
            address, diagnostic, explains = found
            indent = len(line) - len(line.lstrip())
            block = self.blocks.setdefault(address, {})
            own = [diagnostic] if diagnostic else []
            while index < len(lines):
                follow = lines[index]
                stripped = follow.strip()
                if not stripped:
                    break
                if len(follow) - len(follow.lstrip()) <= indent and _recipient_line(follow):
                    break
                own.append(stripped)
                explains = True
                index += 1
            block.update(dict.fromkeys(own))  # once each: notices repeat in a second language
            if explains:
                self.explained.add(address)

    def block(self, recipient: str) -> str:
        """What the lines naming ``recipient`` say about it; "" when no line names it."""
        return " ".join(self.blocks.get(recipient, ()))

    def explain(self, recipient: str) -> str:
        """Why ``recipient`` failed: its own lines, and the general text if they do not say."""
        own = self.block(recipient)
        return own if recipient in self.explained else f"{own} {self.general()}".strip()

    def general(self) -> str:
        """The paragraphs outside every recipient's lines that carry SMTP codes, else all."""
        if self._general is None:
            paragraphs = [
                " ".join(p.split()) for p in "\n".join(self._rest).split("\n\n") if p.strip()
            ]
            coded = [p for p in paragraphs if _REPLY_CODE.search(p) or _ENHANCED.search(p)]
            self._general = " ".join(coded or paragraphs)
        return self._general

    def dialogue_state(self, recipients: int) -> str:
        """The stage a quoted SMTP dialogue (Sendmail's ">>> RCPT To:<...>" / "<<< 550 ...")
        failed in: the command the first refusal answered. A dialogue about several recipients
        that issued several kinds of command does not say which failed which."""
        commands = [line for line in self.lines if line.startswith((">>>", "<<<"))]
        states = {_command(line) for line in commands if line.startswith(">>>")}
        if recipients > 1 and len(states) > 1:
            return ""
        state = ""
        for line in commands:
            if line.startswith(">>>"):
                state = _command(line)
            elif state and line[3:].lstrip()[:1] in ("4", "5"):
                return state
        return state

    def complete(self, diagnostic: str) -> str:
        """A multi-line reply that a report cut after its first line ("550-5.7.1 ..."), whole."""
        match = _CONTINUED_REPLY.match(diagnostic.lstrip())
        if match is None:
            return diagnostic
        code = match.group(1)
        reply = [
            line.strip().removeprefix("<<<").strip()
            for line in self.lines
            if line.strip().removeprefix("<<<").lstrip().startswith((f"{code}-", f"{code} "))
        ]
        whole = " ".join(reply)
        return whole if len(whole) > len(diagnostic) else diagnostic


def _is_report_field(line: str) -> bool:
    match = _DSN_LINE.match(line.strip()) if ":" in line else None
    return match is not None and match.group(1).lower() in _DSN_FIELDS


def _recipient_line(line: str) -> tuple[str, str, bool] | None:
    """The recipient a line names, what the line says about it, and whether that explains the
    failure (a diagnostic) or only names the recipient (a sentence); None for other lines."""
    if "@" not in line:
        return None
    for number, pattern in enumerate(_RECIPIENT_LINES):
        match = pattern.search(line)
        if match is None:
            continue
        address = _address(match.group("addr"))
        if number >= _FIRST_SENTENCE:  # the sentence less the address itself
            before = line[: match.start("addr")].rstrip(" \t<\"'([")
            after = line[match.end("addr") :].lstrip(">\"')]")
            return address, f"{before} {after.strip()}".strip(), False
        groups = match.groupdict()
        diagnostic = ((groups.get("code") or "") + (groups.get("diag") or "")).strip()
        return address, diagnostic, bool(diagnostic)
    return None


def _ses_report(text: str) -> BounceReport | None:
    kind = _SES_TYPE.search(text)
    if kind is None:
        return None
    notification = kind.group(1).lower()
    if notification == "delivery":
        return BounceReport("dsn", ())
    recipients = [(m.group(1), m.group(0)) for m in _SES_RECIPIENT.finditer(text)]
    if notification == "complaint":
        feedback = _SES_FEEDBACK_TYPE.search(text)
        addresses = [_address(address) for address, _ in recipients]
        return _feedback_report(addresses, _json_text(feedback) or "abuse", "")
    if notification != "bounce":
        return None
    bounce_type = " ".join(_json_text(m) for m in _SES_BOUNCE_TYPE.finditer(text))
    failures = [
        _Failure(
            _address(address),
            _DIAGNOSTIC_TYPE.sub("", _json_text(_SES_DIAGNOSTIC.search(obj))) or bounce_type,
            _json_text(_SES_STATUS.search(obj)),
        )
        for address, obj in recipients
    ]
    return BounceReport("dsn", tuple(_facts(failures, "")))


def _json_text(match: re.Match[str] | None) -> str:
    if match is None:
        return ""
    try:
        decoded = json.loads(f'"{match.group(1)}"')
    except ValueError:
        return match.group(1)
    return decoded if isinstance(decoded, str) else ""


def _feedback_report(recipients: list[str], feedback_type: str, text: str) -> BounceReport:
    """One ``feedback`` fact per complained-about recipient ("" when the report hides it)."""
    description = _fold(text)
    bounce_type = bounce_type_of("feedback", "", "")
    facts = tuple(
        BounceFact(recipient, "", "", "", description, "feedback", bounce_type)
        for recipient in (recipients or [""])[:MAX_FACTS]
    )
    return BounceReport("feedback", facts, feedback_type=feedback_type.lower())


def _arf(parts: _Parts, text: str) -> BounceReport | None:
    """An RFC 5965 report, or a Microsoft JMRP complaint (the original with a recipient header)."""
    report_type = _content_type(_first(parts.headers, "content-type"))[1].get("report-type", "")
    jmrp = [h for h in parts.originals if "x-hmxmroriginalrecipient" in h]
    if not parts.feedback and report_type.lower() != "feedback-report" and not jmrp:
        return None
    fields = _parse_headers("\n".join(parts.feedback))
    recipients = _addresses(fields.get("original-rcpt-to", []))
    recipients = recipients or _addresses(fields.get("removal-recipient", []))
    for original in parts.originals:
        recipients = recipients or _addresses(original.get("x-hmxmroriginalrecipient", []))
        recipients = recipients or _addresses(original.get("to", []) + original.get("cc", []))
    feedback_type = _first(fields, "feedback-type").split(maxsplit=1)[0:1]
    default = "abuse" if jmrp else "other"
    return _feedback_report(recipients, feedback_type[0] if feedback_type else default, text)


def _is_autoreply(headers: Headers, subject: str) -> bool:
    for name, pattern in _AUTOREPLY_HEADERS:
        if any(pattern.search(value) for value in headers.get(name, ())):
            return True
    return _AUTOREPLY_SUBJECT.match(subject) is not None


def _autoreply(headers: Headers, subject: str, text: str) -> BounceReport:
    recipient = _address(_first(headers, "from") or _first(headers, "reply-to"))
    verdict_type = bounce_type_of("vacation", "", "")
    fact = BounceFact(recipient, "", "", "", _fold(f"{subject} {text}"), "vacation", verdict_type)
    return BounceReport("autoreply", (fact,))


def _facts(failures: list[_Failure], dialogue_state: str) -> Iterator[BounceFact]:
    """Classified facts, one per recipient; ``dialogue_state`` is the stage that a quoted SMTP
    dialogue says failed, for recipients whose own text does not say."""
    seen: set[str] = set()
    for failure in failures:
        if not failure.recipient or failure.recipient in seen or len(seen) >= MAX_FACTS:
            continue
        seen.add(failure.recipient)
        yield _fact(failure, dialogue_state)


def _fact(failure: _Failure, dialogue_state: str) -> BounceFact:
    description = _fold(_unwrap_reply(failure.diagnostic[: MAX_DESCRIPTION * 4]))
    code = _reply_code(description)
    status = _enhanced(description) or _enhanced(failure.status)
    state = _command(failure.diagnostic) or _command(failure.context) or dialogue_state
    verdict = classify_failure(state, code, status, description)
    return BounceFact(
        failure.recipient, status, code, state, description, verdict.reason, verdict.bounce_type
    )


def _report_failures(parts: _Parts, notice: _Notice, text: str) -> list[_Failure] | None:
    """Failed recipients of an RFC 3464 report, or of report fields quoted in the text;
    None when there is no report, [] when it reports only successful deliveries."""
    groups = [g for report in parts.reports for g in _dsn_groups(report, embedded=False)]
    if not _names_recipient(groups) and "-recipient" in text.lower():
        groups = _dsn_groups(text, embedded=True)
    if not _names_recipient(groups):  # none, or only unreadable ones: the text has to say
        return None
    failures = _failures_from_groups(groups)
    for failure in failures:
        failure.context = notice.block(failure.recipient)
        failure.diagnostic = notice.complete(failure.diagnostic) or notice.explain(
            failure.recipient
        )
    return failures


def _text_failures(notice: _Notice, headers: Headers, originals: list[Headers]) -> list[_Failure]:
    """Failed recipients of a plain-text notice: the lines that name them first, then the
    X-Failed-Recipients header, then the returned message's own recipient."""
    reporter = set(_addresses(headers.get("from", [])))  # "please write to postmaster@..."
    recipients = [r for r in notice.blocks if r not in reporter][:MAX_FACTS]
    recipients = recipients or _addresses(headers.get("x-failed-recipients", []))[:MAX_FACTS]
    if not recipients:
        recipients = _addresses(v for h in originals for v in h.get("to", ()))[:1]
    return [_Failure(recipient, notice.explain(recipient)) for recipient in recipients]


def _announces_bounce(headers: Headers, subject: str) -> bool:
    """Whether the headers say this is a delivery notification: its sender, its subject."""
    return (
        _DAEMON_SENDER.search(_first(headers, "from")) is not None
        or _BOUNCE_WORDING.search(subject) is not None
        or "x-failed-recipients" in headers
    )


def _read(raw: bytes) -> BounceReport:
    parts = _read_mime(raw)
    headers = parts.headers
    subject = _decode_words(_first(headers, "subject"))
    full_text = "\n\n".join(parts.texts or parts.html)
    text, inline_original = _cut_original(_unquote(full_text))
    originals = [*parts.originals, inline_original] if inline_original else parts.originals

    feedback = _arf(parts, text)
    if feedback is not None:
        return feedback
    notice = _Notice(text)
    failures = _report_failures(parts, notice, text)
    if failures is not None:
        state = notice.dialogue_state(len(failures))
        return BounceReport("dsn", tuple(_facts(failures, state)))
    if '"notificationType"' in text:
        ses = _ses_report(text)
        if ses is not None:
            return ses
    # Bounces carry "Auto-Submitted: auto-replied" too, so an auto-reply is one that comes
    # from someone other than a mail system; what it says may well sound like a bounce.
    announced = _announces_bounce(headers, subject)
    if not announced and _is_autoreply(headers, subject):
        return _autoreply(headers, subject, full_text)
    if announced or _BOUNCE_WORDING.search(text[:4000]) is not None:
        failures = _text_failures(notice, headers, originals)
        if failures:
            state = notice.dialogue_state(len(failures))
            return BounceReport("dsn", tuple(_facts(failures, state)))
    return BounceReport("unrecognized", (), excerpt=_fold(f"{subject} | {full_text}", MAX_EXCERPT))


def read_bounce(raw: bytes) -> BounceReport:
    """Read a raw bounce, ARF report or auto-reply; never raises on malformed input."""
    try:
        return _read(raw)
    except (ValueError, LookupError):  # a codec or a decoder on input nobody foresaw
        return BounceReport("unrecognized", (), excerpt=_fold(raw[:MAX_EXCERPT].decode("latin-1")))
