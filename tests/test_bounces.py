"""Reading raw bounces: one MIME family per test, each message composed here by hand."""

from __future__ import annotations

import base64
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.mail import BounceType, Reason
from exporter.mail.bounces import (
    BOUNCE_KINDS,
    MAX_DESCRIPTION,
    MAX_EXCERPT,
    BounceFact,
    BounceReport,
    read_bounce,
)


def message(headers: str, body: str, *, crlf: bool = False) -> bytes:
    """A raw message from readable text: header lines, a blank line, the body."""
    text = headers.strip("\n") + "\n\n" + body.lstrip("\n")
    if crlf:
        text = text.replace("\n", "\r\n")
    return text.encode("utf-8")


DSN_HEADERS = """\
From: Mail Delivery System <MAILER-DAEMON@mx.example.net>
To: sender@example.org
Subject: Undelivered Mail Returned to Sender
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="BOUND"
"""

TWO_RECIPIENT_DSN = message(
    DSN_HEADERS,
    """\
This is a MIME-encapsulated message.

--BOUND
Content-Type: text/plain; charset=us-ascii

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

--BOUND
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net

Final-Recipient: rfc822; gone@Example.COM
Original-Recipient: rfc822;alias@example.com
Action: failed
Status: 5.1.1
Remote-MTA: dns; mx.example.com
Diagnostic-Code: smtp; 550 5.1.1 <gone@example.com>: Recipient address
    rejected: User unknown in local recipient table

Final-Recipient: rfc822; full@example.com
Action: failed
Status: 5.2.2
Diagnostic-Code: smtp; 552 5.2.2 Mailbox full

--BOUND
Content-Type: message/rfc822

From: sender@example.org
To: gone@example.com, full@example.com
Subject: hello

hello
--BOUND--
""",
)


def test_dsn_with_two_recipients_gives_two_facts() -> None:
    report = read_bounce(TWO_RECIPIENT_DSN)

    assert report.kind == "dsn"
    assert report.facts == (
        BounceFact(
            recipient="gone@example.com",
            status="5.1.1",
            code="550",
            state="",
            description="550 5.1.1 <gone@example.com>: Recipient address rejected: "
            "User unknown in local recipient table",
            reason=Reason.USER_UNKNOWN,
            bounce_type=BounceType.HARD,
        ),
        BounceFact(
            recipient="full@example.com",
            status="5.2.2",
            code="552",
            state="",
            description="552 5.2.2 Mailbox full",
            reason=Reason.MAILBOX_FULL,
            bounce_type=BounceType.SOFT,
        ),
    )


def test_dsn_with_crlf_line_endings_reads_the_same() -> None:
    crlf = TWO_RECIPIENT_DSN.decode().replace("\n", "\r\n").encode()

    assert read_bounce(crlf) == read_bounce(TWO_RECIPIENT_DSN)


def test_quoted_printable_report_is_decoded_before_its_fields_are_read() -> None:
    raw = message(
        """\
From: MAILER-DAEMON@mx.example.net
Subject: Delivery Status Notification (Failure)
Content-Type: multipart/mixed; boundary=QP
""",
        """\
--QP
Content-Type: text/plain; charset=iso-8859-15
Content-Transfer-Encoding: quoted-printable

An error occurred while trying to deliver the mail to the following recip=
ients:
caf=E9@example.net

Technical report:

Action: failed
Final-Reci=
pient: rfc822; someone@example.net
Diagnostic-Code: smtp; 550 5.1.1=
 <someone@example.net>... User Unknown
Status: 5.1.1

--QP--
""",
    )

    (fact,) = read_bounce(raw).facts

    assert fact.recipient == "someone@example.net"
    assert fact.status == "5.1.1"
    assert fact.code == "550"
    assert fact.description == "550 5.1.1 <someone@example.net>... User Unknown"


def test_base64_notification_text_is_decoded() -> None:
    text = "<user@example.com>: host mx.example.com said: 550 5.1.1 No such user\n"
    raw = message(
        """\
From: MAILER-DAEMON@mx.example.net
Subject: Undelivered Mail Returned to Sender
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: base64
""",
        base64.encodebytes(text.encode()).decode(),
    )

    (fact,) = read_bounce(raw).facts

    assert fact.recipient == "user@example.com"
    assert fact.description == "host mx.example.com said: 550 5.1.1 No such user"


