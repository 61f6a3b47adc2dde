"""The failure classifier: status codes, wording, SMTP stages and the hard/soft rule."""

from __future__ import annotations

import ast
import dataclasses
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import exporter.mail
from exporter.mail import BounceType, Reason, Verdict, bounce_type_of, classify_failure
from exporter.mail.precedence import (
    CORRECTIONS,
    PRECEDENCE,
    Correction,
    Evidence,
    markdown,
)
from exporter.mail.smtp import STATES
from exporter.mail.vocabulary import BOUNCE_TYPE_MEANINGS, HARD_REASONS, REASON_MEANINGS

# --- The vocabulary ----------------------------------------------------------------------


def test_reasons_are_sisimais_vocabulary_without_duplicates() -> None:
    values = [reason.value for reason in Reason]
    assert len(values) == len(set(values)) == 34
    for reason in ("undefined", "feedback", "vacation", "delivered", "onhold", "suppressed"):
        assert reason in values


def test_bounce_types_are_hard_and_soft() -> None:
    assert [bounce_type.value for bounce_type in BounceType] == ["hard", "soft"]


def test_every_reason_and_bounce_type_has_a_one_line_meaning() -> None:
    assert set(REASON_MEANINGS) == set(Reason)
    assert set(BOUNCE_TYPE_MEANINGS) == set(BounceType)
    for meaning in (*REASON_MEANINGS.values(), *BOUNCE_TYPE_MEANINGS.values()):
        assert meaning
        assert "\n" not in meaning


def test_hard_reasons_are_the_address_reasons() -> None:
    assert {Reason.USER_UNKNOWN, Reason.HOST_UNKNOWN, Reason.HAS_MOVED} == HARD_REASONS


def test_verdict_is_frozen() -> None:
    verdict = classify_failure("", "", "", "")
    with pytest.raises(dataclasses.FrozenInstanceError):
        verdict.reason = Reason.USER_UNKNOWN  # type: ignore[misc]


@settings(max_examples=300, deadline=None)
@given(
    state=st.sampled_from([*STATES, ""]),
    code=st.sampled_from(["", "250", "421", "450", "550", "554", "999", "abc"]),
    extended=st.sampled_from(["", "5.1.1", "4.4.7", "5.7.1", "2.0.0", "5.9.999", "x.y.z"]),
    description=st.text(max_size=300),
)
def test_any_input_gets_a_reason_from_the_vocabulary(
    state: str, code: str, extended: str, description: str
) -> None:
    verdict = classify_failure(state, code, extended, description)
    assert isinstance(verdict.reason, Reason)
    assert verdict.bounce_type == bounce_type_of(verdict.reason, code, extended)


# --- No evidence -------------------------------------------------------------------------


def test_empty_input_is_undefined_and_soft() -> None:
    assert classify_failure("", "", "", "") == Verdict(Reason.UNDEFINED, BounceType.SOFT)


def test_permanent_failure_without_evidence_is_undefined() -> None:
    assert classify_failure("", "550", "5.0.0", "") == Verdict(Reason.UNDEFINED, BounceType.SOFT)


def test_temporary_failure_without_evidence_is_onhold() -> None:
    assert classify_failure("", "451", "4.0.0", "Temporary failure") == Verdict(
        Reason.ON_HOLD, BounceType.SOFT
    )


def test_unrecognised_text_is_undefined() -> None:
    assert classify_failure("", "", "", "Nyaan nyaan") == Verdict(Reason.UNDEFINED, BounceType.SOFT)


@pytest.mark.parametrize(("code", "extended"), [("250", ""), ("", "2.0.0"), ("250", "2.1.5")])
def test_success_codes_are_delivered(code: str, extended: str) -> None:
    assert classify_failure("data", code, extended, "") == Verdict(
        Reason.DELIVERED, BounceType.SOFT
    )


