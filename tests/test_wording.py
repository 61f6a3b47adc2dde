"""Which cause wins when a diagnostic text names two: the order of the wording tables."""

from __future__ import annotations

import pytest

from exporter.mail.classifier import classify_failure
from exporter.mail.vocabulary import Reason

# --- A network failure named in an expiry ---------------------------------------------------

RETRY_TIMEOUT = "retry timeout exceeded: connect to mx.example.net[192.0.2.1]:25: {}"


@pytest.mark.parametrize(
    "failure",
    [
        "Host not found, try again",
        "Name server: example.net.: host name lookup failure",
        "No route to host",
        "Network is unreachable",
        "Too many hops 26 (25 max)",
        "Hop count exceeded - possible mail loop",
    ],
)
def test_an_expiry_that_names_why_no_host_was_reached_is_a_network_error(failure: str) -> None:
    text = RETRY_TIMEOUT.format(failure)
    assert classify_failure("", "", "4.4.7", text).reason is Reason.NETWORK_ERROR


def test_an_expired_message_with_no_route_to_host_is_a_network_error() -> None:
    text = "554 4.4.7 Message expired: unable to deliver in 840 minutes.<No route to host>"
    assert classify_failure("", "554", "4.4.7", text).reason is Reason.NETWORK_ERROR


@pytest.mark.parametrize(
    "failure",
    ["Connection timed out", "Connection refused", "Connection reset by peer"],
)
def test_an_expiry_after_connections_failed_stays_expired(failure: str) -> None:
    text = RETRY_TIMEOUT.format(failure)
    assert classify_failure("", "", "4.4.7", text).reason is Reason.EXPIRED
    assert classify_failure("", "", "", text).reason is Reason.EXPIRED
    queued = f"This message has been in the queue too long. connect to mx.example.net: {failure}"
    assert classify_failure("", "", "", queued).reason is Reason.EXPIRED


@pytest.mark.parametrize(
    "text",
    [
        "connect to mx.example.net[192.0.2.1]:25: Connection timed out",
        "connect to mx.example.net[192.0.2.1]:25: Connection refused",
        "lost connection with mx.example.net[192.0.2.1] while receiving the initial greeting",
        "conversation with mx.example.net[192.0.2.1] timed out while sending end of data",
    ],
)
def test_a_failed_connection_alone_is_a_network_error(text: str) -> None:
    assert classify_failure("", "", "", text).reason is Reason.NETWORK_ERROR


def test_a_failed_connection_yields_to_a_status_that_names_its_cause() -> None:
    text = "connect to mx.example.net[192.0.2.1]:25: Connection refused"
    assert classify_failure("", "550", "5.1.2", text).reason is Reason.HOST_UNKNOWN


@pytest.mark.parametrize(
    "text",
    [
        "retry timeout exceeded",
        "550 4.4.7 QUEUE.Expired; message expired",
        "Envelope expired",
        "Could not deliver for the last 432000 seconds. Giving up.",
    ],
)
def test_an_expiry_that_names_no_other_cause_stays_expired(text: str) -> None:
    assert classify_failure("", "", "", text).reason is Reason.EXPIRED
    assert classify_failure("", "", "4.4.7", text).reason is Reason.EXPIRED


# --- A rate limit and the reputation behind it ----------------------------------------------

OUTLOOK_REPUTATION = (
    "451 4.7.650 The mail server [192.0.2.1] has been temporarily rate limited due to IP "
    "reputation."
)
GMAIL_REPUTATION = (
    "421-4.7.0 Our system has detected that this message is suspicious due to the very low "
    "reputation of the sending IP address. To protect our users from spam, mail sent from "
    "your IP address has been temporarily rate limited."
)
GMAIL_RATE = (
    "421-4.7.28 Our system has detected an unusual rate of unsolicited mail originating from "
    "your IP address. To protect our users from spam, mail sent from your IP address has been "
    "temporarily rate limited."
)


@pytest.mark.parametrize("text", [OUTLOOK_REPUTATION, GMAIL_REPUTATION])
def test_a_rate_limit_imposed_for_the_senders_reputation_is_bad_reputation(text: str) -> None:
    assert classify_failure("", "421", "4.7.0", text).reason is Reason.BAD_REPUTATION


@pytest.mark.parametrize(
    "text",
    [
        GMAIL_RATE,
        "550 5.4.5 Daily user sending limit exceeded.",
        "421 4.7.0 mx.example.net Error: too many connections from 192.0.2.1",
    ],
)
def test_a_plain_rate_limit_stays_rate_limited(text: str) -> None:
    assert classify_failure("", "421", "4.7.0", text).reason is Reason.RATE_LIMITED


# --- SMTP AUTH wording and DMARC's 5.7.26 ---------------------------------------------------