def test_exim_notice_gives_recipient_state_and_smtp_error() -> None:
    raw = message(
        """\
From: Mail Delivery System <Mailer-Daemon@relay.example.org>
To: sender@example.org
Subject: Mail delivery failed: returning message to sender
Auto-Submitted: auto-replied
X-Failed-Recipients: user@example.jp
""",
        """\
This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  user@example.jp
    SMTP error from remote mail server after RCPT TO:<user@example.jp>:
    host mx.example.jp [192.0.2.1]: 550 5.1.1 <user@example.jp>... User Unknown

------ This is a copy of the message, including all the headers. ------

From: sender@example.org
To: user@example.jp, other@example.jp
Subject: hi

Write to cc@example.jp
""",
    )

    report = read_bounce(raw)

    assert report.kind == "dsn"
    assert report.facts == (
        BounceFact(
            recipient="user@example.jp",
            status="5.1.1",
            code="550",
            state="rcpt",
            description="SMTP error from remote mail server after RCPT TO:<user@example.jp>: "
            "host mx.example.jp [192.0.2.1]: 550 5.1.1 <user@example.jp>... User Unknown",
            reason=Reason.USER_UNKNOWN,
            bounce_type=BounceType.HARD,
        ),
    )


def test_postfix_style_line_carries_address_and_diagnostic() -> None:
    raw = message(
        """\
From: MAILER-DAEMON@mx.example.net (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
""",
        """\
This is the mail system at host mx.example.net.

<user@example.com> (expanded from <alias@example.com>): host
    mx.example.com[192.0.2.2] said: 552 5.2.2 <user@example.com>: Mailbox full
    (in reply to RCPT TO command)
""",
    )

    (fact,) = read_bounce(raw).facts

    assert fact.recipient == "user@example.com"
    assert fact.status == "5.2.2"
    assert fact.code == "552"
    assert fact.state == "rcpt"
    assert fact.reason == "mailboxfull"
    assert fact.bounce_type == "soft"


def test_qmail_notice_with_two_recipients_gives_two_facts() -> None:
    raw = message(
        """\
From: MAILER-DAEMON@mail.example.jp
Subject: failure notice
""",
        """\
Hi. This is the qmail-send program at mail.example.jp.
I'm afraid I wasn't able to deliver your message to the following addresses.
This is a permanent error; I've given up. Sorry it didn't work out.

<first@example.net>:
192.0.2.3 does not like recipient.
Remote host said: 550 5.1.1 <first@example.net>... User Unknown
Giving up on 192.0.2.3.

<second@example.net>:
Sorry, I couldn't find a mail exchanger or IP address. (#5.4.4)

--- Below this line is a copy of the message.

To: first@example.net, second@example.net, third@example.net
""",
    )

    first, second = read_bounce(raw).facts

    assert (first.recipient, first.status, first.code, first.state) == (
        "first@example.net",
        "5.1.1",
        "550",
        "rcpt",
    )
    assert (second.recipient, second.status, second.code, second.state) == (
        "second@example.net",
        "5.4.4",
        "",
        "",
    )
    assert second.description == "Sorry, I couldn't find a mail exchanger or IP address. (#5.4.4)"


def test_sendmail_fatal_errors_section_names_the_recipient() -> None:
    raw = message(
        """\
From: Mail Delivery Subsystem <MAILER-DAEMON@mx.example.jp>
Subject: Returned mail: see transcript for details
""",
        """\
   ----- The following addresses had permanent fatal errors -----
<user@example.com>
    (reason: 550 5.1.1 <user@example.com>... User unknown)

   ----- Transcript of session follows -----
... while talking to mx.example.com.:
>>> RCPT To:<user@example.com>
<<< 550 5.1.1 <user@example.com>... User unknown
""",
    )

    (fact,) = read_bounce(raw).facts

    assert fact.recipient == "user@example.com"
    assert fact.status == "5.1.1"
    assert fact.code == "550"
    assert fact.state == "rcpt"


def test_truncated_multiline_reply_in_a_report_is_completed_and_unwrapped() -> None:
    raw = message(
        DSN_HEADERS,
        """\
--BOUND
Content-Type: text/plain

... while talking to mx.example.com.:
>>> DATA
<<< 550-5.7.26 This mail is unauthenticated, which poses a security risk to the
<<< 550-5.7.26 sender and Gmail users, and has been blocked. The sender must
<<< 550 5.7.26 authenticate with at least one of SPF or DKIM.

--BOUND
Content-Type: message/delivery-status

Final-Recipient: rfc822; user@example.com
Action: failed
Status: 5.7.26
Diagnostic-Code: smtp; 550-5.7.26 This mail is unauthenticated, which poses a security risk to the

--BOUND--
""",
    )

    (fact,) = read_bounce(raw).facts

    assert fact.description == (
        "550-5.7.26 This mail is unauthenticated, which poses a security risk to the "
        "sender and Gmail users, and has been blocked. The sender must "
        "authenticate with at least one of SPF or DKIM."
    )
    assert fact.state == "data"


