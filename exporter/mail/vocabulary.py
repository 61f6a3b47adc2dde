"""The reason vocabulary: why a delivery failed, in Sisimai's words, and hard or soft.

Every reason and bounce type is a member of a closed enum, so a typo in code fails mypy and
a typo in a rule file fails at load; the values are the label values and log fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Final


class Reason(StrEnum):
    """Why a delivery failed: Sisimai's vocabulary (see :data:`REASON_MEANINGS`)."""

    AUTH_FAILURE = "authfailure"
    BAD_REPUTATION = "badreputation"
    BLOCKED = "blocked"
    CONTENT_ERROR = "contenterror"
    DELIVERED = "delivered"
    EMAIL_TOO_LARGE = "emailtoolarge"
    EXPIRED = "expired"
    FAILED_STARTTLS = "failedstarttls"
    FEEDBACK = "feedback"
    FILTERED = "filtered"
    HAS_MOVED = "hasmoved"
    HOST_UNKNOWN = "hostunknown"
    MAILBOX_FULL = "mailboxfull"
    MAILER_ERROR = "mailererror"
    NETWORK_ERROR = "networkerror"
    NO_RELAYING = "norelaying"
    NOT_ACCEPT = "notaccept"
    NOT_COMPLIANT_RFC = "notcompliantrfc"
    ON_HOLD = "onhold"
    POLICY_VIOLATION = "policyviolation"
    RATE_LIMITED = "ratelimited"
    REJECTED = "rejected"
    REQUIRE_PTR = "requireptr"
    SECURITY_ERROR = "securityerror"
    SPAM_DETECTED = "spamdetected"
    SUPPRESSED = "suppressed"
    SUSPEND = "suspend"
    SYNTAX_ERROR = "syntaxerror"
    SYSTEM_ERROR = "systemerror"
    SYSTEM_FULL = "systemfull"
    UNDEFINED = "undefined"
    USER_UNKNOWN = "userunknown"
    VACATION = "vacation"
    VIRUS_DETECTED = "virusdetected"


class BounceType(StrEnum):
    """Whether sending to the address again can ever succeed (see :data:`BOUNCE_TYPE_MEANINGS`)."""

    HARD = "hard"
    SOFT = "soft"


#: One line per reason, for the README's reason table and the metric help.
REASON_MEANINGS: Final[Mapping[Reason, str]] = MappingProxyType(
    {
        Reason.AUTH_FAILURE: "SPF, DKIM or DMARC failed",
        Reason.BAD_REPUTATION: "refused for the sender's reputation",
        Reason.BLOCKED: "the sending IP or host is refused (block list, refused connection)",
        Reason.CONTENT_ERROR: "the message format or encoding is invalid",
        Reason.DELIVERED: "a success code: nothing failed",
        Reason.EMAIL_TOO_LARGE: "the message is over the receiver's size limit",
        Reason.EXPIRED: "the sending server gave up after retrying",
        Reason.FAILED_STARTTLS: "TLS was required or failed",
        Reason.FEEDBACK: "a complaint (an ARF feedback report)",
        Reason.FILTERED: "the mailbox exists but refuses this message or sender",
        Reason.HAS_MOVED: "the mailbox moved and left no forwarding address",
        Reason.HOST_UNKNOWN: "the domain does not exist or has no mail server",
        Reason.MAILBOX_FULL: "the mailbox is over quota",
        Reason.MAILER_ERROR: "the receiving system's delivery program failed",
        Reason.NETWORK_ERROR: "DNS, routing or connection trouble",
        Reason.NO_RELAYING: "the server refused to relay",
        Reason.NOT_ACCEPT: "the domain accepts no mail (null MX, RFC 7505)",
        Reason.NOT_COMPLIANT_RFC: "the message is not RFC 5322 compliant",
        Reason.ON_HOLD: "a temporary failure that names no cause",
        Reason.POLICY_VIOLATION: "the message breaks the receiver's policy",
        Reason.RATE_LIMITED: "too many messages, connections or recipients",
        Reason.REJECTED: "the sender address was refused (MAIL FROM), or may not post",
        Reason.REQUIRE_PTR: "the sending IP has no (matching) reverse DNS",
        Reason.SECURITY_ERROR: "authentication was required or failed",
        Reason.SPAM_DETECTED: "the content was judged spam",
        Reason.SUPPRESSED: "the address is on a suppression list",
        Reason.SUSPEND: "the account is disabled or inactive",
        Reason.SYNTAX_ERROR: "an SMTP command was refused as malformed",
        Reason.SYSTEM_ERROR: "the receiving system failed",
        Reason.SYSTEM_FULL: "the receiving system is out of storage",
        Reason.UNDEFINED: "nothing in the failure says why",
        Reason.USER_UNKNOWN: "the mailbox does not exist",
        Reason.VACATION: "an auto-reply",
        Reason.VIRUS_DETECTED: "the content carried malware",
    }
)

BOUNCE_TYPE_MEANINGS: Final[Mapping[BounceType, str]] = MappingProxyType(
    {
        BounceType.HARD: "sending to the address again can never succeed",
        BounceType.SOFT: "a later attempt may succeed",
    }
)

#: Reasons that make a hard bounce whatever the code; ``notaccept`` is hard unless temporary.
HARD_REASONS: Final = frozenset({Reason.USER_UNKNOWN, Reason.HOST_UNKNOWN, Reason.HAS_MOVED})

assert set(REASON_MEANINGS) == set(Reason), "every reason needs its one-line meaning"
assert set(BOUNCE_TYPE_MEANINGS) == set(BounceType), "every bounce type needs its meaning"
