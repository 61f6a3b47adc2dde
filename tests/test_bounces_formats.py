"""Notices in formats of their own: Zoho Mail, Amazon SES through Amazon SNS, IMail Server.

Every message is composed here after the format its writer documents (AWS) or writes (Zoho
Mail, IMail); none is copied from a collection of samples.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.mail import BounceType, Reason
from exporter.mail.bounces import read_bounce
from exporter.mail.bounces.notices import FAILURE_LABELS, RECIPIENT_LINES, Says


def message(headers: str, body: str) -> bytes:
    """A raw message from readable text: header lines, a blank line, the body."""
    return (headers.strip("\n") + "\n\n" + body.lstrip("\n")).encode("utf-8")


ZOHO_HEADERS = """\
From: Mail Delivery System <mailer-daemon@mx.zoho.example>
To: sender@example.org
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="ZOHO"
"""


def zoho(notice: str) -> bytes:
    return message(
        ZOHO_HEADERS,
        f"""\
--ZOHO
Content-Type: text/plain; charset=UTF-8
Content-Transfer-Encoding: quoted-printable

This message was created automatically by mail delivery software.
A message that you sent could not be delivered to one or more of its recip=
ients. This is a permanent error.

{notice}
--ZOHO
Content-Type: message/rfc822

From: sender@example.org
To: gone@example.net, other@example.net
Subject: hello