def test_delayed_delivery_report_gives_a_soft_fact() -> None:
    raw = message(
        DSN_HEADERS.replace("Undelivered Mail Returned to Sender", "Delayed Mail"),
        """\
--BOUND
Content-Type: message/delivery-status

Final-Recipient: rfc822; slow@example.com
Action: delayed
Status: 4.4.1
Diagnostic-Code: X-Postfix; connect to mx.example.com[192.0.2.9]:25: Connection timed out
Will-Retry-Until: Sun, 05 May 2024 23:34:45 +0900

--BOUND--
""",
    )

    (fact,) = read_bounce(raw).facts

    assert fact.recipient == "slow@example.com"
    assert fact.status == "4.4.1"
    assert fact.bounce_type == "soft"


def test_report_of_delivered_recipients_only_has_no_facts() -> None:
    raw = message(
        DSN_HEADERS,
        """\
--BOUND
Content-Type: message/delivery-status

Final-Recipient: rfc822; happy@example.com
Action: delivered
Status: 2.0.0

--BOUND--
""",
    )

    assert read_bounce(raw) == BounceReport("dsn", ())


def test_x_failed_recipients_names_the_recipient_when_the_text_does_not() -> None:
    raw = message(
        """\
From: Mail Delivery Subsystem <mailer-daemon@mail.example.com>
Subject: Delivery Status Notification (Failure)
X-Failed-Recipients: group@lists.example.com
""",
        """\
We're writing to let you know that the group you tried to contact may not exist,
or you may not have permission to post messages to the group.
""",
    )

    (fact,) = read_bounce(raw).facts

    assert fact.recipient == "group@lists.example.com"
    assert fact.description == (
        "We're writing to let you know that the group you tried to contact may not exist, "
        "or you may not have permission to post messages to the group."
    )


def test_returned_message_addresses_are_not_taken_for_recipients() -> None:
    raw = message(
        """\
From: MAILER-DAEMON@mx.example.net
Subject: failure notice
""",
        """\
<user@example.com>:
Remote host said: 550 5.1.1 User unknown

--- Below this line is a copy of the message.

From: sender@example.org
To: user@example.com

Reply to <sales@example.org>:
or write to someone@example.org
""",
    )

    assert [fact.recipient for fact in read_bounce(raw).facts] == ["user@example.com"]


def test_exchange_notice_merges_both_mentions_of_the_recipient() -> None:
    raw = message(
        """\
From: Microsoft Outlook <postmaster@outlook.example>
Subject: Undeliverable: hello
Content-Type: text/plain; charset="utf-8"
""",
        """\
Delivery has failed to these recipients or groups:

user@example.com<mailto:user@example.com>
The email address you entered couldn't be found.

Diagnostic information for administrators:

Generating server: SERVER.example.prod.outlook.com

user@example.com
Remote Server returned '550 5.1.1 RESOLVER.ADR.RecipNotFound; not found'

Original message headers:

To: user@example.com, other@example.com
""",
    )

    (fact,) = read_bounce(raw).facts

    assert fact.recipient == "user@example.com"
    assert fact.description == (
        "The email address you entered couldn't be found. "
        "Remote Server returned '550 5.1.1 RESOLVER.ADR.RecipNotFound; not found'"
    )
    assert (fact.status, fact.code, fact.reason) == ("5.1.1", "550", "userunknown")


@pytest.mark.parametrize(
    "sentence",
    [
        "Your message to <jane@contoso.example> couldn't be delivered.",
        "There was an error delivering your mail to <jane@contoso.example>.",
        "Unable to deliver message to: <jane@contoso.example>",
        "The following recipients returned permanent errors: jane@contoso.example.",
        "Delivery failed 20 attempts: jane@contoso.example",
    ],
)
def test_sentence_naming_the_recipient_is_found_and_the_notice_explains_it(
    sentence: str,
) -> None:
    raw = message(
        "From: postmaster@mail.example\nSubject: Undeliverable: hello",
        f"{sentence}\n\nRemote server said: 550 5.1.1 Mailbox does not exist\n",
    )

    (fact,) = read_bounce(raw).facts

    assert fact.recipient == "jane@contoso.example"
    assert (fact.status, fact.code) == ("5.1.1", "550")
    assert fact.description.endswith("Remote server said: 550 5.1.1 Mailbox does not exist")


