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


class Evidence(StrEnum):
    """A kind of evidence about why a delivery failed."""

    SUCCESS = "success reply"
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
    return "\n".join(lines)
