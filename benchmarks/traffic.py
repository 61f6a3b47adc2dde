"""Realistic, varied SMTPeter webhook traffic, for end-to-end tests, demos and load runs.

Every post is ``(path, fields)`` exactly as SMTPeter would form-encode it: failures with the
replies large mailbox providers give (their documented codes, in wording of our own), async
bounces, deliveries, opens, clicks, raw bounce messages (RFC 3464) and ARF complaints
(RFC 5965). A seeded :class:`random.Random` makes every run the same.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

Post = tuple[str, dict[str, str]]

#: Recipient domains and how often mail goes to each: large providers first, then the
#: long tail of company and ISP domains every list has.
DOMAINS: Final[tuple[tuple[str, int], ...]] = (
    ("gmail.com", 30),
    ("outlook.com", 8),
    ("hotmail.com", 8),
    ("live.nl", 2),
    ("yahoo.com", 8),
    ("aol.com", 2),
    ("icloud.com", 5),
    ("gmx.de", 3),
    ("web.de", 3),
    ("orange.fr", 2),
    ("ziggo.nl", 2),
    ("acme-tools.example", 3),
    ("bakkerij-jansen.example", 2),
    ("northwind.example", 2),
    ("contoso-mail.example", 2),
    ("fabrikam.example", 2),
)


@dataclass(frozen=True, slots=True)
class Reply:
    """A refusal as SMTPeter reports it: the SMTP state, reply code, status and text."""

    state: str
    code: str
    extended: str
    description: str


#: Replies any receiver may give, by what went wrong.
USER_UNKNOWN: Final = (
    Reply("rcpt to", "550", "5.1.1", "5.1.1 <{rcpt}>: Recipient address rejected: User unknown"),
    Reply("rcpt to", "550", "5.1.1", "5.1.1 {rcpt}: mailbox unavailable, no such user"),
    Reply("bounce", "550", "5.1.1", "5.1.1 The recipient {rcpt} does not exist here"),
)
MAILBOX_FULL: Final = (
    Reply("rcpt to", "452", "4.2.2", "4.2.2 {rcpt}: mailbox is full, try again later"),
    Reply("bounce", "552", "5.2.2", "5.2.2 Quota exceeded for {rcpt}"),
)
GREYLISTED: Final = (
    Reply("rcpt to", "451", "4.7.1", "4.7.1 Greylisted, please retry in 5 minutes"),
)
#: Replies of one provider, keyed by provider, for its usual failures.
PROVIDER_REPLIES: Final[dict[str, tuple[Reply, ...]]] = {
    "gmail.com": (
        Reply(
            "rcpt to",
            "550",
            "5.1.1",
            "5.1.1 The email account that you tried to reach does not exist. "
            "https://support.google.com/mail/?p=NoSuchUser",
        ),
        Reply(
            "rcpt to",
            "452",
            "4.2.2",
            "4.2.2 The recipient's inbox is out of storage space. "
            "https://support.google.com/mail/?p=OverQuotaTemp",
        ),
    ),
    "outlook.com": (
        Reply(
            "rcpt to",
            "550",
            "5.5.0",
            "5.5.0 Requested action not taken: mailbox unavailable (S2017)",
        ),
    ),
    "yahoo.com": (
        Reply("rcpt to", "554", "5.7.9", "5.7.9 Message not accepted for policy reasons"),
        Reply("rcpt to", "552", "5.2.2", "5.2.2 Mailbox over quota for {rcpt}"),
    ),
}
#: The receiver refuses the sender itself: what a provider blocking us looks like.
BLOCKED: Final[dict[str, tuple[Reply, ...]]] = {
    "microsoft": (
        Reply(
            "rcpt to",
            "550",
            "5.7.1",
            "5.7.1 Unfortunately, messages from [203.0.113.7] weren't sent. Please contact "
            "your Internet service provider since part of their network is on our block "
            "list (S3150).",
        ),
        Reply(
            "mail from",
            "550",
            "5.7.1",
            "5.7.1 Service unavailable, Client host [203.0.113.7] blocked using Spamhaus (AS3130)",
        ),
    ),
}
#: Sender authentication failed (SPF, DKIM, DMARC).
AUTH_FAILURE: Final = Reply(
    "data",
    "550",
    "5.7.26",
    "5.7.26 Unauthenticated email from sender.example is not accepted due to the domain's "
    "DMARC policy.",
)
MICROSOFT_DOMAINS: Final = ("outlook.com", "hotmail.com", "live.nl")

DELIVERED: Final = (
    ("250", "2.0.0", "2.0.0 OK {stamp} - gsmtp"),
    ("250", "2.6.0", "2.6.0 <{stamp}@sender.example> Queued mail for delivery"),
    ("250", "", "Ok: queued as {stamp}"),
)

_NAMES: Final = ("anna", "bram", "chris", "daan", "eva", "fleur", "gijs", "hanna", "ivo", "jan")


class Traffic:
    """A seeded source of posts; every call moves the same sequence forward."""

    def __init__(self, seed: int = 7, sender: str = "news@sender.example") -> None:
        self._rng = random.Random(seed)
        self._sender = sender
        self._serial = 0
        self._domains = [domain for domain, _ in DOMAINS]
        self._weights = [weight for _, weight in DOMAINS]

    def _id(self) -> str:
        self._serial += 1
        return f"{self._serial:08x}{self._rng.getrandbits(32):08x}"

    def _recipient(self, domain: str | None = None) -> str:
        domain = domain or self._rng.choices(self._domains, self._weights)[0]
        return f"{self._rng.choice(_NAMES)}.{self._rng.randrange(100_000)}@{domain}"

    def _common(self, kind: str, recipient: str) -> dict[str, str]:
        now = time.time()
        return {
            "id": self._id(),
            "type": kind,
            "time": str(int(now)),
            "timestamp": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now)),
            "recipient": recipient,
            "tags": self._rng.choice(("newsletter", "newsletter;weekly", "order;transactional")),
        }

    def failure(self, reply: Reply | None = None, domain: str | None = None) -> Post:
        recipient = self._recipient(domain)
        if reply is None:
            own = PROVIDER_REPLIES.get(recipient.rpartition("@")[2], ())
            reply = self._rng.choice((*USER_UNKNOWN, *MAILBOX_FULL, *GREYLISTED, *own))
        fields = self._common("failure", recipient)
        fields.update(
            action="failed",
            state=reply.state,
            code=reply.code,
            extended=reply.extended,
            description=reply.description.format(rcpt=recipient),
        )
        return "/webhooks/failures", fields

    def blocked(self, provider: str) -> Post:
        """A refusal of the sender by ``provider`` (a key of :data:`BLOCKED`)."""
        return self.failure(
            self._rng.choice(BLOCKED[provider]), self._rng.choice(MICROSOFT_DOMAINS)
        )

    def auth_failure(self, domain: str = "gmail.com") -> Post:
        return self.failure(AUTH_FAILURE, domain)

    def delivery(self, domain: str | None = None) -> Post:
        fields = self._common("delivery", self._recipient(domain))
        code, extended, text = self._rng.choice(DELIVERED)
        fields.update(code=code, extended=extended, description=text.format(stamp=self._id()[:12]))
        return "/webhooks/deliveries", fields

    def open(self) -> Post:
        fields = self._common("open", self._recipient())
        fields.update(
            ip=f"198.51.100.{self._rng.randrange(1, 255)}",
            useragent="Mozilla/5.0 (Windows NT 10.0; Win64; x64)",
            referer="",
        )
        return "/webhooks/opens", fields

    def click(self) -> Post:
        _, fields = self.open()
        fields.update(type="click", original=f"https://shop.example/p/{self._rng.randrange(999)}")
        return "/webhooks/clicks", fields

    def bounce(self) -> Post:
        """A raw RFC 3464 bounce message, as the bounces webhook carries it."""
        recipient = self._recipient()
        fields = self._common("bounce", recipient)
        fields.update(envelope=f"bounce+{self._id()}@sender.example", mime=dsn(recipient))
        return "/webhooks/bounces", fields

    def abuse(self, domain: str = "yahoo.com") -> Post:
        """An ARF (RFC 5965) spam complaint, as the abuses webhook carries it."""
        recipient = self._recipient(domain)
        return "/webhooks/abuses", {
            "id": self._id(),
            "type": "abuse",
            "emailfrom": self._sender,
            "mime": arf(recipient, self._sender),
        }

    def mix(self, count: int, failure_share: float = 0.03) -> Iterator[Post]:
        """Ordinary traffic: deliveries with a few failures, opens and clicks, and now and
        then a raw bounce or a complaint."""
        for _ in range(count):
            draw = self._rng.random()
            if draw < failure_share:
                yield self.failure()
            elif draw < 0.70:
                yield self.delivery()
            elif draw < 0.90:
                yield self.open()
            elif draw < 0.98:
                yield self.click()
            elif draw < 0.995:
                yield self.bounce()
            else:
                yield self.abuse()


def dsn(recipient: str) -> str:
    """A delivery status notification (RFC 3464) for a mailbox that does not exist."""
    return (
        "From: MAILER-DAEMON@mx.receiver.example\r\n"
        "To: bounces@sender.example\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n'
        "\r\n--b\r\nContent-Type: text/plain\r\n\r\n"
        "Your message could not be delivered to one or more recipients.\r\n"
        "--b\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.receiver.example\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\n"
        "Action: failed\r\n"
        "Status: 5.1.1\r\n"
        f"Diagnostic-Code: smtp; 550 5.1.1 <{recipient}>: Recipient address rejected: "
        "User unknown\r\n"
        "--b--\r\n"
    )


def arf(recipient: str, sender: str) -> str:
    """An abuse report (RFC 5965) for a message ``recipient`` marked as spam."""
    return (
        "From: fbl@feedback.receiver.example\r\n"
        "To: abuse@sender.example\r\n"
        "Subject: Complaint about a message\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=feedback-report; boundary="f"\r\n'
        "\r\n--f\r\nContent-Type: text/plain\r\n\r\n"
        "A recipient marked this message as spam.\r\n"
        "--f\r\nContent-Type: message/feedback-report\r\n\r\n"
        "Feedback-Type: abuse\r\nUser-Agent: ReceiverFBL/2.1\r\nVersion: 1\r\n"
        f"Original-Rcpt-To: <{recipient}>\r\n"
        "--f\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"From: {sender}\r\nTo: {recipient}\r\nSubject: This week's offers\r\n"
        "--f--\r\n"
    )