def test_smtp_auth_wording_yields_to_the_unauthenticated_sender_status() -> None:
    gmail = (
        "This mail has been blocked because the sender is unauthenticated. Gmail requires all "
        "senders to authenticate with either SPF or DKIM."
    )
    assert classify_failure("", "550", "5.7.26", gmail).reason is Reason.AUTH_FAILURE
    text = "Authentication required"
    assert classify_failure("", "550", "5.7.26", text).reason is Reason.AUTH_FAILURE


def test_smtp_auth_wording_still_names_a_security_error() -> None:
    text = "Authentication required"
    assert classify_failure("auth", "530", "5.7.0", text).reason is Reason.SECURITY_ERROR
    assert classify_failure("", "530", "5.7.0", text).reason is Reason.SECURITY_ERROR


# --- A DNS lookup that failed for now -------------------------------------------------------

TRY_AGAIN = (
    "Host or domain name not found. Name service error for name=example.com type=MX: "
    "Host not found, try again"
)
NOT_FOUND = (
    "Host or domain name not found. Name service error for name=example.com type=A: Host not found"
)


@pytest.mark.parametrize(
    ("code", "extended"), [("", ""), ("550", "5.4.4"), ("550", "5.1.2"), ("450", "4.4.3")]
)
def test_postfix_try_again_is_a_network_error_whatever_the_code(code: str, extended: str) -> None:
    assert classify_failure("", code, extended, TRY_AGAIN).reason is Reason.NETWORK_ERROR


@pytest.mark.parametrize(
    "text",
    [
        NOT_FOUND,
        "connect to mx.example.com: Name or service not known",
        "DNS error: NXDOMAIN for example.com",
    ],
)
def test_a_name_that_does_not_exist_stays_an_unknown_host(text: str) -> None:
    assert classify_failure("", "", "", text).reason is Reason.HOST_UNKNOWN
    assert classify_failure("", "550", "5.4.4", text).reason is Reason.HOST_UNKNOWN


# --- General wording: RFC status titles and reply texts, MTAs' fixed messages ----------------


@pytest.mark.parametrize(
    ("state", "code", "text", "reason"),
    [
        # RFC 3463 status titles that servers write as their text
        (
            "rcpt",
            "550",
            "550 Bad destination mailbox address: no.one@example.org",
            Reason.USER_UNKNOWN,
        ),
        ("rcpt", "550", "Destination mailbox address ambiguous", Reason.USER_UNKNOWN),
        ("", "", "Bad destination system address (example.invalid)", Reason.HOST_UNKNOWN),
        ("", "550", "Unable to route to example.invalid", Reason.HOST_UNKNOWN),
        ("", "", "No answer from host mx.example.org", Reason.EXPIRED),
        ("", "", "Bad connection to mx.example.org", Reason.NETWORK_ERROR),
        ("", "", "Mail system congestion, try later", Reason.SYSTEM_FULL),
        ("", "", "Routing server failure", Reason.SYSTEM_ERROR),
        ("", "", "Mailing list expansion problem for list@example.org", Reason.SYSTEM_ERROR),
        ("", "", "System not capable of selected features", Reason.SYSTEM_ERROR),
        ("", "", "System incorrectly configured", Reason.SYSTEM_ERROR),
        ("", "", "Media not supported", Reason.CONTENT_ERROR),
        ("", "", "Conversion required and prohibited", Reason.CONTENT_ERROR),
        ("", "", "Conversion required but not supported", Reason.CONTENT_ERROR),
        ("", "", "Conversion failed", Reason.CONTENT_ERROR),
        ("", "", "Invalid command arguments", Reason.SYNTAX_ERROR),
        ("", "", "Wrong protocol version", Reason.SYNTAX_ERROR),
        ("", "", "Security features not supported", Reason.SECURITY_ERROR),
        ("", "", "Cryptographic algorithm not supported", Reason.SECURITY_ERROR),
        ("", "", "Message integrity failure", Reason.SECURITY_ERROR),
        ("", "554", "System not accepting network messages", Reason.NOT_ACCEPT),
        ("", "550", "Mailing list expansion prohibited for this sender", Reason.REJECTED),
        # RFC 5321 reply text
        (
            "rcpt",
            "553",
            "Requested action not taken: mailbox name not allowed",
            Reason.USER_UNKNOWN,
        ),
        # MTAs' and filters' fixed messages
        (
            "",
            "",
            "Sorry, I couldn't find any host named example.invalid. (#5.1.2)",
            Reason.HOST_UNKNOWN,
        ),
        ("", "", "all relevant MX records point to non-existent hosts", Reason.HOST_UNKNOWN),
        (
            "",
            "",
            "Sorry, I wasn't able to establish an SMTP connection. (#4.4.1)",
            Reason.NETWORK_ERROR,
        ),
        ("", "", "mail for example.org loops back to myself", Reason.NETWORK_ERROR),
        ("", "", "Cannot send message for 5 days", Reason.EXPIRED),
        ("", "554", "554 5.4.7 [internal] exceeded max time without delivery", Reason.EXPIRED),
        (
            "rcpt",
            "504",
            "504 5.5.2 <box>: Helo command rejected: need fully-qualified hostname",
            Reason.BLOCKED,
        ),
        ("", "550", "550 Denied by policy", Reason.POLICY_VIOLATION),
        ("", "550", "Message rejected due to content restrictions", Reason.POLICY_VIOLATION),
        ("", "554", "554 5.1.0 Sender denied", Reason.REJECTED),
        ("", "553", "553 Envelope sender rejected", Reason.REJECTED),
        ("", "550", "550 5.7.1 SPF unauthorized mail is prohibited", Reason.AUTH_FAILURE),
    ],
)
def test_general_sourced_wording_names_its_reason(
    state: str, code: str, text: str, reason: Reason
) -> None:
    assert classify_failure(state, code, "", text).reason is reason