# --- Enhanced status codes ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "extended", "reason", "bounce_type"),
    [
        ("550", "5.1.1", "userunknown", "hard"),
        ("550", "5.1.2", "hostunknown", "hard"),
        ("553", "5.1.3", "userunknown", "hard"),
        ("551", "5.1.6", "hasmoved", "hard"),
        ("553", "5.1.7", "rejected", "soft"),
        ("501", "5.1.8", "rejected", "soft"),
        ("550", "5.1.10", "notaccept", "hard"),
        ("550", "5.2.1", "filtered", "soft"),
        ("552", "5.2.2", "mailboxfull", "soft"),
        ("452", "4.2.2", "mailboxfull", "soft"),
        ("552", "5.2.3", "emailtoolarge", "soft"),
        ("452", "4.3.1", "systemfull", "soft"),
        ("554", "5.3.2", "notaccept", "hard"),
        ("552", "5.3.4", "emailtoolarge", "soft"),
        ("554", "5.3.5", "systemerror", "soft"),
        ("554", "5.4.4", "hostunknown", "hard"),
        ("451", "4.4.4", "networkerror", "soft"),
        ("", "4.4.1", "expired", "soft"),
        ("421", "4.4.2", "networkerror", "soft"),
        ("451", "4.4.3", "systemerror", "soft"),
        ("452", "4.4.5", "systemfull", "soft"),
        ("554", "5.4.6", "networkerror", "soft"),
        ("", "4.4.7", "expired", "soft"),
        ("452", "4.5.3", "ratelimited", "soft"),
        ("554", "5.6.0", "contenterror", "soft"),
        ("550", "5.6.9", "contenterror", "soft"),
        ("550", "5.7.1", "securityerror", "soft"),
        ("535", "5.7.8", "securityerror", "soft"),
        ("525", "5.7.13", "suspend", "soft"),
        ("550", "5.7.17", "hasmoved", "hard"),
        ("550", "5.7.20", "authfailure", "soft"),
        ("550", "5.7.23", "authfailure", "soft"),
        ("550", "5.7.25", "requireptr", "soft"),
        ("550", "5.7.26", "authfailure", "soft"),
        ("550", "5.7.27", "rejected", "soft"),
        ("550", "5.7.30", "failedstarttls", "soft"),
        ("550", "5.7.606", "blocked", "soft"),
        ("550", "5.7.799", "securityerror", "soft"),
        ("550", "5.01.001", "userunknown", "hard"),
    ],
)
def test_status_code_alone_decides_the_reason(
    code: str, extended: str, reason: str, bounce_type: str
) -> None:
    assert classify_failure("", code, extended, "") == Verdict(
        Reason(reason), BounceType(bounce_type)
    )


@pytest.mark.parametrize(
    ("code", "reason"),
    [("421", "systemerror"), ("452", "systemfull"), ("500", "syntaxerror"), ("550", "undefined")],
)
def test_reply_code_speaks_only_when_nothing_else_does(code: str, reason: str) -> None:
    assert classify_failure("", code, "", "").reason == reason


def test_specific_status_outranks_suggestive_wording() -> None:
    verdict = classify_failure("data", "554", "5.7.7", "Email policy violation detected")
    assert verdict == Verdict(Reason.SECURITY_ERROR, BounceType.SOFT)


# --- Wording overrides generic or misleading codes ----------------------------------------


def test_mailbox_full_text_overrides_generic_5_0_0() -> None:
    verdict = classify_failure("", "550", "5.0.0", "550 <neko@example.jp>... Mailbox Full")
    assert verdict == Verdict(Reason.MAILBOX_FULL, BounceType.SOFT)


def test_over_quota_text_overrides_misleading_5_1_1() -> None:
    text = "552 sorry, mailbox neko@example.org is over quota temporarily (#5.1.1)"
    assert classify_failure("", "552", "5.1.1", text) == Verdict(
        Reason.MAILBOX_FULL, BounceType.SOFT
    )


def test_too_many_recipients_this_hour_overrides_5_1_1() -> None:
    text = "550 5.1.1 <neko@example.com> - 192.0.2.1 has sent to too many recipients this hour"
    assert classify_failure("rcpt", "550", "5.1.1", text) == Verdict(
        Reason.RATE_LIMITED, BounceType.SOFT
    )


@pytest.mark.parametrize(
    "text",
    [
        "Email rejected per DMARC policy for example.org",
        "Unauthenticated email from example.jp is not accepted due to domain's DMARC policy",
        "Access denied, sending domain example.org does not pass DMARC verification",
        "SPF check failed for 192.0.2.2",
        "No valid DKIM signature found",
    ],
)
def test_spf_dkim_dmarc_failure_text_is_authfailure(text: str) -> None:
    assert classify_failure("data", "550", "5.7.1", text) == Verdict(
        Reason.AUTH_FAILURE, BounceType.SOFT
    )