hello
--ZOHO--
""",
    )


def test_zoho_line_with_address_and_invalid_address_gives_the_reply_on_it() -> None:
    raw = zoho(
        "gone@example.net Invalid Address, 550 5.1.1 <gone@example.net>: Recipient address =\n"
        "rejected: User unknown in virtual mailbox table\n"
    )

    (fact,) = read_bounce(raw).facts

    assert fact.recipient == "gone@example.net"
    assert (fact.code, fact.status) == ("550", "5.1.1")
    assert fact.description == (
        "Invalid Address, 550 5.1.1 <gone@example.net>: Recipient address rejected: "
        "User unknown in virtual mailbox table"
    )
    assert (fact.reason, fact.bounce_type) == (Reason.USER_UNKNOWN, BounceType.HARD)


def test_zoho_address_with_the_reason_on_the_following_lines() -> None:
    raw = zoho(
        "gone@example.net\n"
        "Invalid Address\n"
        "550 5.1.1 <gone@example.net>: Recipient address rejected: User unknown\n"
    )

    (fact,) = read_bounce(raw).facts

    assert fact.recipient == "gone@example.net"
    assert (fact.code, fact.status, fact.reason) == ("550", "5.1.1", Reason.USER_UNKNOWN)
    assert fact.description.startswith("Invalid Address 550 5.1.1")


def test_zoho_sentence_naming_the_recipient_is_explained_by_the_reason_below() -> None:
    raw = zoho(
        "Your message could not be delivered to <full@example.net>.\n\n"
        "Reason: 552 5.2.2 Mailbox full\n"
    )

    (fact,) = read_bounce(raw).facts

    assert fact.recipient == "full@example.net"
    assert (fact.code, fact.status, fact.reason) == ("552", "5.2.2", Reason.MAILBOX_FULL)


def test_zoho_retry_warning_reads_the_response_code() -> None:
    raw = zoho(
        "----- The following addresses had fatal errors -----\n"
        "[Status: Error, Address: <slow@example.net>, ResponseCode 421, , Host not reachable.]\n"
        "\nMessage will be retried for 4 more day(s)\n"
    )

    (fact,) = read_bounce(raw).facts

    assert fact.recipient == "slow@example.net"
    assert (fact.code, fact.bounce_type) == ("421", BounceType.SOFT)


SNS_HEADERS = """\
From: AWS Notifications <no-reply@sns.amazonaws.com>
To: bounces@example.org
Subject: AWS Notification Message
Content-Type: text/plain; charset=UTF-8
"""

BOUNCE: dict[str, object] = {
    "notificationType": "Bounce",
    "bounce": {
        "bounceType": "Permanent",
        "bounceSubType": "General",
        "bouncedRecipients": [
            {
                "emailAddress": "Jane <jane@Example.com>",
                "action": "failed",
                "status": "5.1.1",
                "diagnosticCode": "smtp; 550 5.1.1 <jane@example.com>... User unknown",
            },
            {"emailAddress": "richard@example.com"},
        ],
        "timestamp": "2024-01-27T14:59:38.237Z",
        "feedbackId": "00000138111222aa-33322211-cccc-cccc-cccc-ddddaaaa068a-000000",
        "reportingMTA": "dns; email.example.com",
    },
    "mail": {
        "timestamp": "2024-01-27T14:59:38.237Z",
        "source": "john@example.org",
        "messageId": "00000138111222aa-33322211-cccc-cccc-cccc-ddddaaaa0680-000000",
        "destination": ["jane@example.com", "richard@example.com", "mary@example.com"],
    },
}


def sns_envelope(notification: Mapping[str, object]) -> str:
    """An SNS notification as an "email-json" subscription receives it: the SES notification
    as a JSON string in "Message" (SNS developer guide, "HTTP/HTTPS notification JSON format")."""
    envelope = {
        "Type": "Notification",
        "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        "TopicArn": "arn:aws:sns:us-west-2:123456789012:ses-feedback",
        "Message": json.dumps(notification),
        "Timestamp": "2024-01-27T14:59:39.100Z",
        "SignatureVersion": "1",
        "Signature": "EXAMPLEpH+DcEwjAPg8O9mY8dReBSwksfg2S7WKQcikcNKWLQjwu6A4VbeS0QHVCkhRS7fUQ",
        "SigningCertURL": "https://sns.us-west-2.amazonaws.com/SimpleNotificationService.pem",
        "UnsubscribeURL": "https://sns.us-west-2.amazonaws.com/?Action=Unsubscribe",
    }
    return json.dumps(envelope, indent=2) + "\n"


def test_ses_bounce_inside_an_sns_envelope_is_unwrapped() -> None:
    report = read_bounce(message(SNS_HEADERS, sns_envelope(BOUNCE)))

    assert report.kind == "dsn"
    jane, richard = report.facts
    assert (jane.recipient, jane.code, jane.status) == ("jane@example.com", "550", "5.1.1")
    assert jane.description == "550 5.1.1 <jane@example.com>... User unknown"
    assert (jane.reason, jane.bounce_type) == (Reason.USER_UNKNOWN, BounceType.HARD)
    assert richard.recipient == "richard@example.com"
    assert richard.description == "Permanent General"  # no diagnostic of its own


def test_ses_complaint_inside_an_sns_envelope_is_feedback() -> None:
    complaint = {
        "notificationType": "Complaint",
        "complaint": {
            "complainedRecipients": [{"emailAddress": "reader@example.com"}],
            "complaintFeedbackType": "abuse",
            "timestamp": "2024-01-27T14:59:38.237Z",
        },
        "mail": {"source": "news@example.org", "destination": ["reader@example.com"]},
    }

    report = read_bounce(message(SNS_HEADERS, sns_envelope(complaint)))

    assert report.kind == "feedback"
    assert report.feedback_type == "abuse"
    assert [(f.recipient, f.reason) for f in report.facts] == [("reader@example.com", "feedback")]


def test_ses_event_publishing_bounce_record_is_read_like_a_notification() -> None:
    event = {"eventType": "Bounce", "bounce": BOUNCE["bounce"], "mail": BOUNCE["mail"]}

    report = read_bounce(message(SNS_HEADERS, json.dumps(event)))

    assert [f.recipient for f in report.facts] == ["jane@example.com", "richard@example.com"]


def test_ses_delivery_delay_event_gives_soft_facts() -> None:
    event = {
        "eventType": "DeliveryDelay",
        "deliveryDelay": {
            "timestamp": "2024-01-27T15:00:00.000Z",
            "delayType": "TransientCommunicationFailure",
            "expirationTime": "2024-01-28T14:59:38.237Z",
            "delayedRecipients": [
                {
                    "emailAddress": "slow@example.com",
                    "status": "4.4.1",
                    "diagnosticCode": "smtp; 421 4.4.1 Unable to connect to remote host",
                }
            ],
        },
        "mail": {"source": "john@example.org", "destination": ["slow@example.com"]},
    }

    (fact,) = read_bounce(message(SNS_HEADERS, sns_envelope(event))).facts

    assert (fact.recipient, fact.code, fact.status) == ("slow@example.com", "421", "4.4.1")
    assert fact.bounce_type == BounceType.SOFT


def test_ses_notification_as_an_email_subscription_sends_it_with_a_footer() -> None:
    body = (
        json.dumps(BOUNCE)
        + "\n\n--\nIf you wish to stop receiving notifications from this topic, please click"
        " or visit the link below to unsubscribe:\nhttps://sns.us-west-2.amazonaws.com/unsub\n"
    )

    report = read_bounce(message(SNS_HEADERS, body))

    assert [f.recipient for f in report.facts] == ["jane@example.com", "richard@example.com"]


def test_ses_notification_wrapped_inside_a_string_is_still_read() -> None:
    body = json.dumps(BOUNCE).replace("User unknown", "User\nunknown")  # a line wrapped in transit

    (jane, _) = read_bounce(message(SNS_HEADERS, body)).facts

    assert jane.description == "550 5.1.1 <jane@example.com>... User unknown"


def test_sns_envelope_cut_short_is_scanned_for_its_recipients() -> None:
    body = sns_envelope(BOUNCE)[:-400]  # no longer JSON: the envelope lost its end

    report = read_bounce(message(SNS_HEADERS, body))

    assert [f.recipient for f in report.facts] == ["jane@example.com", "richard@example.com"]
    assert report.facts[0].status == "5.1.1"


def test_sns_notification_that_is_not_from_ses_names_no_recipient() -> None:
    alarm = {"AlarmName": "high-cpu", "NewStateValue": "ALARM", "eventType": 7}

    report = read_bounce(message(SNS_HEADERS, sns_envelope(alarm)))

    assert report.facts == ()


def test_ses_notification_nested_beyond_reason_does_not_raise() -> None:
    body = '{"notificationType":"Bounce","bounce":' + "[" * 100_000 + "]" * 100_000 + "}"

    report = read_bounce(message(SNS_HEADERS, body))

    assert report.facts == ()


IMAIL_HEADERS = """\
From: "Postmaster" <postmaster@mail.example.net>
To: <sender@example.org>
Subject: Undeliverable Mail
X-Mailer: <SMTP32 v8.22>
Content-Type: text/plain; charset=us-ascii
"""


def test_imail_notice_names_each_recipient_after_its_reason() -> None:
    raw = message(
        IMAIL_HEADERS,
        """\
