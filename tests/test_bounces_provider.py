"""A delivery report's Remote-MTA tells the classifier whose documented code it reads."""

from __future__ import annotations

from exporter.mail import BounceType, Reason
from exporter.mail.bounces import read_bounce


def _report(remote_mta: str) -> bytes:
    return (
        "From: MAILER-DAEMON@mta.example.net\r\n"
        "To: sender@example.com\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n'
        "\r\n"
        "--b\r\n"
        "Content-Type: text/plain\r\n"
        "\r\n"
        "Your message could not be delivered.\r\n"
        "--b\r\n"
        "Content-Type: message/delivery-status\r\n"
        "\r\n"
        "Reporting-MTA: dns; mta.example.net\r\n"
        "\r\n"
        "Final-Recipient: rfc822; jane@contoso.example\r\n"
        "Action: failed\r\n"
        "Status: 5.0.0\r\n"
        f"{remote_mta}"
        "Diagnostic-Code: smtp; 550 5.7.0 [TS01] Messages from 192.0.2.1 deferred\r\n"
        "\r\n"
        "--b--\r\n"
    ).encode()


def test_a_scoped_provider_code_counts_when_the_remote_mta_is_the_providers() -> None:
    (fact,) = read_bounce(_report("Remote-MTA: dns; mta6.am0.yahoodns.net\r\n")).facts
    assert (fact.reason, fact.bounce_type) == (Reason.BAD_REPUTATION, BounceType.SOFT)


def test_without_the_remote_mta_the_same_code_is_nobodys() -> None:
    (fact,) = read_bounce(_report("")).facts
    assert fact.reason is not Reason.BAD_REPUTATION
    (other,) = read_bounce(_report("Remote-MTA: dns; mx.contoso.example\r\n")).facts
    assert other.reason is fact.reason