def test_recipient_named_alone_is_explained_by_the_rest_of_the_notice() -> None:
    raw = message(
        """\
From: Mail Delivery Subsystem <mailer-daemon@mail.example.com>
Subject: Delivery Status Notification (Failure)
""",
        """\
Delivery to the following recipient failed permanently:

     user@example.jp

Technical details of permanent failure:
The error that the other server returned was:
550 5.2.2 Mailbox full

----- Original message -----

To: user@example.jp
""",
    )

    (fact,) = read_bounce(raw).facts

    assert fact.recipient == "user@example.jp"
    assert fact.description == (
        "Technical details of permanent failure: The error that the other server returned "
        "was: 550 5.2.2 Mailbox full"
    )
    assert fact.reason == "mailboxfull"


def test_address_of_the_reporting_system_is_not_a_recipient() -> None:
    raw = message(
        """\
From: postmaster@mx.example.net
Subject: Undeliverable message
""",
        """\
Your message could not be delivered:

<user@example.com>: host mx.example.com said: 550 5.1.1 Unknown user

Questions? Write to
  postmaster@mx.example.net
""",
    )

    assert [fact.recipient for fact in read_bounce(raw).facts] == ["user@example.com"]


def test_mime_parts_under_headers_that_do_not_declare_them_are_found() -> None:
    raw = message(
        """\
From: Mail Delivery Subsystem <MAILER-DAEMON@mx.example.jp>
Subject: Returned mail: see transcript for details
""",
        """\
This is a MIME-encapsulated message

--0123456789.ABC/mx.example.jp

The original message was received at Sat, 9 Jun 2018 03:06:57 +0900

--0123456789.ABC/mx.example.jp
Content-Type: message/delivery-status

Final-Recipient: RFC822; user@example.jp
Action: failed
Status: 5.1.1
Diagnostic-Code: SMTP; 550 5.1.1 User unknown

--0123456789.ABC/mx.example.jp--
""",
    )

    (fact,) = read_bounce(raw).facts

    assert (fact.recipient, fact.status, fact.code) == ("user@example.jp", "5.1.1", "550")


def test_html_only_notice_is_read_as_text() -> None:
    raw = message(
        """\
From: MAILER-DAEMON@mx.example.net
Subject: Undelivered Mail Returned to Sender
Content-Type: text/html; charset=utf-8
""",
        "<html><head><style>p { color: red }</style></head><body>"
        "<p>&lt;user@example.com&gt;: host mx.example.com said: 550 5.1.1 User unknown</p>"
        "</body></html>",
    )

    (fact,) = read_bounce(raw).facts

    assert fact.recipient == "user@example.com"
    assert fact.description == "host mx.example.com said: 550 5.1.1 User unknown"


def test_amazon_ses_bounce_notification_gives_its_bounced_recipients() -> None:
    raw = message(
        """\
From: AWS Notifications <no-reply@sns.amazonaws.com>
Subject: AWS Notification Message
Content-Type: text/plain; charset=UTF-8
""",
        '{"notificationType":"Bounce","bounce":{"bounceType":"Permanent",'
        '"bouncedRecipients":[{"emailAddress":"gone@example.com","action":"failed",'
        '"status":"5.1.1","diagnosticCode":"smtp; 550 5.1.1 user unknown"}]},'
        '"mail":{"destination":["gone@example.com"]}}\n',
    )

    report = read_bounce(raw)

    assert report.kind == "dsn"
    assert report.facts == (
        BounceFact(
            recipient="gone@example.com",
            status="5.1.1",
            code="550",
            state="",
            description="550 5.1.1 user unknown",
            reason=Reason.USER_UNKNOWN,
            bounce_type=BounceType.HARD,
        ),
    )


def test_amazon_ses_complaint_notification_is_feedback() -> None:
    raw = message(
        "From: no-reply@sns.amazonaws.com\nSubject: AWS Notification Message",
        '{"notificationType":"Complaint","complaint":{"complainedRecipients":'
        '[{"emailAddress":"reader@example.com"}],"complaintFeedbackType":"abuse"}}\n',
    )

    report = read_bounce(raw)

    assert report.kind == "feedback"
    assert report.feedback_type == "abuse"
    assert [(f.recipient, f.reason) for f in report.facts] == [("reader@example.com", "feedback")]


