"""Decide why a delivery failed, in Sisimai's vocabulary, and whether that makes a hard bounce.

The decision is a ladder of evidence (:data:`exporter.mail.precedence.PRECEDENCE`): each kind
of evidence is read from the failure, and the strongest kind that names a reason decides; the
corrections of :data:`exporter.mail.precedence.CORRECTIONS` then apply. The status codes and
wording come from ``exporter/mail/rules/`` (:mod:`exporter.mail.rulebook`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Final, NamedTuple

from exporter.mail.matcher import Matcher
from exporter.mail.precedence import CORRECTIONS, PRECEDENCE, Correction, Evidence
from exporter.mail.providers import RULES as PROVIDER_RULES
from exporter.mail.rulebook import STATUS, WORDING
from exporter.mail.smtp import EnhancedStatus, is_reply_code, parse_enhanced_status
from exporter.mail.vocabulary import HARD_REASONS, BounceType, Reason


@dataclass(frozen=True, slots=True)
class Verdict:
    """Why a delivery failed, and whether sending to the address again can ever succeed."""

    reason: Reason
    bounce_type: BounceType


#: The wording tables and then the provider tables, found in one scan of the description.
_MATCHER: Final = Matcher(
    [(table.wins, table.rows()) for table in WORDING.tables] + PROVIDER_RULES.tables()
)
_WORDING_TABLES: Final = len(WORDING.tables)
_PROVIDER_TABLES: Final = len(PROVIDER_RULES.tables())
_DECISIVE: Final = tuple(Reason(value) for value in WORDING.decisive.order)
_SUGGESTIVE: Final = tuple(Reason(value) for value in WORDING.suggestive.order)
_STAGES: Final = WORDING.stage.order

_SMTP_STAGES: Final = frozenset({"connect", "helo", "starttls", "auth", "mail", "rcpt", "data"})
#: Stages before MAIL FROM, and what a refusal there means.
_CLIENT_STAGES: Final[Mapping[str, Reason]] = {
    "connect": Reason.BLOCKED,
    "helo": Reason.BLOCKED,
    "starttls": Reason.FAILED_STARTTLS,
    "auth": Reason.SECURITY_ERROR,
}
#: Status subjects that say the mailbox exists or that policy refused the message.
_NOT_ADDRESS_SUBJECTS: Final = frozenset({"2", "3", "7"})

#: The order in which :func:`classify_failure` lists what each kind of evidence says, and
#: the ladder: the place in that list of each rung of :data:`PRECEDENCE`, strongest first.
_EVIDENCE: Final = (
    Evidence.SUCCESS,
    Evidence.PROVIDER,
    Evidence.DECISIVE_WORDING,
    Evidence.SPECIFIC_STATUS,
    Evidence.CLIENT_REFUSAL,
    Evidence.SUGGESTIVE_WORDING,
    Evidence.SENDER_REFUSAL,
    Evidence.GENERIC_STATUS,
    Evidence.REPLY_CODE,
    Evidence.NO_EVIDENCE,
)
_LADDER: Final = tuple(_EVIDENCE.index(rank.evidence) for rank in PRECEDENCE)
assert sorted(_LADDER) == list(range(len(Evidence))), "every kind of evidence has one rung"


class _Codes(NamedTuple):
    """What a failure's reply code and enhanced status say, read once per pair."""

    status: EnhancedStatus | None
    #: ``2``, ``4`` or ``5`` from the reply code, else from the status; ``""`` if neither.
    failure_class: str
    #: ``delivered`` for a success reply that no failure status contradicts.
    success: Reason | None
    specific: Reason | None
    generic: Reason | None
    reply: Reason | None


@lru_cache(maxsize=4096)  # a few hundred pairs are ever sent: read each once
def _read_codes(code: str, extended: str) -> _Codes:
    status = parse_enhanced_status(extended)
    failure_class = code[0] if is_reply_code(code) else status.klass if status else ""
    success = failure_class == "2" and (status is None or status.klass == "2")
    delivered = Reason.DELIVERED if success else None
    if status is None:
        return _Codes(None, failure_class, delivered, None, None, STATUS.reply_codes.get(code))
    short = f"{status.subject}.{status.detail}"
    specific = STATUS.specific.get(f"{status.klass}.{short}") or STATUS.specific.get(short)
    if specific:
        return _Codes(status, failure_class, delivered, specific, None, None)
    generic = STATUS.generic.get(short) or STATUS.subjects.get(status.subject)
    return _Codes(status, failure_class, delivered, None, generic, None)


def _unknown_user_or_filter(stage: str, code: str, status: EnhancedStatus | None) -> Reason:
    """Read "user unknown" wording in the light of the stage and the status code.

    Content filters and domain filters answer with these words after accepting the
    recipient, so the words alone make a hard bounce only when nothing places them later.
    """
    if stage == "rcpt":
        return Reason.USER_UNKNOWN
    if status is not None and status.subject in _NOT_ADDRESS_SUBJECTS:
        return Reason.FILTERED
    generic = status is None or (status.subject == "0" and status.detail == "0")
    # A reply code quoted from an unknown stage may well answer DATA; a report without one
    # is the final system speaking for its own directory.
    if generic and (stage == "data" or (not stage and is_reply_code(code))):
        return Reason.FILTERED
    return Reason.USER_UNKNOWN