@pytest.mark.parametrize(
    "text",
    [
        "Client host [192.0.2.1] blocked using zen.spamhaus.org",
        "550 5.7.1 IP address blacklisted by recipient",
        "Your IP is listed at an RBL",
        "Access denied, banned sending IP [192.0.2.1]",
    ],
)
def test_block_list_text_is_blocked(text: str) -> None:
    assert classify_failure("rcpt", "554", "5.7.1", text) == Verdict(
        Reason.BLOCKED, BounceType.SOFT
    )


@pytest.mark.parametrize(
    "text",
    [
        "Fix reverse DNS for 192.0.2.1",
        "No PTR Record found.",
        "The IP address sending this message does not have a PTR record setup",
        "Client host rejected: cannot find your hostname",
    ],
)
def test_reverse_dns_text_is_requireptr(text: str) -> None:
    assert classify_failure("", "550", "5.7.1", text) == Verdict(
        Reason.REQUIRE_PTR, BounceType.SOFT
    )


@pytest.mark.parametrize(
    "text",
    [
        "Message content rejected, UBE, id=12345",
        "Remote server returned message detected as spam",
        "Our system has detected that this message is likely unsolicited mail.",
    ],
)
def test_spam_content_text_is_spamdetected(text: str) -> None:
    assert classify_failure("data", "550", "5.7.1", text) == Verdict(
        Reason.SPAM_DETECTED, BounceType.SOFT
    )


@pytest.mark.parametrize(
    "text",
    [
        "The email account that you tried to reach is disabled.",
        "This account has been disabled or discontinued",
        "Mailbox disabled, not accepting messages",
        "account is locked",
    ],
)
def test_disabled_account_text_is_suspend(text: str) -> None:
    assert classify_failure("rcpt", "550", "5.2.1", text) == Verdict(
        Reason.SUSPEND, BounceType.SOFT
    )


def test_policy_wording_overrides_an_auth_code_reused_for_policy() -> None:
    text = "554 5.7.9 Message not accepted for policy reasons."
    assert classify_failure("data", "554", "5.7.9", text) == Verdict(
        Reason.POLICY_VIOLATION, BounceType.SOFT
    )


def test_relay_refusal_is_norelaying() -> None:
    text = "<neko@example.org>: Relay access denied"
    assert classify_failure("rcpt", "554", "5.7.1", text) == Verdict(
        Reason.NO_RELAYING, BounceType.SOFT
    )


def test_expiry_text_overrides_the_status_of_the_last_attempt() -> None:
    text = "554 4.4.7 Message expired: unable to deliver in 840 minutes.<421 4.4.2 timed out>"
    assert classify_failure("", "421", "4.4.2", text) == Verdict(Reason.EXPIRED, BounceType.SOFT)


def test_generic_4_4_7_yields_to_a_named_network_failure() -> None:
    text = "Deferred: Name server: example.jp.: host name lookup failure"
    assert classify_failure("", "", "4.4.7", text) == Verdict(Reason.NETWORK_ERROR, BounceType.SOFT)


def test_null_mx_text_is_notaccept_and_hard() -> None:
    text = "The domain example.org doesn't receive email according to the administrator: Null MX"
    assert classify_failure("", "550", "5.0.0", text) == Verdict(Reason.NOT_ACCEPT, BounceType.HARD)


def test_refusing_mail_from_the_client_is_not_notaccept() -> None:
    text = "We do not accept mail from your network"
    assert classify_failure("", "554", "", text).reason is not Reason.NOT_ACCEPT
    assert classify_failure("connect", "554", "", text) == Verdict(Reason.BLOCKED, BounceType.SOFT)


def test_sender_rejection_text_is_rejected_even_under_5_1_1() -> None:
    text = "<x@example.net>: Sender address rejected: User unknown in local recipient table"
    assert classify_failure("", "550", "5.1.1", text) == Verdict(Reason.REJECTED, BounceType.SOFT)


def test_first_row_wins_when_text_names_several_causes() -> None:
    text = "Mailbox full. Message too large."
    assert classify_failure("", "552", "", text).reason == "mailboxfull"


# --- "User unknown" and where it was said -------------------------------------------------


def test_user_unknown_at_rcpt_is_a_hard_userunknown() -> None:
    text = "550 <neko@example.jp>... User unknown"
    assert classify_failure("rcpt", "550", "", text) == Verdict(
        Reason.USER_UNKNOWN, BounceType.HARD
    )


def test_user_unknown_at_rcpt_outranks_a_mailbox_disabled_status() -> None:
    text = "550 5.2.1 <neko@example.jp>... User Unknown"
    assert classify_failure("rcpt", "550", "5.2.1", text) == Verdict(
        Reason.USER_UNKNOWN, BounceType.HARD
    )