ARF_HEADERS = """\
From: Feedback Loop <fbl@isp.example>
To: abuse@example.org
Subject: Email Feedback Report
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="ARF"
"""


def arf(feedback_fields: str, original_to: str) -> bytes:
    return message(
        ARF_HEADERS,
        f"""\
--ARF
Content-Type: text/plain

This is an email abuse report.

--ARF
Content-Type: message/feedback-report

{feedback_fields}

--ARF
Content-Type: message/rfc822

From: news@example.org
To: {original_to}
Subject: Our offers

Buy now
--ARF--
""",
    )


def test_arf_report_gives_one_feedback_fact_per_original_rcpt_to() -> None:
    raw = arf(
        "Feedback-Type: abuse\nUser-Agent: FBL/1.0\nVersion: 1\n"
        "Original-Rcpt-To: one@isp.example\nOriginal-Rcpt-To: <two@ISP.example>",
        "list@example.org",
    )

    report = read_bounce(raw)

    assert report.kind == "feedback"
    assert report.feedback_type == "abuse"
    assert [(f.recipient, f.reason, f.bounce_type) for f in report.facts] == [
        ("one@isp.example", "feedback", "soft"),
        ("two@isp.example", "feedback", "soft"),
    ]


def test_arf_report_without_original_rcpt_to_uses_the_original_message_to() -> None:
    raw = arf(
        "Feedback-Type: fraud\nUser-Agent: FBL/1.0\nVersion: 1", "Reader <reader@isp.example>"
    )

    report = read_bounce(raw)

    assert report.kind == "feedback"
    assert report.feedback_type == "fraud"
    assert [f.recipient for f in report.facts] == ["reader@isp.example"]


def test_arf_report_that_hides_every_recipient_still_counts_one_complaint() -> None:
    raw = arf("Feedback-Type: abuse\nVersion: 1", "<Undisclosed Recipients>")

    report = read_bounce(raw)

    assert report.kind == "feedback"
    assert [(f.recipient, f.reason) for f in report.facts] == [("", "feedback")]


def test_microsoft_complaint_with_original_recipient_header_is_feedback() -> None:
    raw = message(
        """\
From: staff@hotmail.example
Subject: complaint about message from 192.0.2.1
Content-Type: multipart/mixed; boundary="JMRP"
""",
        """\
--JMRP
Content-Type: message/rfc822

X-HmXmrOriginalRecipient: reader@hotmail.example
From: news@example.org
To: list@example.org

Offers
--JMRP--
""",
    )

    report = read_bounce(raw)

    assert report.kind == "feedback"
    assert report.feedback_type == "abuse"
    assert [f.recipient for f in report.facts] == ["reader@hotmail.example"]


def test_auto_replied_message_is_an_autoreply_from_its_sender() -> None:
    raw = message(
        """\
From: Jane Doe <Jane@Example.COM>
To: sender@example.org
Subject: Away until Monday
Auto-Submitted: auto-replied
""",
        "I am out of the office until Monday.\n",
    )

    report = read_bounce(raw)

    assert report.kind == "autoreply"
    assert report.facts == (
        BounceFact(
            recipient="Jane@example.com",
            status="",
            code="",
            state="",
            description="Away until Monday I am out of the office until Monday.",
            reason=Reason.VACATION,
            bounce_type=BounceType.SOFT,
        ),
    )


def test_encoded_out_of_office_subject_alone_marks_an_autoreply() -> None:
    raw = message(
        """\
From: someone@example.com
Subject: =?utf-8?q?Automatic_reply:_Hello?=
""",
        "Thanks for your mail.\n",
    )

    assert read_bounce(raw).kind == "autoreply"


def test_human_reply_that_mentions_a_vacation_is_not_an_autoreply() -> None:
    raw = message(
        "From: friend@example.com\nSubject: Re: our vacation photos",
        "Lovely pictures!\n",
    )

    assert read_bounce(raw).kind == "unrecognized"


def test_out_of_office_text_that_sounds_like_a_bounce_is_still_an_autoreply() -> None:
    raw = message(
        "From: jane@example.com\nSubject: Out of Office: hello\nAuto-Submitted: auto-replied",
        "Mail sent to me is not delivered to my phone until I return.\n",
    )

    assert read_bounce(raw).kind == "autoreply"


