"""Decide why a delivery failed, in Sisimai's vocabulary, and whether that makes a hard bounce.

Evidence is weighed strongest first; the first kind that says anything decides:

1. *decisive* wording, phrases that name one cause whatever code came with them
   ("mailbox full", "listed at Spamhaus", "DMARC policy");
2. a *specific* RFC 3463 enhanced status code (5.1.1, 5.2.2, 5.7.26, ...);
3. a refusal at the greeting, HELO, STARTTLS or AUTH: no sender or recipient has been named
   yet, so the server can only be refusing the client;
4. *suggestive* wording ("user unknown", "denied by policy", "service unavailable");
5. a refusal at MAIL FROM: the sender was refused;
6. a *generic* status code (x.0.0, 4.4.7, 5.7.1, ...), which only names a family;
7. the reply code, for the few whose RFC 5321 meaning is a cause;
8. ``onhold`` for a temporary failure that says nothing more, else ``undefined``.

Two facts then correct the result: an address problem at MAIL FROM is the sender's
(``rejected``), and a host that is unknown only for now is a ``networkerror``.

The wording tables are compiled once, at import, into a single regular expression.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise
from typing import Final

from exporter.smtp import EnhancedStatus, is_reply_code, parse_enhanced_status

#: Sisimai's reason vocabulary: every value :func:`classify_failure` can return.
REASONS: Final[tuple[str, ...]] = (
    "authfailure",
    "badreputation",
    "blocked",
    "contenterror",
    "delivered",
    "emailtoolarge",
    "expired",
    "failedstarttls",
    "feedback",
    "filtered",
    "hasmoved",
    "hostunknown",
    "mailboxfull",
    "mailererror",
    "networkerror",
    "norelaying",
    "notaccept",
    "notcompliantrfc",
    "onhold",
    "policyviolation",
    "ratelimited",
    "rejected",
    "requireptr",
    "securityerror",
    "spamdetected",
    "suppressed",
    "suspend",
    "syntaxerror",
    "systemerror",
    "systemfull",
    "undefined",
    "userunknown",
    "vacation",
    "virusdetected",
)

BOUNCE_TYPES: Final = ("hard", "soft")


@dataclass(frozen=True, slots=True)
class Verdict:
    """Why a delivery failed, and whether sending to the address again can ever succeed."""

    reason: str
    bounce_type: str


# --- Enhanced status codes ---------------------------------------------------------------

#: Status codes (RFC 3463 and the IANA registry) that name a cause precisely enough to
#: outrank suggestive wording. Keys are ``subject.detail``, or ``class.subject.detail`` where
#: the class changes the meaning. To add a code, put it here if it names its cause outright,
#: or in ``_GENERIC_STATUS`` if wording should be able to overrule it.
_SPECIFIC_STATUS: Final[dict[str, str]] = {
    "1.1": "userunknown",  # bad destination mailbox address
    "1.2": "hostunknown",  # bad destination system address
    "1.3": "userunknown",  # bad destination mailbox address syntax
    "1.4": "userunknown",  # destination mailbox address ambiguous
    "1.6": "hasmoved",  # destination mailbox has moved, no forwarding address
    "1.7": "rejected",  # bad sender's mailbox address syntax
    "1.8": "rejected",  # bad sender's system address
    "2.2": "mailboxfull",
    "2.3": "emailtoolarge",  # message length exceeds administrative limit
    "2.4": "systemerror",  # mailing list expansion problem
    "3.1": "systemfull",
    "3.2": "notaccept",  # system not accepting network messages
    "3.3": "systemerror",  # system not capable of selected features
    "3.4": "emailtoolarge",
    "3.5": "systemerror",  # system incorrectly configured
    "4.2": "networkerror",  # bad connection
    "4.3": "systemerror",  # directory server failure
    "5.4.4": "hostunknown",  # unable to route, for good: the domain has no mail route
    "4.4.4": "networkerror",  # unable to route for now: a DNS lookup failed
    "4.5": "systemfull",  # mail system congestion
    "4.6": "networkerror",  # routing loop detected
    "5.1": "syntaxerror",  # invalid command
    "5.2": "syntaxerror",
    "5.3": "ratelimited",  # too many recipients
    "5.4": "syntaxerror",  # invalid command arguments
    "5.5": "syntaxerror",  # wrong protocol version
    "5.6": "syntaxerror",  # authentication exchange line too long
    "6.0": "contenterror",
    "6.1": "contenterror",
    "6.2": "contenterror",
    "6.3": "contenterror",
    "6.4": "contenterror",
    "6.5": "contenterror",
    "6.6": "contenterror",
    "6.7": "contenterror",
    "6.8": "contenterror",
    "6.9": "contenterror",
    "6.10": "contenterror",
    "7.2": "rejected",  # mailing list expansion prohibited for this sender
    "7.3": "securityerror",
    "7.4": "securityerror",
    "7.5": "securityerror",
    "7.6": "securityerror",
    "7.7": "securityerror",  # message integrity failure
    "7.10": "securityerror",  # encryption needed
    "7.13": "suspend",  # user account disabled
    "7.14": "securityerror",  # trust relationship required
    "7.15": "policyviolation",  # priority level is too low
    "7.16": "emailtoolarge",  # message too big for the specified priority
    "7.17": "hasmoved",  # mailbox owner has changed
    "7.18": "hasmoved",  # domain owner has changed
    "7.20": "authfailure",  # no passing DKIM signature found
    "7.21": "authfailure",
    "7.22": "authfailure",
    "7.23": "authfailure",  # SPF validation failed
    "7.24": "authfailure",
    "7.25": "requireptr",  # reverse DNS validation failed
    "7.26": "authfailure",  # multiple authentication checks failed
    "7.27": "rejected",  # sender address has null MX
    "7.28": "spamdetected",  # mail flood detected
    "7.29": "authfailure",  # ARC validation failure
    "7.30": "failedstarttls",  # REQUIRETLS support required
    "7.509": "authfailure",  # Microsoft 365: sending domain does not pass DMARC
    "7.606": "blocked",  # Microsoft 365: banned sending IP
    "7.607": "blocked",
    "7.608": "blocked",
}

#: Status codes that only name a family of causes: suggestive wording outranks them.
_GENERIC_STATUS: Final[dict[str, str]] = {
    "1.10": "notaccept",  # null MX; Microsoft 365 also sends it for "recipient not found"
    "2.1": "filtered",  # the mailbox exists but does not accept messages (from this sender)
    "4.1": "expired",  # no answer from host: in a final report, the retries ran out
    "4.7": "expired",  # delivery time expired; also attached to any deferral that timed out
}

#: What a subject implies when its detail is in neither table: x.3.0, x.4.0, x.7.1 ("delivery
#: not authorized"), codes registered later and private ones. The RFC 4954 AUTH replies 7.8,
#: 7.9, 7.11 and 7.12 are left to this family on purpose: providers also send them to refuse
#: a message for policy reasons after DATA.
_SUBJECT_FAMILY: Final[dict[str, str]] = {
    "3": "systemerror",
    "4": "networkerror",
    "6": "contenterror",
    "7": "securityerror",
}

#: Reply codes whose RFC 5321 meaning is a cause; used only when there is no status code.
_REPLY_CODE_REASONS: Final[dict[str, str]] = {
    "421": "systemerror",  # service not available, closing transmission channel
    "452": "systemfull",  # insufficient system storage
    "500": "syntaxerror",
    "501": "syntaxerror",
    "502": "syntaxerror",
    "504": "syntaxerror",
}

# --- Wording -----------------------------------------------------------------------------
#
# Patterns are regular expressions matched against the description lowercased, with runs of
# whitespace folded into one space. Every pattern starts a word, so it must begin with a
# letter or digit; end it with \b where a short word must not match inside a longer one.
# Group with (?:...) only: the compiler owns the capturing groups.

_Rows = tuple[tuple[str, tuple[str, ...]], ...]

#: Wording that names its cause whatever status code came with it. When a description
#: matches several rows, the earliest row wins. To add a rule, append the phrase to the row
#: of its reason, or insert a new row where its priority belongs.
_DECISIVE_TEXT: Final[_Rows] = (
    ("feedback", (r"feedback-type: ?(?:abuse|fraud|virus|other)",)),
    (
        "suppressed",
        (
            r"on (?:the |our |your )?(?:account'?s? )?suppression list",
            r"suppressed (?:address|recipient|destination)",
        ),
    ),
    (
        "virusdetected",
        (
            r"virus (?:found|detected|infected)",
            r"(?:contains?|containing|infected with) (?:a |an )?(?:virus|malware|worm|trojan)",
            r"malware (?:found|detected)",
        ),
    ),
    (
        "notcompliantrfc",
        (
            r"multiple addresses in from: header",
            r"(?:duplicate|multiple) (?:from|date|subject|message-id|sender|to) headers",
            r"not (?:rfc ?)?(?:5322|2822|822) compliant",
            r"(?:violates|does not comply with|not compliant with) rfc ?(?:5322|2822|822|5321)",
        ),
    ),
    (
        "ratelimited",
        (
            r"too many recipients",
            r"too many (?:connections|concurrent|messages|mails|emails|sessions)",
            r"rate[- ]?limit",
            r"(?:sending|connection|message|mail) (?:rate|frequency) (?:limit|exceeded)",
            r"(?:connection|sending|mail) frequency",
            r"throttl(?:ed|ing)\b",
            r"(?:daily|hourly) (?:user )?(?:sending|message|mail) (?:quota|limit)",
            r"sending (?:quota|limit) (?:exceeded|reached)",
            r"aup#in-13[1-4]0",  # Spectrum (Cloudmark): rate and connection limits
            r"exceeded (?:the |your )?(?:maximum )?(?:number of )?(?:connections|messages|"
            r"recipients) (?:per|allowed)",
        ),
    ),
    (
        "mailboxfull",
        (
            r"(?:mail ?box|mail ?folder|inbox|mail ?drop|account) (?:is )?(?:full|over quota)",
            r"over (?:the )?(?:storage |mailbox |disk )?quota",
            r"quota (?:exceeded|exceed|full)",
            r"exceed(?:s|ed)? (?:the |their |his |her |its )?(?:storage|mailbox|disk|inbox) "
            r"(?:quota|limit|allocation|size)",
            r"(?:mailbox|storage|inbox) (?:size |storage )?(?:limit|quota) (?:exceeded|reached)",
            r"out of (?:storage|disk) space",
            r"not enough (?:storage|space) (?:in|on) (?:the |this )?(?:mailbox|account)",
        ),
    ),
    (
        "emailtoolarge",
        (
            r"message (?:is |was )?too (?:large|big|long)",
            r"mail (?:is )?too (?:large|big)",
            r"(?:message|mail|email) (?:size|length) (?:exceeds|limit)",
            r"exceeds (?:the )?(?:fixed )?(?:maximum|max|allowed) (?:message )?size",
            r"recipsizelimit",
            r"sendsizelimit",
        ),
    ),
    # RFC 3464's diagnostic type for a local delivery program (procmail, a pipe); it ranks
    # below mailbox-full wording, which such programs also report.
    ("mailererror", (r"x-unix; ",)),
    (
        "authfailure",
        (
            r"(?:spf|dkim|dmarc) (?:check|validation|verification|authentication|test)s? "
            r"(?:has |have )?(?:failed|fail|failure)",
            r"(?:fails?|failed|failing|did not pass|does not pass|didn't pass) "
            r"(?:to pass )?(?:the )?(?:spf|dkim|dmarc)",
            r"(?:spf|dkim|dmarc) (?:hard ?fail|soft ?fail|fail(?:ed|ure|s)?\b|reject)",
            r"(?:dmarc|spf) polic(?:y|ies)",
            r"bad spf records?",
            r"per (?:its|it'?s) spf record",
            r"(?:no|invalid|missing) (?:valid |passing )?dkim signature",
            r"(?:fails?|failed) (?:to pass )?(?:sender )?authentication checks",
            r"authentication checks? (?:failed|did not pass)",
            r"unauthenticated (?:e-?mail|message|mail)",
        ),
    ),
    (
        "requireptr",
        (
            r"reverse (?:dns|lookup|hostname|mapping)",
            r"rdns\b",
            r"ptr (?:record|lookup|entry)",
            r"(?:no|missing|invalid) ptr\b",
            r"cannot find your (?:reverse )?hostname",
            r"(?:mismatch(?:es)?|does not match|doesn't match) (?:the )?(?:client|connecting|"
            r"sending) ip",
        ),
    ),
    (
        "securityerror",
        (
            r"(?:smtp )?auth(?:entication)? (?:is )?required",
            r"requires? (?:smtp )?authentication",
            r"without (?:smtp )?authentication",
            r"turn on smtp auth",
            r"must (?:first )?authenticate",
        ),
    ),
    (
        "failedstarttls",
        (
            r"must issue a starttls",
            r"(?:starttls|tls) (?:is )?required",
            r"encryption (?:is )?required",
            r"(?:starttls|tls) (?:handshake|negotiation) (?:failed|failure|error)",
            r"starttls (?:failed|failure|error)",
            r"certificate (?:verify|verification|validation) (?:failed|error)",
        ),
    ),
    (
        "norelaying",
        (
            r"relay(?:ing)? (?:access )?(?:denied|not permitted|not allowed|prohibited|refused)",
            r"not (?:permitted|allowed|authorized) to relay",
            r"(?:unable|refuse|refused) to relay",
            r"we do not relay",
            r"no relaying",
            r"email address is not verified",
        ),
    ),
    (
        "blocked",
        (
            r"blocked using",
            r"(?:black|block|deny|ban)[- ]?list(?:ed|ing)?\b",
            r"listed (?:at|on|in|by) (?:the )?(?:\S+ )?(?:rbl|dnsbl|blacklist|blocklist)",
            r"spamhaus",
            r"spamcop",
            r"abuseat\.org",
            r"barracudacentral",
            r"dnsbl\b",
            r"rbl\b",
            r"client host (?:rejected|blocked)",
            r"client host \[?[\w.:-]+\]? (?:rejected|blocked)",
            r"banned (?:sending )?ip",
            r"(?:ip|ip address|host|server|network) (?:has been |is )?(?:blocked|banned)\b",
            r"blocked (?:ip|for abuse|for spam|due to spam)",
            r"open relay",
            r"(?:do not|does not|don't|doesn't) accept (?:e-?mail|mail|messages|connections) from",
            r"dynamic(?:ally assigned)? (?:ip|address|host)",
            r"dial-?up",
            r"residential (?:ip|address)",
            r"smtp server of your isp",
            r"your isp'?s? (?:smtp|mail|outgoing)",
        ),
    ),
    (
        "badreputation",
        (
            r"(?:low|poor|bad) reputation",
            r"reputation (?:of|for) (?:the |your )?(?:sending )?(?:ip|domain|sender)",
            r"(?:ip|sender|domain|sending) reputation",
            r"user complaints",
        ),
    ),
    (
        "spamdetected",
        (
            r"spam (?:detected|message|content|score)",
            r"(?:detected|classified|identified|marked|rejected|considered|flagged) "
            r"(?:as )?(?:likely )?spam",
            r"spam classification",
            r"(?:looks|appears) (?:like|to be) spam",
            r"(?:suspected|likely|probable) spam",
            r"(?:message|content) is spam",
            r"(?:anti-?)?spam (?:filter|firewall)",
            r"ube\b",
            r"unsolicited (?:bulk|commercial) (?:e-?mail|mail|message)",
        ),
    ),
    (
        "suspend",
        (
            r"(?:account|mailbox|user) (?:is )?(?:disabled|suspended|deactivated|inactive|"
            r"locked|frozen|expired|on hold)",
            r"(?:account|mailbox) (?:[\w'()-]+ ){0,6}?(?:is|has been|was|are) "
            r"(?:temporarily )?(?:disabled|suspended|deactivated|inactive|locked|frozen|closed)",
            r"(?:disabled|suspended|deactivated|inactive|frozen) (?:account|mailbox|user)",
            r"temporar(?:y|ily) locked",
        ),
    ),
    (
        # A provider saying in so many words that it has no such account: unlike "user
        # unknown", this is not the stock reply of a filter.
        "userunknown",
        (
            r"(?:doesn't|does not) have an? [\w.-]+ account",
            r"account (?:that )?you tried to reach does not exist",
            r"recip(?:ient)?notfound",
        ),
    ),
    (
        "notaccept",
        (
            r"null mx",
            r"(?:does not|doesn't|do not) (?:accept|receive) (?:e-?mail|mail)(?! from)",
            r"no smtp service",
            r"(?:couldn't|could not|cannot|can't) find a mail exchanger",
            r"no mx (?:record )?found",
            r"no mail exchanger",
        ),
    ),
    (
        "rejected",
        (
            r"sender (?:address )?rejected",
            r"domain of sender address",
            r"sender (?:verify|verification) failed",
            r"sender (?:domain|address) (?:must exist|not found|does not exist|"
            r"is not valid|is invalid)",
            r"invalid sender",
            r"not a member of (?:this|the) (?:mailing )?list",
            r"(?:permission|not (?:allowed|authorized|permitted)) to post",
            r"send mail as'? (?:feature|account|address|settings)",
            # Google Groups links its help page from every refusal, whatever the language.
            r"groups\.google\.com/support",
        ),
    ),
    (
        "expired",
        (
            r"message (?:has )?expired",
            r"queue\.expired",
            r"envelope expired",
            r"delivery (?:time|period) (?:has )?expired",
            r"retry (?:timeout|time|period) (?:exceeded|expired)",
            r"(?:could not|couldn't|unable to) (?:be )?deliver(?:ed)? (?:for|in|within|after) "
            r"(?:the last )?\d+",
            r"not (?:been )?delivered within",
            r"(?:after|failed) \d+ (?:delivery )?attempts",
            r"aborted after \d+(?:\.\d+)? (?:second|minute|hour|day)",
        ),
    ),
)

#: Wording that points at a cause but yields to a specific status code and to a refusal
#: before MAIL FROM. Same shape and ordering rule as ``_DECISIVE_TEXT``.
_SUGGESTIVE_TEXT: Final[_Rows] = (
    (
        "policyviolation",
        (
            r"(?:for|due to) policy reasons",
            r"(?:denied|rejected|refused|blocked) (?:by|due to|per|for) (?:local |our |site )?"
            r"polic(?:y|ies)",
            r"policy violation",
            r"violat(?:es|ion of) (?:our |the |local )?(?:\w+ )?polic(?:y|ies)",
            r"against (?:our |local )?polic(?:y|ies)",
            r"header error",
            r"blocked because (?:of )?(?:its|the) content",
        ),
    ),
    (
        "hasmoved",
        (r"(?:has|have) moved\b", r"no longer on (?:this |the )?server", r"user not local"),
    ),
    (
        "hostunknown",
        (
            r"host unknown",
            r"unknown host",
            r"no such domain",
            r"domain (?:name )?(?:does not|doesn't) exist",
            r"(?:host|domain|host or domain) (?:name )?not found",
            r"domain (?:\S+ )?(?:could not|couldn't|cannot|can't) be found",
            r"nxdomain",
            r"illegal host",
            r"unrouteable domain",
            r"domain is not reachable",
            # "<host name> does not exist": the word before ends in a dot and a short label.
            r"does not exist(?:(?<=\.[a-z]{2} does not exist)|(?<=\.[a-z]{3} does not exist)"
            r"|(?<=\.[a-z]{4} does not exist))",
        ),
    ),
    (
        "userunknown",
        (
            r"user unknown",
            # Amazon SES labels every x.1.x failure "Unknown address error", whatever the cause.
            r"unknown (?:or illegal )?(?:user|recipient|mailbox|address(?! error)|alias|"
            r"local ?part)",
            r"no such (?:user|mailbox|recipient|address|account|local user)",
            r"(?:user|recipient|mailbox|address) not (?:found|exist)",
            r"(?:account|mailbox|address|user|recipient) (?:[\w'-]+ ){0,6}?"
            r"(?:does not|doesn't|did not) exist",
            r"invalid (?:recipient|mailbox|user|address)",
            r"(?:recipient|address|user|mailbox) (?:is )?(?:invalid|not valid)",
            r"not a valid (?:recipient|mailbox|user)",
            r"no valid recipients",
            r"address (?:couldn't|could not|cannot|can't) be found",
            r"check (?:if|that|whether) (?:the )?(?:e-?mail )?address is correct",
            r"no mailbox (?:here )?by that name",
            r"mailbox unavailable",
            r"not listed in (?:the )?(?:domino )?directory",
            r"not listed in public name",
            r"recipient address rejected(?!:)",
            r"address rejected(?!:)",
        ),
    ),
    (
        "networkerror",
        (
            r"host not found, try again",
            r"no route to host",
            r"network (?:is )?unreachable",
            r"lost connection",
            r"connection (?:reset|dropped|closed) by",
            r"connection refused",
            r"(?:host ?name|dns|name server) lookup (?:failure|failed|error|timeout)",
            r"name service error",
            r"too many hops",
            r"hop count exceeded",
            r"mail(?:ing)? loop",
            r"(?:routing )?loop detected",
            r"forwarded more than the maximum",
        ),
    ),
    (
        "expired",
        (
            r"connection timed out",
            r"timed out while",
            r"did not accept our requests to connect",
            r"(?:host|server) (?:is )?(?:not reachable|unreachable|not responding)",
            r"(?:in|been in) the queue too long",
        ),
    ),
    ("mailererror", (r"mailer error", r"(?:local )?delivery (?:program|agent) (?:failed|error)")),
    (
        "systemfull",
        (
            r"insufficient (?:system )?(?:storage|disk space)",
            r"(?:mail )?system (?:is )?full",
        ),
    ),
    (
        "systemerror",
        (
            r"service (?:is )?(?:currently |temporarily )?(?:unavailable|not available|refused)",
            r"system error",
            r"internal (?:server )?error",
            r"local error in processing",
            r"(?:directory|ldap) server",
        ),
    ),
    ("contenterror", (r"8-?bit data", r"invalid mime", r"mime (?:error|format error)")),
    (
        "syntaxerror",
        (
            r"syntax error",
            r"command (?:not recognized|unrecognized)",
            r"(?:command )?parameter not (?:implemented|recognized)",
        ),
    ),
    (
        "filtered",
        (
            r"rejected by (?:the )?recipient'?s? (?:filter|rules?)",
            r"recipient has (?:blocked|rejected)",
            r"blocked by (?:the )?recipient",
        ),
    ),
    (
        "vacation",
        (
            r"out of (?:the )?office",
            r"auto(?:matic)?[- ]?reply",
            r"on (?:vacation|holiday|leave)\b",
        ),
    ),
)

#: Wording that tells the SMTP stage when the webhook did not. Rows are names from
#: :data:`exporter.smtp.STATES`; the stage mentioned first in the description wins. To add a
#: rule, append the MTA's phrase to the row of its stage.
_STAGE_TEXT: Final[_Rows] = (
    (
        "connect",
        (
            r"after initial connection",
            r"refused to talk to me",
            r"while receiving the initial server greeting",
        ),
    ),
    (
        "helo",
        (
            r"in reply to (?:helo|ehlo|lhlo) command",
            r"after (?:helo|ehlo)\b",
            r"while performing the (?:helo|ehlo) handshake",
            r"my name was rejected",
        ),
    ),
    ("starttls", (r"in reply to starttls command", r"after starttls")),
    ("auth", (r"in reply to auth command",)),
    (
        "mail",
        (
            r"in reply to mail from command",
            r"after (?:pipelined )?mail from",
            r"mail_from\]",
            r"sender was rejected",
        ),
    ),
    (
        "rcpt",
        (
            r"in reply to rcpt to command",
            r"after (?:pipelined )?rcpt to",
            r"rcpt_to\]",
            r"does not like recipient",
            r"did not like our rcpt to",
            r"error following rcpt command",
        ),
    ),
    (
        "data",
        (
            r"in reply to (?:end of )?data command",
            r"after (?:end of )?data\b",
            r"did not like our (?:final )?data",
            r"failed after i sent the message",
        ),
    ),
)


# --- Compiling the wording tables --------------------------------------------------------

_DECISIVE: Final = 0
_SUGGESTIVE: Final = 1
_STAGE: Final = 2
_REGEX_SYNTAX: Final = frozenset(".^$*+?{}[]\\|()")
_SHORTEST_USEFUL_PREFIX: Final = 4


def _literal_prefix(pattern: str) -> tuple[str, str]:
    """Split ``pattern`` into the plain text it starts with and the regular expression after."""
    prefix: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern) and not pattern[i + 1].isalnum():
            prefix.append(pattern[i + 1])
            i += 2
            continue
        if char in _REGEX_SYNTAX:
            if char in "*+?{" and prefix:
                # A quantifier binds to the character before it, which is then not plain text.
                return "".join(prefix[:-1]), re.escape(prefix[-1]) + pattern[i:]
            break
        prefix.append(char)
        i += 1
    return "".join(prefix), pattern[i:]


def _scan_groups(pattern: str) -> tuple[int, list[int]]:
    """Where the group opening ``pattern`` closes, and where its top-level ``|`` are."""
    depth = 0
    bars: list[int] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            i += 2
            continue
        if char == "[":
            # Skip the character class: "(" and "|" inside it are plain characters.
            i = pattern.index("]", i + 2 if pattern[i + 1 : i + 2] in ("]", "^") else i + 1)
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return i, bars
        elif char == "|" and depth == 1:
            bars.append(i)
        i += 1
    raise ValueError(f"unbalanced parentheses in {pattern!r}")


def _spelled_out(pattern: str) -> list[str]:
    """``pattern``, with a leading ``(?:a|b)`` group written out into one pattern per branch.

    A pattern without a plain-text start would be tried at every word of every description;
    written out, each variant files under its own first letters in the trie.
    """
    prefix, rest = _literal_prefix(pattern)
    if len(prefix) >= _SHORTEST_USEFUL_PREFIX or not rest.startswith("(?:"):
        return [pattern]
    before = pattern[: len(pattern) - len(rest)]
    end, bars = _scan_groups(rest)
    edges = [2, *bars, end]
    branches = [rest[start + 1 : stop] for start, stop in pairwise(edges)]
    after = rest[end + 1 :]
    if after.startswith("?") and not after.startswith("??"):
        branches.append("")
        after = after[1:]
    elif after[:1] in ("*", "+", "{", "?"):
        return [pattern]
    return [variant for branch in branches for variant in _spelled_out(before + branch + after)]


class _Trie:
    """Patterns filed under their plain-text prefixes, rendered as one regular expression.

    A flat alternation of a few hundred phrases makes the engine try every phrase at every
    word; sharing prefixes lets it drop most of them at their first letter.
    """

    __slots__ = ("children", "ends")

    def __init__(self) -> None:
        self.children: dict[str, _Trie] = {}
        self.ends: list[tuple[str, str]] = []

    def add(self, prefix: str, rest: str, group: str) -> None:
        node = self
        for char in prefix:
            node = node.children.setdefault(char, _Trie())
        node.ends.append((rest, group))

    def render(self) -> str:
        # Longer prefixes first, so that the longest phrase starting at a word is the one found.
        branches = [re.escape(char) + child.render() for char, child in self.children.items()]
        branches += [
            f"(?:{rest})(?P<{group}>)" if rest else f"(?P<{group}>)" for rest, group in self.ends
        ]
        return branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"


def _compile(
    tables: tuple[tuple[int, _Rows], ...],
) -> tuple[re.Pattern[str], tuple[tuple[int, int, str], ...]]:
    """One regex for every pattern of every table, and (table, row, value) for each group."""
    trie = _Trie()
    meanings: list[tuple[int, int, str]] = []
    for table, rows in tables:
        for row, (value, patterns) in enumerate(rows):
            if table != _STAGE and value not in REASONS:
                raise ValueError(f"{value!r} is not in REASONS")
            for pattern in patterns:
                if re.compile(pattern).groups:
                    raise ValueError(f"capturing group in {pattern!r}: use (?:...)")
                if _scan_groups(f"({pattern})")[1]:
                    raise ValueError(f"top-level | in {pattern!r}: make it two patterns")
                for variant in _spelled_out(pattern):
                    prefix, rest = _literal_prefix(variant)
                    if not prefix[:1].isalnum() and not rest.startswith("(?<"):
                        raise ValueError(f"{pattern!r} must start with a letter or a digit")
                    trie.add(prefix, rest, group=f"g{len(meanings)}")
                    meanings.append((table, row, value))
    # The leading character class puts every match at the start of a word, and lets the
    # engine skip quickly over the letters inside words.
    regex = re.compile(r"[^a-z0-9_]" + trie.render())
    by_index = [(_STAGE, 0, "")] * (regex.groups + 1)
    for name, index in regex.groupindex.items():
        by_index[index] = meanings[int(name[1:])]
    return regex, tuple(by_index)


_WORDING, _GROUP_MEANINGS = _compile(
    ((_DECISIVE, _DECISIVE_TEXT), (_SUGGESTIVE, _SUGGESTIVE_TEXT), (_STAGE, _STAGE_TEXT))
)


_UNFOLDED_SPACE: Final = re.compile(r"[^\S ]|  ")


def _read(description: str) -> tuple[str, str, str]:
    """The decisive reason, the suggestive reason and the stage a description names."""
    text = description.lower().replace("\u2019", "'")
    if _UNFOLDED_SPACE.search(text):
        text = " ".join(text.split())
    text = " " + text
    ranks = [len(_DECISIVE_TEXT), len(_SUGGESTIVE_TEXT)]
    found = ["", "", ""]
    for match in _WORDING.finditer(text):
        table, row, value = _GROUP_MEANINGS[match.lastindex or 0]
        if table == _STAGE:
            found[_STAGE] = found[_STAGE] or value
        elif row < ranks[table]:
            ranks[table] = row
            found[table] = value
    return found[_DECISIVE], found[_SUGGESTIVE], found[_STAGE]


# --- Deciding ----------------------------------------------------------------------------

_HARD_REASONS: Final = frozenset({"userunknown", "hostunknown", "hasmoved"})
_SMTP_STAGES: Final = frozenset({"connect", "helo", "starttls", "auth", "mail", "rcpt", "data"})
#: Stages before MAIL FROM, and what a refusal there means.
_CLIENT_STAGES: Final[dict[str, str]] = {
    "connect": "blocked",
    "helo": "blocked",
    "starttls": "failedstarttls",
    "auth": "securityerror",
}
#: Status subjects that say the mailbox exists or that policy refused the message.
_NOT_ADDRESS_SUBJECTS: Final = frozenset({"2", "3", "7"})


@lru_cache(maxsize=512)
def _status_reasons(status: EnhancedStatus) -> tuple[str, str]:
    """The (specific, generic) reason of a status code; at most one of them is non-empty."""
    short = f"{status.subject}.{status.detail}"
    specific = _SPECIFIC_STATUS.get(f"{status.klass}.{short}") or _SPECIFIC_STATUS.get(short)
    if specific:
        return specific, ""
    return "", _GENERIC_STATUS.get(short) or _SUBJECT_FAMILY.get(status.subject, "")


def _failure_class(code: str, status: EnhancedStatus | None) -> str:
    """``2``, ``4`` or ``5`` from the reply code, else from the status; ``""`` if neither."""
    if is_reply_code(code):
        return code[0]
    return status.klass if status is not None else ""


def _unknown_user_or_filter(stage: str, code: str, status: EnhancedStatus | None) -> str:
    """Read "user unknown" wording in the light of the stage and the status code.

    Content filters and domain filters answer with these words after accepting the
    recipient, so the words alone make a hard bounce only when nothing places them later.
    """
    if stage == "rcpt":
        return "userunknown"
    if status is not None and status.subject in _NOT_ADDRESS_SUBJECTS:
        return "filtered"
    generic = status is None or (status.subject == "0" and status.detail == "0")
    # A reply code quoted from an unknown stage may well answer DATA; a report without one
    # is the final system speaking for its own directory.
    if generic and (stage == "data" or (not stage and is_reply_code(code))):
        return "filtered"
    return "userunknown"


def _weigh(
    stage: str, code: str, status: EnhancedStatus | None, failure_class: str, text: str
) -> str:
    decisive, suggestive, stage_in_text = _read(text)
    stage = stage or stage_in_text
    specific, generic = _status_reasons(status) if status is not None else ("", "")
    if suggestive == "userunknown":
        # A temporary reply cannot mean that the mailbox does not exist.
        temporary = failure_class == "4"
        suggestive = "" if temporary else _unknown_user_or_filter(stage, code, status)
    if decisive:
        reason = decisive
    elif specific:
        reason = specific
    elif stage in _CLIENT_STAGES and (failure_class or stage in {"starttls", "auth"}):
        # Without a reply, a failed connection or greeting is a network matter, not a refusal.
        reason = _CLIENT_STAGES[stage]
    elif suggestive:
        reason = suggestive
    elif stage == "mail" and failure_class:
        reason = "rejected"
    elif generic:
        reason = generic
    elif status is None and code in _REPLY_CODE_REASONS:
        reason = _REPLY_CODE_REASONS[code]
    else:
        reason = "onhold" if failure_class == "4" else "undefined"

    if reason in _HARD_REASONS and stage == "mail":
        return "rejected"
    if reason == "hostunknown" and failure_class == "4":
        return "networkerror"
    return reason


def classify_failure(state: str, code: str, extended: str, description: str) -> Verdict:
    """Classify one failed delivery.

    ``state`` comes from :func:`exporter.smtp.normalize_state` (``""`` when unknown), ``code``
    is the SMTP reply code and ``extended`` the RFC 3463 status, either possibly empty, and
    ``description`` is the diagnostic text in any case and of any length.
    """
    status = parse_enhanced_status(extended)
    failure_class = _failure_class(code, status)
    if failure_class == "2" and (status is None or status.klass == "2"):
        return Verdict("delivered", "soft")
    stage = state if state in _SMTP_STAGES else ""
    reason = _weigh(stage, code, status, failure_class, description)
    return Verdict(reason, _bounce_type(reason, failure_class))


def bounce_type_of(reason: str, code: str, extended: str) -> str:
    """``hard`` when sending to the address again can never succeed, in Sisimai's sense.

    Unknown users and hosts and moved mailboxes are hard. A domain that accepts no mail
    (RFC 7505 null MX) is hard unless the server called it temporary, with a 4xx reply code
    or, lacking one, a 4.x.x status. Every other reason is soft.
    """
    return _bounce_type(reason, _failure_class(code, parse_enhanced_status(extended)))


def _bounce_type(reason: str, failure_class: str) -> str:
    if reason in _HARD_REASONS or (reason == "notaccept" and failure_class != "4"):
        return "hard"
    return "soft"