Unknown user: gone@example.org
Mailbox full: full@example.org
Delivery failed 5 attempts: slow@example.org

Original message follows.

From: sender@example.org
To: gone@example.org, full@example.org, slow@example.org, friend@example.org
Subject: hello
""",
    )

    facts = read_bounce(raw).facts

    assert [(f.recipient, f.description) for f in facts] == [
        ("gone@example.org", "Unknown user:"),
        ("full@example.org", "Mailbox full:"),
        ("slow@example.org", "Delivery failed 5 attempts:"),
    ]
    assert [f.reason for f in facts[:2]] == [Reason.USER_UNKNOWN, Reason.MAILBOX_FULL]


def test_imail_style_label_is_explained_by_the_reply_quoted_below_it() -> None:
    raw = message(
        IMAIL_HEADERS,
        """\
Delivery failed 3 attempts: slow@example.org

The last reply from mx.example.org was:
452 4.2.2 Mailbox over quota, try again later

Original message follows.
""",
    )

    (fact,) = read_bounce(raw).facts

    assert fact.recipient == "slow@example.org"
    assert (fact.code, fact.status) == ("452", "4.2.2")
    assert fact.description == (
        "Delivery failed 3 attempts: The last reply from mx.example.org was: "
        "452 4.2.2 Mailbox over quota, try again later"
    )
    assert fact.bounce_type == BounceType.SOFT


def test_every_recipient_line_names_the_address_and_cites_its_source() -> None:
    for shape in RECIPIENT_LINES:
        assert "addr" in shape.pattern.groupindex, shape
        assert shape.says in Says
        assert shape.source.strip(), shape


@pytest.mark.parametrize("label", FAILURE_LABELS)
def test_every_failure_label_is_a_lowercase_phrase(label: str) -> None:
    assert label == label.lower()
    assert re.fullmatch(r"[a-z]+(?: [a-z]+)*", label)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(
    kind=st.sampled_from(["Bounce", "Complaint", "Delivery", "DeliveryDelay", "Open", ""]),
    field=st.sampled_from(["notificationType", "eventType"]),
    details=JSON_VALUES,
    enveloped=st.booleans(),
)
def test_any_ses_shaped_json_is_read_without_raising(
    kind: str, field: str, details: object, enveloped: bool
) -> None:
    notification = {
        field: kind,
        "bounce": details,
        "complaint": details,
        "deliveryDelay": details,
    }
    body = sns_envelope(notification) if enveloped else json.dumps(notification)

    report = read_bounce(message(SNS_HEADERS, body))

    assert report.kind in ("dsn", "feedback", "unrecognized")