def test_mail_system_notice_naming_no_recipient_is_unrecognized_not_an_autoreply() -> None:
    raw = message(
        """\
From: Mail Delivery System <MAILER-DAEMON@mx.example.net>
Subject: Mail delivery failed: returning message to sender
Auto-Submitted: auto-replied
""",
        "Something went wrong, but we will not say for whom.\n",
    )

    report = read_bounce(raw)

    assert report.kind == "unrecognized"
    assert report.excerpt.startswith("Mail delivery failed: returning message to sender | ")


def test_bounce_marked_auto_replied_is_still_a_bounce() -> None:
    report = read_bounce(TWO_RECIPIENT_DSN)

    assert report.kind == "dsn"


def test_newsletter_is_unrecognized_with_an_excerpt() -> None:
    raw = message(
        """\
From: News <news@shop.example>
To: sender@example.org
Subject: Spring sale
Content-Type: text/html; charset=utf-8
""",
        "<html><body><p>Everything <b>half</b> price.</p><p>Contact sales@shop.example</p>"
        "</body></html>",
    )

    report = read_bounce(raw)

    assert report == BounceReport(
        "unrecognized",
        (),
        excerpt="Spring sale | Everything half price. Contact sales@shop.example",
    )


def test_excerpt_and_description_are_bounded() -> None:
    newsletter = message("From: a@example.org\nSubject: x", "word " * 10_000)
    bounce = message(
        "From: MAILER-DAEMON@example.org\nSubject: failure notice",
        "<user@example.com>:\n" + "550 no " * 1_000,
    )

    assert len(read_bounce(newsletter).excerpt) == MAX_EXCERPT
    assert len(read_bounce(bounce).facts[0].description) == MAX_DESCRIPTION


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\n\n\n",
        b"\x00\xff\xfe" * 1000,
        b"Content-Type: multipart/report; boundary=X\n\n--X\nContent-Type: message/deliv",
        b"Content-Type: multipart/mixed\n\nno boundary parameter at all <a@b.example>:\n",
        b"Content-Type: multipart/mixed; boundary=never\n\nthe boundary never appears",
        b"Content-Type: text/plain; charset=no-such-charset\n\n\xe9\xe8",
        b"Content-Type: text/plain; charset=rot13\n\nuryyb",
        b"Content-Transfer-Encoding: base64\n\n!!!not*base64===a",
        b"Content-Transfer-Encoding: quoted-printable\n\n=ZZ=\n=",
        b"Subject: =?x-unknown?b?////?= =?utf-8?q?=FF=?=\n\nbody",
        b"From: MAILER-DAEMON@x.example\nSubject: failure\n\n<"
        + b"a" * 100_000
        + b"@b.example>:\n",
    ],
)
def test_malformed_input_never_raises(raw: bytes) -> None:
    report = read_bounce(raw)

    assert report.kind in BOUNCE_KINDS


def test_deeply_nested_multiparts_stop_at_the_depth_limit() -> None:
    nested = "".join(
        f'Content-Type: multipart/mixed; boundary="b{i}"\n\n--b{i}\n' for i in range(500)
    )

    assert read_bounce(nested.encode()).kind in BOUNCE_KINDS


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    prefix=st.sampled_from([b"", TWO_RECIPIENT_DSN[:400], TWO_RECIPIENT_DSN]),
    noise=st.binary(max_size=2000),
    cut=st.integers(min_value=0, max_value=len(TWO_RECIPIENT_DSN)),
)
def test_fuzzed_messages_never_raise(prefix: bytes, noise: bytes, cut: int) -> None:
    report = read_bounce(prefix[:cut] + noise + prefix[cut:])

    assert report.kind in BOUNCE_KINDS
    assert all(len(fact.description) <= MAX_DESCRIPTION for fact in report.facts)


def test_ten_megabyte_message_is_read_in_bounded_time() -> None:
    attachment = base64.encodebytes(bytes(range(256)) * 40_000).decode()
    raw = TWO_RECIPIENT_DSN.replace(b"--BOUND--", f"--BOUND\n\n{attachment}\n--BOUND--".encode())
    assert len(raw) > 10_000_000

    started = time.perf_counter()
    report = read_bounce(raw)
    elapsed = time.perf_counter() - started

    assert [fact.recipient for fact in report.facts] == ["gone@example.com", "full@example.com"]
    assert elapsed < 1.0
