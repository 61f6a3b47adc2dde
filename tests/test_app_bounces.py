"""The bounces and abuses webhooks end to end: raw messages in, reasons and complaints out."""

from __future__ import annotations

import pytest
import structlog

from exporter.settings import Settings
from tests.conftest import Exporter

DSN = (
    "From: MAILER-DAEMON@mx.example.net\r\n"
    "To: bounces+abc@smtpeter.example\r\n"
    "Subject: Undelivered Mail Returned to Sender\r\n"
    "MIME-Version: 1.0\r\n"
    'Content-Type: multipart/report; report-type=delivery-status; boundary="B1"\r\n'
    "\r\n"
    "--B1\r\n"
    "Content-Type: text/plain\r\n"
    "\r\n"
    "I'm sorry to have to inform you that your message could not be delivered.\r\n"
    "--B1\r\n"
    "Content-Type: message/delivery-status\r\n"
    "\r\n"
    "Reporting-MTA: dns; mx.example.net\r\n"
    "\r\n"
    "Final-Recipient: rfc822; someone@gmail.com\r\n"
    "Action: failed\r\n"
    "Status: 5.1.1\r\n"
    "Diagnostic-Code: smtp; 550 5.1.1 The email account that you tried to reach does not "
    "exist.\r\n"
    "--B1--\r\n"
)
ARF = (
    "From: feedback@yahoo.example\r\n"
    "Subject: complaint\r\n"
    "MIME-Version: 1.0\r\n"
    'Content-Type: multipart/report; report-type=feedback-report; boundary="F1"\r\n'
    "\r\n"
    "--F1\r\n"
    "Content-Type: text/plain\r\n"
    "\r\n"
    "This is an email abuse report.\r\n"
    "--F1\r\n"
    "Content-Type: message/feedback-report\r\n"
    "\r\n"
    "Feedback-Type: abuse\r\n"
    "User-Agent: ExampleFBL/1.0\r\n"
    "Version: 1\r\n"
    "Original-Rcpt-To: <reader@yahoo.com>\r\n"
    "--F1\r\n"
    "Content-Type: text/rfc822-headers\r\n"
    "\r\n"
    "From: news@sender.example\r\n"
    "To: reader@yahoo.com\r\n"
    "Subject: Our March news\r\n"
    "--F1--\r\n"
)


@pytest.fixture
def settings() -> Settings:
    return Settings(max_request_bytes=200_000)


def bounces(exporter: Exporter, kind: str, reason: str, bounce_type: str, where: str) -> float:
    """``where`` is ``domain/provider``."""
    domain, provider = where.split("/")
    labels = {"kind": kind, "reason": reason, "bounce_type": bounce_type}
    recipient = {"domain": domain, "provider": provider}
    return exporter.value("smtpeter_bounces_total", **labels, **recipient) or 0.0


async def test_form_posted_dsn_is_read_counted_and_logged_per_recipient(exporter: Exporter) -> None:
    fields = {
        "id": "b-1",
        "type": "bounce",
        "time": "1709294400",
        "recipient": "someone@gmail.com",
        "envelope": "bounces+abc@smtpeter.example",
        "mime": DSN,
        "tags": "march",
    }
    with structlog.testing.capture_logs() as logs:
        response = await exporter.client.post("/webhooks/bounces", data=fields)
    assert response.status == 200
    assert bounces(exporter, "dsn", "userunknown", "hard", "gmail.com/google") == 1
    [line] = [entry for entry in logs if entry["event"] == "bounce"]
    assert line["message_kind"] == "dsn"
    assert line["facts"] == [
        {
            "recipient": "someone@gmail.com",
            "status": "5.1.1",
            "code": "550",
            "state": "",
            "description": line["facts"][0]["description"],
            "reason": "userunknown",
            "bounce_type": "hard",
        }
    ]
    assert "does not exist" in line["facts"][0]["description"]


async def test_old_bounce_field_set_posted_as_json_is_accepted(exporter: Exporter) -> None:
    fields = {
        "id": "b-2",
        "recipient": "someone@gmail.com",
        "mailfrom": "",
        "rcptto": "bounces+abc@smtpeter.example",
        "mime": DSN,
    }
    response = await exporter.client.post("/webhooks/bounces", json=fields)
    assert response.status == 200
    assert bounces(exporter, "dsn", "userunknown", "hard", "gmail.com/google") == 1


@pytest.mark.parametrize(
    "mime",
    [
        "From: a@b.example\r\nSubject: Our newsletter\r\n\r\nHello, here is our news.\r\n",
        "\x00\x01\x02 not a message at all \xff",
        "Content-Type: multipart/report; boundary=\r\n\r\n--\r\n--\r\n",
    ],
    ids=["newsletter", "binary", "broken-multipart"],
)
async def test_unrecognized_message_is_accepted_counted_and_excerpted(
    exporter: Exporter, mime: str
) -> None:
    with structlog.testing.capture_logs() as logs:
        response = await exporter.client.post(
            "/webhooks/bounces", data={"recipient": "someone@example.com", "mime": mime}
        )
    assert response.status == 200
    assert bounces(exporter, "unrecognized", "undefined", "soft", "example.com/other") == 1
    [line] = [entry for entry in logs if entry["event"] == "bounce"]
    assert line["message_kind"] == "unrecognized"
    assert len(line["excerpt"]) <= 300