def _suggestive(reason: Reason, stage: str, code: str, codes: _Codes) -> Reason | None:
    if reason is Reason.USER_UNKNOWN:
        # A temporary reply cannot mean that the mailbox does not exist.
        temporary = codes.failure_class == "4"
        return None if temporary else _unknown_user_or_filter(stage, code, codes.status)
    return reason


def _client_refusal(stage: str, failure_class: str) -> Reason | None:
    # Without a reply, a failed connection or greeting is a network matter, not a refusal.
    if stage in _CLIENT_STAGES and (failure_class or stage in {"starttls", "auth"}):
        return _CLIENT_STAGES[stage]
    return None


def _address_at_mail_from(reason: Reason, stage: str, codes: _Codes) -> Reason:
    return Reason.REJECTED if reason in HARD_REASONS and stage == "mail" else reason


def _temporary_host_unknown(reason: Reason, stage: str, codes: _Codes) -> Reason:
    temporary = reason is Reason.HOST_UNKNOWN and codes.failure_class == "4"
    return Reason.NETWORK_ERROR if temporary else reason


def _answered_no_answer(reason: Reason, stage: str, codes: _Codes) -> Reason:
    status = codes.status
    no_answer = status is not None and status.subject == "4" and status.detail == "1"
    refused = reason is Reason.EXPIRED and stage == "rcpt" and codes.failure_class == "5"
    return Reason.USER_UNKNOWN if no_answer and refused else reason


_CORRECTORS: Final[Mapping[Correction, Callable[[Reason, str, _Codes], Reason]]] = {
    Correction.ADDRESS_AT_MAIL_FROM: _address_at_mail_from,
    Correction.TEMPORARY_HOST_UNKNOWN: _temporary_host_unknown,
    Correction.ANSWERED_NO_ANSWER: _answered_no_answer,
}
_CORRECTIONS: Final = tuple(_CORRECTORS[adjustment.correction] for adjustment in CORRECTIONS)


def classify_failure(
    state: str, code: str, extended: str, description: str, *, domain: str = "", host: str = ""
) -> Verdict:
    """Classify one failed delivery.

    ``state`` comes from :func:`exporter.mail.smtp.normalize_state` (``""`` when unknown),
    ``code`` is the SMTP reply code and ``extended`` the RFC 3463 status, either possibly
    empty, and ``description`` is the diagnostic text in any case and of any length.
    ``domain`` (the recipient's) and ``host`` (the remote server's name), when known, let a
    provider's documented code count where the code alone is ambiguous
    (:mod:`exporter.mail.providers`).
    """
    codes = _read_codes(code, extended)
    failure_class = codes.failure_class
    found = _MATCHER.find(description)
    decisive, suggestive, stage_in_text = found[:_WORDING_TABLES]
    in_providers = found[_WORDING_TABLES:]
    provider = None
    if in_providers.count(None) < _PROVIDER_TABLES:  # most replies name no provider's code
        provider = PROVIDER_RULES.decide(in_providers, description, domain, host)
    stage = state if state in _SMTP_STAGES else ""
    if not stage and stage_in_text is not None:
        stage = _STAGES[stage_in_text]
    evidence = (  # what each kind of evidence says, in the order of _EVIDENCE
        codes.success,
        None if provider is None else provider.reason,
        None if decisive is None else _DECISIVE[decisive],
        codes.specific,
        _client_refusal(stage, failure_class) if stage in _CLIENT_STAGES else None,
        None if suggestive is None else _suggestive(_SUGGESTIVE[suggestive], stage, code, codes),
        Reason.REJECTED if stage == "mail" and failure_class else None,
        codes.generic,
        codes.reply,
        Reason.ON_HOLD if failure_class == "4" else Reason.UNDEFINED,
    )
    reason = Reason.UNDEFINED  # the last rung always answers
    for rung in _LADDER:
        named = evidence[rung]
        if named is not None:
            reason = named
            break
    for correct in _CORRECTIONS:
        reason = correct(reason, stage, codes)
    return _VERDICTS[reason, failure_class]


def bounce_type_of(reason: Reason, code: str, extended: str) -> BounceType:
    """``hard`` when sending to the address again can never succeed, in Sisimai's sense.

    Unknown users and hosts and moved mailboxes are hard. A domain that accepts no mail
    (RFC 7505 null MX) is hard unless the server called it temporary, with a 4xx reply code
    or, lacking one, a 4.x.x status. Every other reason is soft.
    """
    return _bounce_type(reason, _read_codes(code, extended).failure_class)


def _bounce_type(reason: Reason, failure_class: str) -> BounceType:
    if reason in HARD_REASONS or (reason is Reason.NOT_ACCEPT and failure_class != "4"):
        return BounceType.HARD
    return BounceType.SOFT


#: Every verdict there can be, built once: a frozen dataclass is slow to build per call.
_VERDICTS: Final[Mapping[tuple[Reason, str], Verdict]] = {
    (reason, klass): Verdict(reason, _bounce_type(reason, klass))
    for reason in Reason
    for klass in ("", "2", "3", "4", "5")
}
