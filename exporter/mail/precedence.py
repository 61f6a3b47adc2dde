"""The order of evidence: which kind of evidence about a failure outranks which, and why.

:func:`exporter.mail.classifier.classify_failure` walks :data:`PRECEDENCE` top down and the
first kind of evidence that names a reason decides; :data:`CORRECTIONS` then adjust that
reason with facts no single kind of evidence holds. To change why A beats B, move its row:
the ladder follows the table, and the README prints it (:func:`markdown`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from exporter.mail.vocabulary import Reason


class Evidence(StrEnum):
    """A kind of evidence about why a delivery failed."""

    SUCCESS = "success reply"
    PROVIDER = "provider's documented reply"
    DECISIVE_WORDING = "decisive wording"
    SPECIFIC_STATUS = "specific status code"
    CLIENT_REFUSAL = "refusal before MAIL FROM"
    SUGGESTIVE_WORDING = "suggestive wording"
    SENDER_REFUSAL = "refusal at MAIL FROM"
    GENERIC_STATUS = "generic status code"
    REPLY_CODE = "reply code"
    NO_EVIDENCE = "no evidence"


@dataclass(frozen=True, slots=True)
class Rank:
    """One row of the ladder: a kind of evidence, an example, and why it outranks the next."""

    evidence: Evidence
    example: str
    why: str


#: Strongest evidence first; the first row that names a reason decides.
PRECEDENCE: Final[tuple[Rank, ...]] = (
    Rank(
        Evidence.SUCCESS,
        "a 2xx reply, with no status or a 2.x.x one: `delivered`",
        "the server accepted the message, so nothing else can make it a failure",
    ),
    Rank(
        Evidence.PROVIDER,
        "Microsoft's `5.4.1 ... Access denied` for an outlook.com recipient, Yahoo's `[TSS04]`, "
        "Gmail's `?p=DisabledUser` (providers.toml)",
        "the provider that refused says in its own documentation what its code means, which "
        "no generic reading of the same words or status can know",
    ),
    Rank(
        Evidence.DECISIVE_WORDING,
        '"mailbox full", "listed at Spamhaus", "DMARC policy" (wording.toml, decisive)',
        "it names one cause outright, while servers attach whatever code their software "
        "uses for any refusal (5.1.1 for a full mailbox, 5.7.1 for a block list)",
    ),
    Rank(
        Evidence.SPECIFIC_STATUS,
        "5.1.1, 5.2.2, 5.7.26 (status.toml, specific)",
        "an RFC 3463 or registered code that names its cause is chosen by the server for "
        "this failure, more precisely than the suggestive wording around it",
    ),
    Rank(
        Evidence.CLIENT_REFUSAL,
        "a refusal at connect or HELO (`blocked`), STARTTLS (`failedstarttls`) or AUTH "
        "(`securityerror`)",
        "no sender or recipient has been named yet, so the server can only be refusing the "
        "client; without a reply, a failed connection or greeting is a network matter",
    ),
    Rank(
        Evidence.SUGGESTIVE_WORDING,
        '"user unknown", "denied by policy", "service unavailable" (wording.toml, '
        "suggestive); user-unknown wording is read in the light of the stage and code",
        "it points at a cause, more precisely than the stage of a refusal or a status code "
        "that only names a family",
    ),
    Rank(
        Evidence.SENDER_REFUSAL,
        "any refusal at MAIL FROM: `rejected`",
        "at MAIL FROM only the sender has been named, so a refusal there is the sender's, "
        "more precisely than a generic code says",
    ),
    Rank(
        Evidence.GENERIC_STATUS,
        "x.0.0, 4.4.7, 5.7.1 (status.toml, generic and subject)",
        "a status code still names the family of the cause, which a reply code does not",
    ),
    Rank(
        Evidence.REPLY_CODE,
        "421, 452, 500-504 without any status code (status.toml, reply_code)",
        "the few reply codes whose RFC 5321 meaning is a cause are better than nothing",
    ),
    Rank(
        Evidence.NO_EVIDENCE,
        "`onhold` for a temporary failure, else `undefined`",
        "nothing in the failure says why",
    ),
)


class Correction(StrEnum):
    """A fact that changes the reason the ladder gave."""

    ADDRESS_AT_MAIL_FROM = "address problem at MAIL FROM"
    TEMPORARY_HOST_UNKNOWN = "temporary unknown host"
    ANSWERED_NO_ANSWER = '"no answer" in an answer at RCPT'


@dataclass(frozen=True, slots=True)
class Adjustment:
    """One correction applied after the ladder, in order: when it applies, and why."""

    correction: Correction
    when: str
    becomes: str
    why: str


CORRECTIONS: Final[tuple[Adjustment, ...]] = (
    Adjustment(
        Correction.ADDRESS_AT_MAIL_FROM,
        "`userunknown`, `hostunknown` or `hasmoved` at MAIL FROM",
        "`rejected`",
        "the only address named at MAIL FROM is the sender's: the recipient is not at fault",
    ),
    Adjustment(
        Correction.TEMPORARY_HOST_UNKNOWN,
        "`hostunknown` with a 4xx reply (or a 4.x.x status and no reply code)",
        "`networkerror`",
        "a host that is unknown only for now is a DNS failure, not a domain that is gone",
    ),
    Adjustment(
        Correction.ANSWERED_NO_ANSWER,
        '`expired` read from status X.4.1 ("no answer from host") in a 5xx reply at RCPT',
        "`userunknown`",
        "the host did answer, refusing this recipient for good; Exchange Online sends "
        "550 5.4.1 at RCPT for a recipient its tenant does not have (learn.microsoft.com, "
        '"Fix error code 550 5.4.1 in Exchange Online")',
    ),
)


@dataclass(frozen=True, slots=True)
class Resolution:
    """A conflict between two readings of one failure, how it is decided, and why."""

    conflict: str
    #: A failure showing it: state, reply code, enhanced status, text, recipient domain.
    example: tuple[str, str, str, str, str]
    winner: Reason
    loser: Reason
    #: Where the decision is made: a rung of :data:`PRECEDENCE`, a correction, a table order.
    decided_by: str
    why: str


#: The conflicts between readings that a contributor is most likely to meet, each decided
#: explicitly; ``tests/test_precedence.py`` classifies every example.
RESOLUTIONS: Final[tuple[Resolution, ...]] = (
    Resolution(
        "a provider's documented code against generic wording or status",
        ("rcpt", "550", "5.4.1", "Recipient address rejected: Access denied", "outlook.com"),
        Reason.USER_UNKNOWN,
        Reason.EXPIRED,
        f"rung: {Evidence.PROVIDER!s}",
        "Microsoft documents these words at RCPT as a recipient missing from the tenant",
    ),
    Resolution(
        "a 5.4.1 refusal at RCPT from a server that is not known to be Microsoft's",
        ("rcpt", "550", "5.4.1", "Recipient address rejected", "example.org"),
        Reason.USER_UNKNOWN,
        Reason.EXPIRED,
        f"correction: {Correction.ANSWERED_NO_ANSWER!s}",
        "a server that answers cannot mean that no host answered",
    ),
    Resolution(
        "a rate limit imposed because of the sender's reputation",
        ("", "421", "4.7.0", "Rate limited due to IP reputation", ""),
        Reason.BAD_REPUTATION,
        Reason.RATE_LIMITED,
        f"rung: {Evidence.PROVIDER!s} (Microsoft's published wording)",
        "the limit is the consequence; the reputation is the cause the sender must fix",
    ),
    Resolution(
        "wording that asks for SMTP authentication against DMARC's 5.7.26",
        (
            "",
            "550",
            "5.7.26",
            "This message is unauthenticated: you must authenticate with SPF or DKIM",
            "",
        ),
        Reason.AUTH_FAILURE,
        Reason.SECURITY_ERROR,
        f"rung: {Evidence.SPECIFIC_STATUS!s} above the suggestive SMTP AUTH wording",
        "5.7.26 (RFC 7372 registry, RFC 8601) names failed sender authentication; "
        '"authenticate" alone may mean SMTP AUTH (RFC 4954) or SPF/DKIM',
    ),
    Resolution(
        "an expiry that names the network failure behind it",
        (
            "",
            "",
            "4.4.7",
            ("retry timeout exceeded: connect to mx.example.net[192.0.2.1]:25: No route to host"),
            "",
        ),
        Reason.NETWORK_ERROR,
        Reason.EXPIRED,
        "wording.toml: DNS, routing and loop wording (decisive) above expiry wording",
        "the expiry only says the retries ran out; a DNS, routing or loop failure says why. "
        "A connection that timed out or was refused is RFC 3463's X.4.1/X.4.2, what "
        "expiring means, so expiry wording outranks it",
    ),
    Resolution(
        "a DNS lookup that failed for now against an unknown host",
        (
            "",
            "550",
            "5.0.0",
            (
                "Host or domain name not found. Name service error for name=example.com "
                "type=MX: Host not found, try again"
            ),
            "",
        ),
        Reason.NETWORK_ERROR,
        Reason.HOST_UNKNOWN,
        "wording.toml: Postfix's TRY_AGAIN text above unknown-host wording",
        'Postfix writes "Host not found, try again" for a DNS server failure '
        "(TRY_AGAIN), not for a domain that does not exist",
    ),
    Resolution(
        "a temporary failure whose text names no known cause",
        ("data", "451", "", "Please come back later", ""),
        Reason.ON_HOLD,
        Reason.UNDEFINED,
        f"rung: {Evidence.NO_EVIDENCE!s}",
        "a 4xx reply says the server expects the delivery to succeed later; `undefined` "
        "is kept for failures that say nothing at all",
    ),
)


def markdown() -> str:
    """The ladder and the corrections as Markdown tables, for the README."""
    lines = [
        "| rank | evidence | example | why it outranks the next |",
        "| --- | --- | --- | --- |",
    ]
    lines += [
        f"| {n} | {rank.evidence} | {rank.example} | {rank.why} |"
        for n, rank in enumerate(PRECEDENCE, start=1)
    ]
    lines += ["", "| correction | when | becomes | why |", "| --- | --- | --- | --- |"]
    lines += [f"| {a.correction} | {a.when} | {a.becomes} | {a.why} |" for a in CORRECTIONS]
    lines += [
        "",
        "| conflict | example | wins | over | decided by | why |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    lines += [
        f"| {r.conflict} | `{_example(r.example)}` | `{r.winner}` | `{r.loser}` "
        f"| {r.decided_by} | {r.why} |"
        for r in RESOLUTIONS
    ]
    return "\n".join(lines)


def _example(example: tuple[str, str, str, str, str]) -> str:
    state, code, status, text, domain = example
    parts = [f"state={state}" if state else "", code, status, text.replace("|", "\\|")]
    line = " ".join(part for part in parts if part)
    return f"{line} (to {domain})" if domain else line


if __name__ == "__main__":  # the README's tables: python -m exporter.mail.precedence
    print(markdown())