def test_user_unknown_after_data_is_filtered() -> None:
    text = "550 Unknown user neko@example.jp"
    assert classify_failure("data", "550", "5.0.0", text) == Verdict(
        Reason.FILTERED, BounceType.SOFT
    )


def test_user_unknown_under_a_policy_status_outside_rcpt_is_filtered() -> None:
    text = "550 5.7.1 <neko@example.jp>: Recipient address rejected: User unknown"
    assert classify_failure("", "550", "5.7.1", text) == Verdict(Reason.FILTERED, BounceType.SOFT)


def test_explicit_no_such_account_after_data_stays_userunknown() -> None:
    text = "554 delivery error: dd This user doesn't have a example.com account"
    assert classify_failure("data", "554", "5.0.0", text) == Verdict(
        Reason.USER_UNKNOWN, BounceType.HARD
    )


def test_directory_verdict_without_reply_code_is_userunknown() -> None:
    text = "Sorry, no mailbox here by that name. (#5.1.1)"
    assert classify_failure("", "", "", text) == Verdict(Reason.USER_UNKNOWN, BounceType.HARD)


def test_stage_is_read_from_the_text_when_the_webhook_has_none() -> None:
    at_rcpt = "host mx.example.jp said: 550 User unknown (in reply to RCPT TO command)"
    after_data = "host mx.example.jp said: 550 User unknown (in reply to end of DATA command)"
    assert classify_failure("", "550", "", at_rcpt) == Verdict(Reason.USER_UNKNOWN, BounceType.HARD)
    assert classify_failure("", "550", "", after_data) == Verdict(Reason.FILTERED, BounceType.SOFT)


def test_temporary_user_unknown_is_not_a_hard_bounce() -> None:
    text = "Requested mail action not taken: mailbox unavailable"
    assert classify_failure("rcpt", "450", "", text) == Verdict(Reason.ON_HOLD, BounceType.SOFT)


def test_bare_5xx_at_rcpt_is_not_taken_for_an_unknown_user() -> None:
    assert classify_failure("rcpt", "550", "", "") == Verdict(Reason.UNDEFINED, BounceType.SOFT)


def test_recipient_address_rejected_with_another_reason_is_not_userunknown() -> None:
    text = "550 <neko@example.jp>: Recipient address rejected: Access denied"
    assert classify_failure("rcpt", "550", "", text) == Verdict(Reason.UNDEFINED, BounceType.SOFT)


# --- SMTP stage hints --------------------------------------------------------------------


@pytest.mark.parametrize(("state", "code"), [("connect", "554"), ("helo", "421"), ("helo", "501")])
def test_refusal_before_mail_from_without_other_evidence_is_blocked(state: str, code: str) -> None:
    assert classify_failure(state, code, "", "Access denied") == Verdict(
        Reason.BLOCKED, BounceType.SOFT
    )


def test_connection_failure_without_a_reply_is_not_blocked() -> None:
    verdict = classify_failure("connect", "", "", "connect to mx.example.jp: Connection timed out")
    assert verdict == Verdict(Reason.NETWORK_ERROR, BounceType.SOFT)


def test_refusal_at_mail_from_is_rejected() -> None:
    assert classify_failure("mail", "550", "5.7.1", "Access denied") == Verdict(
        Reason.REJECTED, BounceType.SOFT
    )


def test_address_problem_at_mail_from_is_the_senders() -> None:
    assert classify_failure("mail", "550", "5.1.1", "User unknown") == Verdict(
        Reason.REJECTED, BounceType.SOFT
    )


def test_failure_at_starttls_is_failedstarttls() -> None:
    assert classify_failure("starttls", "", "", "") == Verdict(
        Reason.FAILED_STARTTLS, BounceType.SOFT
    )


def test_failure_at_auth_is_securityerror() -> None:
    assert classify_failure("auth", "535", "", "") == Verdict(
        Reason.SECURITY_ERROR, BounceType.SOFT
    )


def test_stage_outside_the_smtp_dialogue_is_ignored() -> None:
    assert classify_failure("bounce", "554", "", "") == Verdict(Reason.UNDEFINED, BounceType.SOFT)


def test_temporary_host_unknown_is_a_network_error() -> None:
    text = "DNS Error: Domain name not found: example.invalid"
    assert classify_failure("", "", "4.0.0", text) == Verdict(Reason.NETWORK_ERROR, BounceType.SOFT)
    assert classify_failure("", "550", "", text) == Verdict(Reason.HOST_UNKNOWN, BounceType.HARD)


