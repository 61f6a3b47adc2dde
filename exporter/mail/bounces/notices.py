"""The plain-text notices of MTAs that follow no standard, and the text of every notice.

One mechanism reads them all: a table of line shapes that name a recipient
(:data:`RECIPIENT_LINES`: an address alone on a line, ``<addr>: text``, ``addr... text``,
"could not be delivered to <addr>", ..., each with the MTAs that write it) and the lines that
follow it as its diagnostic; the message a notice returns is cut off first, since its
addresses and words say nothing about the failure.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from exporter.mail.bounces.dsn import is_report_field
from exporter.mail.bounces.mime import MAX_TEXT, Headers, first, original_headers
from exporter.mail.bounces.replies import quotes_reply
from exporter.mail.bounces.report import MAX_FACTS, Failure
from exporter.mail.bounces.text import ADDR, address, addresses
from exporter.mail.smtp import CONTINUED_REPLY, normalize_state

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


class Says(StrEnum):
    """What a line that names a failed recipient says besides the address."""

    #: Why it failed: the rest of the line (group ``diag``) and the lines indented under it.
    WHY = "why"
    #: Only who: a sentence naming the recipient, whose reason the rest of the notice gives.
    WHO = "who"


@dataclass(frozen=True, slots=True)
class RecipientLine:
    """A shape of line that names a failed recipient (group ``addr``), and who writes it."""

    pattern: re.Pattern[str]
    says: Says
    source: str


#: Words with which notices label a failed recipient on the recipient's own line (plain
#: phrases, matched case-insensitively at the start of the label).
FAILURE_LABELS: Final = (
    "invalid address",
    "invalid recipient",
    "invalid user",
    "unknown user",
    "user unknown",
    "unknown recipient",
    "unknown address",
    "no such user",
    "no such recipient",
    "mailbox full",
    "mailbox unavailable",
    "mailbox not found",
    "host not reachable",
    "host unknown",
    "unknown host",
    "domain not found",
    "delivery failed",
    "delivery failure",
    "undeliverable",
    "over quota",
    "quota exceeded",
    "account disabled",
)
_LABEL: Final = "(?:" + "|".join(label.replace(" ", r"[ \t]+") for label in FAILURE_LABELS) + ")"
# A sentence's recipient: an address, perhaps bracketed or quoted, and the rest of the line.
_NAMED: Final = r"[<\"(\[]?(?P<addr>" + ADDR + r")[>\")\]]?[ \t.,:;]*(?P<diag>.*)$"

#: Line shapes that name a failed recipient, each with who writes it. Order matters: the first
#: that matches a line wins, so the shapes that say why come before the sentences.
RECIPIENT_LINES: Final = tuple(
    RecipientLine(re.compile(pattern, re.IGNORECASE), says, source)
    for pattern, says, source in (
        (
            # An address alone on its line: bare, bracketed, quoted, bulleted, labelled as the
            # recipient, followed by a mailto link or by "on" and a date.
            r"^[ \t]*(?:[*\u2022-][ \t]*)?(?:(?:final-|original-)?recipient(?:[ \t]+address)?"
            r"[ \t]*:[ \t]*)?[<\"'(\[]?(?P<addr>" + ADDR + r")[>\"')\]]?(?:<mailto:[^>\s]*>)?"
            r"[ \t]*(?:\.\.\.|[:;,.])?[ \t]*(?:\([^)]*\)|on[ \t].*)?[ \t]*$",
            Says.WHY,
            (
                "Exim ('The following address(es) failed:', then '  addr' and the reason indented "
                "under it); Sendmail ('----- The following addresses had permanent fatal errors "
                "-----', then '<addr>'); qmail QSBMF, cr.yp.to/proto/qsbmf.txt ('<addr>:', then "
                "the reason); Gmail ('Delivery to the following recipient failed permanently:'); "
                "Exchange Online ('addr<mailto:addr>'); Exchange 2003 ('addr on <date>'); Oracle "
                "Messaging Server ('Recipient address: addr'); au by KDDI ('Recipient: <addr>'); "
                "Zoho Mail (the address, then "
                "'Invalid Address' and the reply on the lines after it)"
            ),
        ),
        (
            # An address, perhaps "(expanded from ...)", then a colon or three dots and why.
            r"^[ \t]*[<\"]?(?P<addr>" + ADDR + r")[>\"]?(?:[ \t]*\([^)]*\))?[ \t]*(?::|\.\.\.)"
            r"[ \t]*(?P<diag>\S.*)$",
            Says.WHY,
            (
                "Postfix bounce(8) ('<addr> (expanded from <alias>): host ... said: ...'); "
                "OpenSMTPD ('addr: 550 ...'); Sendmail ('addr... User unknown')"
            ),
        ),
        (
            # A reply naming the recipient: "550 5.1.1 <user@example.org>... User unknown".
            r"^[ \t]*(?P<code>[245]\d\d[ -](?:[245]\.\d{1,3}\.\d{1,3}[ \t]+)?)<?(?P<addr>"
            + ADDR
            + r")>?\.\.\.[ \t]*(?P<diag>.*)$",
            Says.WHY,
            "Sendmail's session transcript ('550 5.1.1 <addr>... User unknown')",
        ),
        (
            # An address, then what went wrong on the same line.
            r"^[ \t]*<?(?P<addr>" + ADDR + r")>?[ \t,]+(?P<diag>" + _LABEL + r"\b.*)$",
            Says.WHY,
            "Zoho Mail ('addr Invalid Address', then the remote server's reply)",
        ),
        (
            r"\bdeliver(?:y|ed|ing)?\b[^@\n]{0,50}?\b(?:to|for)\b[ \t]*:?[ \t]*" + _NAMED,
            Says.WHO,
            (
                "DragonFly Mail Agent, dma mail.c ('There was an error delivering your mail to "
                "<addr>.'); Zoho Mail ('could not be delivered to <addr>'); MailFoundry ('Unable "
                "to deliver message to: <addr>')"
            ),
        ),
        (
            r"\bmessage[ \t]+(?:to|for)[ \t]*:?[ \t]*" + _NAMED,
            Says.WHO,
            (
                "Exchange Online ('Your message to addr couldn't be delivered.'); Barracuda "
                "('Your message to: addr'); Exchange relayed by Amazon SES ('The following "
                "message to <addr> was undeliverable.')"
            ),
        ),
        (
            r"\brecipients?\b[^@\n:]{0,50}?(?::|[ \t])[ \t]*" + _NAMED,
            Says.WHO,
            (
                "notices of unidentified MTAs seen in the wild ('The following recipients "
                "returned permanent errors: addr'; 'SMTP Server <host> rejected recipient <addr>')"
            ),
        ),
        (
            r"\b(?:rcpt(?:[ \t]*to)?|address)[ \t]*:[ \t]*" + _NAMED,
            Says.WHO,
            (
                "the RCPT command a notice quotes (RFC 5321 4.1.1.3): Exim ('SMTP error from "
                "remote mail server after RCPT TO:<addr>:'), Sendmail and Courier ('>>> RCPT "
                "TO:<addr>'); Zoho Mail ('[Status: Error, Address: <addr>, ResponseCode 421, ...]')"
            ),
        ),
        (
            r"^[ \t]*" + _LABEL + r"[^@\n:]{0,40}:[ \t]*" + _NAMED,
            Says.WHO,
            (
                "Progress (Ipswitch) IMail Server, 'Undeliverable Mail' ('Delivery failed 20 "
                "attempts: addr'), and other labels of FAILURE_LABELS in the same place"
            ),
        ),
    )
)

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
            (
                r"after (?:initial connection|connect|greeting|banner)\b|greeting failed"
                r"|refused to talk to me"
            ),
            "CONNECT",
        ),
        (r"most progress was (rcpt to|mail from|data|ehlo|helo) response", None),
        (r"does not like recipient|rejected recipient", "RCPT"),
        (r"sender was rejected|does not like sender", "MAIL"),
        (r"my name was rejected", "HELO"),
        (r">>> (" + _COMMAND + r")", None),
        (r">>> \.(?:[ \t]|$)", "DATA"),  # the line that ends the message text
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
BOUNCE_WORDING: Final = re.compile(
    r"undeliver|not (?:be )?delivered|delivery (?:status|fail|notification|problem|report|error"
    r"|has failed|to the following)|returned mail|failure notice|failure delivery"
    r"|delivery failure|mail delivery|non-?deliver|could not deliver|unable to deliver"
    r"|error delivering|permanent(?:ly)? (?:error|failure|failed)|mail system error"
    r"|returned to sender|address(?:\(es\))? failed|failed recipient|unzustellbar"
    r"|nicht zugestellt|non remis|no (?:se pudo )?entregad|non recapitabile|onbestelbaar"
    r"|nicht zustellbar",
    re.IGNORECASE,
)
_QUOTED: Final = re.compile(r"^>[ ]?", re.MULTILINE)


def command_in(text: str) -> str:
    """The SMTP stage ``text`` says a failure happened in, normalized; "" when it does not say."""
    lowered = text.lower()
    if "\n" in lowered:  # notices wrap their sentences anywhere
        lowered = " ".join(lowered.split())
    for pattern, command in _COMMANDS:
        match = pattern.search(lowered)
        if match is not None:
            return normalize_state(command or match.group(1))
    return ""


def refused_command(lines: Iterable[str]) -> str:
    """The command that the first refusal ("<<< 550 ...") in a quoted SMTP dialogue answered
    (">>> RCPT To:<...>"), normalized; "" when the dialogue quotes no refusal."""
    state = ""
    for line in lines:
        if line.startswith(">>>"):
            state = command_in(line)
        elif state and line.startswith("<<<") and line[3:].lstrip()[:1] in ("4", "5"):
            return state
    return ""


def unquote(text: str) -> str:
    """Strip one level of ``>`` quoting when most lines carry it (a forwarded bounce)."""
    if not text.startswith(">") and "\n>" not in text:  # most notices quote nothing
        return text
    lines = [line for line in text.split("\n") if line.strip()]
    quoted = sum(1 for line in lines if line.startswith(">"))
    return _QUOTED.sub("", text) if lines and quoted * 2 >= len(lines) else text


def cut_original(text: str) -> tuple[str, Headers]:
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
            return text[:offset], original_headers(text[offset + len(line) + 1 :].lstrip("\n"))
        offset += len(line) + 1
    return text, {}


class Notice:
    """A notification's own text: the recipients it names, each with the lines explaining it,
    and the rest, which explains every recipient whose own lines do not."""

    __slots__ = ("_general", "_rest", "blocks", "explained", "lines")

    def __init__(self, text: str) -> None:
        self.lines = text[:MAX_TEXT].split("\n")
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
                if not is_report_field(line):  # quoted report fields explain nothing new
                    self._rest.append(line)
                continue
            recipient, diagnostic, explains = found
            indent = len(line) - len(line.lstrip())
            block = self.blocks.setdefault(recipient, {})
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
                self.explained.add(recipient)

    def block(self, recipient: str) -> str:
        """What the lines naming ``recipient`` say about it, a line each; "" when no line
        names it."""
        return "\n".join(self.blocks.get(recipient, ()))

    def context(self, recipient: str) -> str:
        """The lines naming ``recipient`` as one line, for the SMTP stage they may name."""
        return " ".join(self.blocks.get(recipient, ()))

    def explain(self, recipient: str) -> str:
        """Why ``recipient`` failed: its own lines, and the general text if they do not say."""
        own = self.block(recipient)
        return own if recipient in self.explained else f"{own}\n{self.general()}".strip()

    def general(self) -> str:
        """The paragraphs outside every recipient's lines that quote a failure's reply (see
        :mod:`exporter.mail.bounces.replies`), else all of them."""
        if self._general is None:
            paragraphs = [p.strip() for p in "\n".join(self._rest).split("\n\n") if p.strip()]
            coded = [p for p in paragraphs if quotes_reply(p)]
            self._general = "\n".join(coded or paragraphs)
        return self._general

    def dialogue_state(self, recipients: int) -> str:
        """The stage a quoted SMTP dialogue (Sendmail's ">>> RCPT To:<...>" / "<<< 550 ...")
        failed in: the command the first refusal answered. A dialogue about several recipients
        that issued several kinds of command does not say which failed which."""
        commands = [line for line in self.lines if line.startswith((">>>", "<<<"))]
        states = {command_in(line) for line in commands if line.startswith(">>>")}
        if recipients > 1 and len(states) > 1:
            return ""
        return refused_command(commands) or next(
            (command_in(line) for line in reversed(commands) if line.startswith(">>>")), ""
        )

    def complete(self, diagnostic: str) -> str:
        """A multi-line reply that a report cut after its first line ("550-5.7.1 ..."), whole."""
        match = CONTINUED_REPLY.match(diagnostic.lstrip())
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


def _recipient_line(line: str) -> tuple[str, str, bool] | None:
    """The recipient a line names, what the line says about it, and whether that explains the
    failure (a diagnostic) or only names the recipient (a sentence); None for other lines."""
    if "@" not in line:
        return None
    for shape in RECIPIENT_LINES:
        match = shape.pattern.search(line)
        if match is None:
            continue
        recipient = address(match.group("addr"))
        if shape.says is Says.WHO:  # the sentence less the address itself
            before = line[: match.start("addr")].rstrip(" \t<\"'([")
            after = line[match.end("addr") :].lstrip(">\"')]")
            return recipient, f"{before} {after.strip()}".strip(), False
        groups = match.groupdict()
        diagnostic = ((groups.get("code") or "") + (groups.get("diag") or "")).strip()
        return recipient, diagnostic, bool(diagnostic)
    return None


def text_failures(notice: Notice, headers: Headers, originals: list[Headers]) -> list[Failure]:
    """Failed recipients of a plain-text notice: the lines that name them first, then the
    X-Failed-Recipients header, then the returned message's own recipient."""
    reporter = set(addresses(headers.get("from", [])))  # "please write to postmaster@..."
    recipients = [r for r in notice.blocks if r not in reporter][:MAX_FACTS]
    recipients = recipients or addresses(headers.get("x-failed-recipients", []))[:MAX_FACTS]
    if not recipients:
        recipients = addresses(v for h in originals for v in h.get("to", ()))[:1]
    return [Failure(recipient, notice.explain(recipient)) for recipient in recipients]


def announces_bounce(headers: Headers, subject: str) -> bool:
    """Whether the headers say this is a delivery notification: its sender, its subject."""
    return (
        _DAEMON_SENDER.search(first(headers, "from")) is not None
        or BOUNCE_WORDING.search(subject) is not None
        or "x-failed-recipients" in headers
    )