def test_a_helo_name_refused_at_rcpt_is_a_block_not_an_unknown_host() -> None:
    text = "450 4.7.1 <box.example>: Helo command rejected: Host not found"
    assert classify_failure("rcpt", "450", "4.7.1", text).reason is Reason.BLOCKED


def test_unable_to_route_for_now_is_a_network_error() -> None:
    assert classify_failure("", "451", "", "Unable to route").reason is Reason.NETWORK_ERROR


def test_a_mailbox_name_refused_at_mail_from_is_the_senders() -> None:
    text = "553 Requested action not taken: mailbox name not allowed"
    assert classify_failure("mail", "553", "", text).reason is Reason.REJECTED


def test_qmail_connection_failure_in_a_final_report_is_expired() -> None:
    text = (
        "Sorry, I wasn't able to establish an SMTP connection. (#4.4.1) "
        "I'm not going to try again; this message has been in the queue too long."
    )
    assert classify_failure("", "", "", text).reason is Reason.EXPIRED


# --- General wording restored with its source ------------------------------------------------


@pytest.mark.parametrize(
    ("state", "code", "text", "reason"),
    [
        ("mail", "450", "450 4.7.1 Error: too much mail from 192.0.2.7", Reason.RATE_LIMITED),
        ("data", "454", "454 Throttling failure", Reason.RATE_LIMITED),
        ("", "", "Maximum sending rate exceeded.", Reason.RATE_LIMITED),
        (
            "data",
            "552",
            "box: message would exceed maximum mailbox size for this recipient",
            Reason.MAILBOX_FULL,
        ),
        (
            "rcpt",
            "550",
            "550 5.7.23 Message rejected due to: SPF fail - not authorized",
            Reason.AUTH_FAILURE,
        ),
        ("", "550", "rejected: SPF softfail for the sending host", Reason.AUTH_FAILURE),
        ("", "550", "Authentication-Results: mx.example.org; dmarc=fail", Reason.AUTH_FAILURE),
        ("", "", "Cannot start TLS: handshake failure", Reason.FAILED_STARTTLS),
        ("", "454", "454 4.7.0 TLS not available due to local problem", Reason.FAILED_STARTTLS),
        (
            "",
            "",
            "TLS session: (SSL_connect): error: certificate verify failed",
            Reason.FAILED_STARTTLS,
        ),
        (
            "rcpt",
            "553",
            "553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)",
            Reason.NO_RELAYING,
        ),
        (
            "",
            "554",
            "554 Blocked - see https://www.spamcop.net/bl.shtml?192.0.2.7",
            Reason.BLOCKED,
        ),
        (
            "",
            "550",
            "550 Blocked - see http://cbl.abuseat.org/lookup.cgi?ip=192.0.2.7",
            Reason.BLOCKED,
        ),
        (
            "",
            "554",
            "554 Service unavailable; Client host [192.0.2.7] blocked using Barracuda Reputation",
            Reason.BLOCKED,
        ),
        ("data", "554", "554 5.7.1 Spam message rejected", Reason.SPAM_DETECTED),
        (
            "",
            "550",
            (
                "You are not allowed to post to this mailing list, and your message has been "
                "automatically rejected."
            ),
            Reason.REJECTED,
        ),
        (
            "data",
            "554",
            "554 5.7.1 [CS01] Message rejected due to local policy.",
            Reason.POLICY_VIOLATION,
        ),
        ("", "", "Name server: mx.example.invalid: Unknown host", Reason.HOST_UNKNOWN),
        ("rcpt", "550", "550-Mailbox unknown. Either there is no mailbox", Reason.USER_UNKNOWN),
        (
            "rcpt",
            "550",
            "550 5.1.1 unknown or illegal alias: no.one@example.org",
            Reason.USER_UNKNOWN,
        ),
        (
            "",
            "",
            "User no.one (no.one@example.org) not listed in Domino Directory",
            Reason.USER_UNKNOWN,
        ),
        ("rcpt", "550", "550 Invalid Recipient", Reason.USER_UNKNOWN),
    ],
)
def test_restored_general_wording_names_its_reason(
    state: str, code: str, text: str, reason: Reason
) -> None:
    assert classify_failure(state, code, "", text).reason is reason