# --- Text normalisation and size ---------------------------------------------------------


@pytest.mark.parametrize("text", ["MAILBOX FULL", "MaIlBoX fUlL", "mailbox\n\t  full"])
def test_wording_is_matched_in_any_case_and_spacing(text: str) -> None:
    assert classify_failure("", "", "", text) == Verdict(Reason.MAILBOX_FULL, BounceType.SOFT)


def test_phrases_only_match_whole_words() -> None:
    assert classify_failure("", "550", "", "see the tube for details").reason == "undefined"
    assert classify_failure("", "550", "", "content rejected, UBE").reason == "spamdetected"


def test_curly_apostrophes_match_straight_ones() -> None:
    text = "This user doesn\u2019t have a example.com account"
    assert classify_failure("", "", "", text) == Verdict(Reason.USER_UNKNOWN, BounceType.HARD)


def test_very_long_description_is_fast_and_correct() -> None:
    filler = "Received: from relay.example.net (192.0.2.1) by mx.example.jp; "
    text = filler * (100_000 // len(filler)) + "550 5.2.2 <neko@example.jp>... Mailbox Full"
    assert len(text) > 100_000
    started = time.perf_counter()
    verdict = classify_failure("rcpt", "550", "5.1.1", text)
    elapsed = time.perf_counter() - started
    assert verdict == Verdict(Reason.MAILBOX_FULL, BounceType.SOFT)
    assert elapsed < 0.25


def test_repetitive_description_does_not_backtrack() -> None:
    text = "account " * 15_000 + "does not exist"
    started = time.perf_counter()
    verdict = classify_failure("rcpt", "550", "", text)
    elapsed = time.perf_counter() - started
    assert verdict == Verdict(Reason.USER_UNKNOWN, BounceType.HARD)
    assert elapsed < 0.25


# --- The hard/soft rule ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "code", "extended", "bounce_type"),
    [
        ("userunknown", "550", "5.1.1", "hard"),
        ("userunknown", "450", "", "hard"),
        ("hostunknown", "", "", "hard"),
        ("hasmoved", "551", "5.1.6", "hard"),
        ("notaccept", "550", "", "hard"),
        ("notaccept", "", "5.1.10", "hard"),
        ("notaccept", "", "", "hard"),
        ("notaccept", "450", "", "soft"),
        ("notaccept", "", "4.0.0", "soft"),
        ("notaccept", "450", "5.0.0", "soft"),
        ("mailboxfull", "552", "5.2.2", "soft"),
        ("filtered", "550", "5.2.1", "soft"),
        ("undefined", "", "", "soft"),
    ],
)
def test_bounce_type_follows_sisimais_rule(
    reason: str, code: str, extended: str, bounce_type: str
) -> None:
    assert bounce_type_of(Reason(reason), code, extended) == bounce_type


@pytest.mark.parametrize("reason", sorted(set(Reason) - HARD_REASONS - {Reason.NOT_ACCEPT}))
def test_every_other_reason_is_soft_even_with_a_permanent_code(reason: Reason) -> None:
    assert bounce_type_of(reason, "550", "5.0.0") == "soft"


# --- Rules proposed from reading raw bounces ---------------------------------------------


def test_local_delivery_program_failure_is_mailererror_even_under_5_1_1() -> None:
    text = "x-unix; /usr/bin/maildrop: exited with status 67"
    assert classify_failure("", "", "5.1.1", text) == Verdict(Reason.MAILER_ERROR, BounceType.SOFT)


def test_mailbox_full_wording_outranks_the_local_delivery_program() -> None:
    text = "x-unix; maildrop: maildir over quota."
    assert classify_failure("", "", "5.2.2", text) == Verdict(Reason.MAILBOX_FULL, BounceType.SOFT)


def test_google_groups_spam_refusal_is_spamdetected_in_any_language() -> None:
    text = (
        "Ihre E-Mail an die Gruppe wurde abgelehnt. Weitere Informationen: "
        "https://support.google.com/a/answer/168383"
    )
    assert classify_failure("", "550", "5.7.0", text) == Verdict(
        Reason.SPAM_DETECTED, BounceType.SOFT
    )