async def test_bounce_without_mime_is_a_400(exporter: Exporter) -> None:
    response = await exporter.client.post(
        "/webhooks/bounces", data={"recipient": "someone@gmail.com"}
    )
    assert response.status == 400
    assert await response.json() == {
        "error": "mime is required: the whole received message",
        "field": "mime",
    }


async def test_oversized_bounce_is_a_413(exporter: Exporter) -> None:
    response = await exporter.client.post(
        "/webhooks/bounces",
        data={"recipient": "someone@gmail.com", "mime": DSN + "x" * 300_000},
    )
    assert response.status == 413
    assert (
        exporter.value("smtpeter_webhook_requests_total", kind="bounce", outcome="too_large") == 1
    )


@pytest.mark.parametrize("encoding", ["data", "json"])
async def test_arf_complaint_counts_feedback_type_and_recipient_domain(
    exporter: Exporter, encoding: str
) -> None:
    fields = {"id": "a-1", "type": "abuse", "emailfrom": "news@sender.example", "mime": ARF}
    with structlog.testing.capture_logs() as logs:
        if encoding == "json":
            response = await exporter.client.post("/webhooks/abuses", json=fields)
        else:
            response = await exporter.client.post("/webhooks/abuses", data=fields)
    assert response.status == 200
    yahoo = {"domain": "yahoo.com", "provider": "yahoo"}
    assert exporter.value("smtpeter_complaints_total", feedback_type="abuse", **yahoo) == 1
    [line] = [entry for entry in logs if entry["event"] == "abuse"]
    assert (line["feedback_type"], line["message_kind"]) == ("abuse", "feedback")
    assert line["facts"][0]["recipient"] == "reader@yahoo.com"
    assert "recipient" not in line


async def test_complaint_naming_no_recipient_counts_under_unknown_domain(
    exporter: Exporter,
) -> None:
    anonymous = ARF.replace("Original-Rcpt-To: <reader@yahoo.com>\r\n", "").replace(
        "To: reader@yahoo.com\r\n", ""
    )
    response = await exporter.client.post("/webhooks/abuses", data={"mime": anonymous})
    assert response.status == 200
    unknown = {"domain": "unknown", "provider": "other"}
    assert exporter.value("smtpeter_complaints_total", feedback_type="abuse", **unknown) == 1


async def test_dispatch_path_takes_bounces_and_abuses(exporter: Exporter) -> None:
    bounce = {"type": "bounce", "recipient": "someone@gmail.com", "mime": DSN}
    abuse = {"type": "abuse", "mime": ARF}
    assert (await exporter.client.post("/webhooks", data=bounce)).status == 200
    assert (await exporter.client.post("/webhooks", data=abuse)).status == 200
    assert exporter.value("smtpeter_webhook_requests_total", kind="bounce", outcome="accepted") == 1
    assert exporter.value("smtpeter_webhook_requests_total", kind="abuse", outcome="accepted") == 1


async def test_failure_log_and_reason_metric_carry_the_verdict(exporter: Exporter) -> None:
    fields = {
        "recipient": "someone@outlook.com",
        "state": "rcpt to",
        "code": "452",
        "extended": "4.2.2",
        "description": "Mailbox full",
    }
    with structlog.testing.capture_logs() as logs:
        assert (await exporter.client.post("/webhooks/failures", data=fields)).status == 200
    [line] = [entry for entry in logs if entry["event"] == "failure"]
    assert (line["reason"], line["bounce_type"]) == ("mailboxfull", "soft")
    outlook = {"domain": "outlook.com", "provider": "microsoft"}
    labels = {"reason": "mailboxfull", "bounce_type": "soft", **outlook}
    assert exporter.value("smtpeter_failure_reasons_total", **labels) == 1
    hard = {"reason": "userunknown", "bounce_type": "hard", **outlook}
    assert exporter.value("smtpeter_failure_reasons_total", **hard) == 0


async def test_a_bug_in_the_bounce_reader_still_records_the_event_and_logs_it(
    exporter: Exporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(raw: bytes) -> object:
        raise IndexError("reader bug")

    monkeypatch.setattr("exporter.diagnosis.read_bounce", broken)
    with structlog.testing.capture_logs() as logs:
        response = await exporter.client.post(
            "/webhooks/bounces", data={"recipient": "someone@gmail.com", "mime": DSN}
        )
    assert response.status == 200
    assert bounces(exporter, "unrecognized", "undefined", "soft", "gmail.com/google") == 1
    assert [entry["event"] for entry in logs if entry["log_level"] == "error"] == [
        "bounce_reader_failed"
    ]