def test_delivery_aborted_after_a_time_is_expired() -> None:
    text = "Delivery to this recipient was aborted after 5.0 days of retrying."
    assert classify_failure("", "", "4.4.7", text) == Verdict(Reason.EXPIRED, BounceType.SOFT)


# --- The order of evidence ----------------------------------------------------------------

#: For each rung of the ladder, a failure that also carries the evidence of the rung below it:
#: (state, code, status, text, the reason of the upper rung).
OUTRANKS = [
    pytest.param("", "250", "", "Mailbox full", Reason.DELIVERED, id="success>decisive"),
    pytest.param("", "550", "5.1.1", "Mailbox full", Reason.MAILBOX_FULL, id="decisive>specific"),
    pytest.param("helo", "550", "5.7.26", "", Reason.AUTH_FAILURE, id="specific>client"),
    pytest.param("connect", "554", "", "Policy violation", Reason.BLOCKED, id="client>suggestive"),
    pytest.param(
        "mail", "550", "", "Policy violation", Reason.POLICY_VIOLATION, id="suggestive>sender"
    ),
    pytest.param("mail", "550", "5.7.1", "", Reason.REJECTED, id="sender>generic"),
    pytest.param("", "421", "4.7.0", "", Reason.SECURITY_ERROR, id="generic>reply"),
    pytest.param("", "452", "", "", Reason.SYSTEM_FULL, id="reply>nothing"),
]


@pytest.mark.parametrize(("state", "code", "extended", "text", "reason"), OUTRANKS)
def test_each_kind_of_evidence_outranks_the_next(
    state: str, code: str, extended: str, text: str, reason: Reason
) -> None:
    assert classify_failure(state, code, extended, text).reason is reason


def test_a_provider_code_outranks_wording_and_status_but_not_success() -> None:
    # Exchange Online's Directory-Based Edge Blocking: the recipient is not in the tenant.
    text = "550 5.4.1 Recipient address rejected: Access denied. AS(201806281)"
    microsoft = classify_failure("rcpt", "550", "5.4.1", text, domain="outlook.com")
    assert microsoft == Verdict(Reason.USER_UNKNOWN, BounceType.HARD)
    # Yahoo's TSS04 names the sender's reputation, whatever the temporary wording around it.
    yahoo = "421 4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred; try again later"
    assert classify_failure("", "421", "4.7.0", yahoo, domain="yahoo.com").reason is (
        Reason.BAD_REPUTATION
    )
    assert classify_failure("", "250", "", text, domain="outlook.com").reason is (Reason.DELIVERED)


def test_a_scoped_provider_code_needs_the_provider() -> None:
    # "TS01" alone could be anyone's; it is Yahoo's when the recipient or the host is.
    text = "421 4.7.0 [TS01] Messages from 192.0.2.1 temporarily deferred"
    assert classify_failure("", "421", "4.7.0", text, domain="example.org").reason is not (
        Reason.BAD_REPUTATION
    )
    for scope in ({"domain": "yahoo.com"}, {"host": "mta7.am0.yahoodns.net"}):
        verdict = classify_failure("", "421", "4.7.0", text, **scope)
        assert verdict.reason is Reason.BAD_REPUTATION, scope


def test_the_precedence_table_lists_every_kind_of_evidence_once_in_order() -> None:
    assert [rank.evidence for rank in PRECEDENCE] == [
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
    ]
    assert all(rank.why and rank.example for rank in PRECEDENCE)
    assert [adjustment.correction for adjustment in CORRECTIONS] == list(Correction)


def test_the_precedence_table_renders_for_the_readme() -> None:
    table = markdown()
    for number, rank in enumerate(PRECEDENCE, start=1):
        assert f"| {number} | {rank.evidence} | {rank.example} | {rank.why} |" in table
    for adjustment in CORRECTIONS:
        assert f"| {adjustment.correction} | {adjustment.when} |" in table


def test_a_multi_line_reply_is_read_as_one_sentence() -> None:
    text = "550-5.2.2 The user's mailbox is\n550 5.2.2 full"
    assert classify_failure("rcpt", "550", "", text) == Verdict(
        Reason.MAILBOX_FULL, BounceType.SOFT
    )


def test_the_mail_package_imports_nothing_from_the_web_side() -> None:
    package = Path(exporter.mail.__file__).parent
    for module in package.rglob("*.py"):
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            for name in names:
                top = name.split(".")[0]
                assert top not in {"aiohttp", "prometheus_client", "structlog"}, (module, name)
                if top == "exporter":
                    assert name.startswith("exporter.mail"), (module, name)
