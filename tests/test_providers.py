"""The provider layer: documented provider codes and wording, the rule file and its checks."""

from __future__ import annotations

import re
import time

import pytest

from exporter.domains import PROVIDERS, Provider
from exporter.mail.providers import (
    RULES,
    RULES_PATH,
    ProviderRow,
    ProviderRuleError,
    ProviderVerdict,
    load_rules,
    load_rules_file,
    provider_reason,
)
from exporter.mail.vocabulary import Reason

# --- Invalid rule files: refused at load, naming the provider and row ---------------------

_VALID_ROW = """
[[acme.rows]]
token = "acme said no"
reason = "blocked"
meaning = "the sending IP is refused"
source = "https://postmaster.acme.example/codes"
"""


def _rules_with(row: str, table: str = 'domains = ["acme.example"]') -> str:
    return f"[acme]\n{table}\n{_VALID_ROW}\n[[acme.rows]]\n{row}\n"


def _refused(document: str) -> str:
    with pytest.raises(ProviderRuleError) as caught:
        load_rules(document, origin="test.toml")
    return str(caught.value)


def test_a_valid_file_loads() -> None:
    rules = load_rules(
        _rules_with('token = "acme other"\nreason = "filtered"\nmeaning = "x"\nsource = "RFC 5321"')
    )
    assert [row.token for row in rules.rows] == ["acme said no", "acme other"]


def test_unknown_reason_is_refused_naming_provider_and_row() -> None:
    message = _refused(
        _rules_with('token = "acme two"\nreason = "mailboxful"\nmeaning = "x"\nsource = "RFC 3463"')
    )
    assert "test.toml: [acme] row 2" in message
    assert "'mailboxful'" in message


def test_row_without_source_is_refused() -> None:
    message = _refused(_rules_with('token = "acme two"\nreason = "blocked"\nmeaning = "x"'))
    assert "[acme] row 2" in message
    assert "source" in message


def test_source_that_is_neither_url_nor_rfc_is_refused() -> None:
    message = _refused(
        _rules_with(
            'token = "acme two"\nreason = "blocked"\nmeaning = "x"\nsource = "a forum post"'
        )
    )
    assert "[acme] row 2" in message
    assert "http(s) URL or an RFC reference" in message


def test_row_without_meaning_is_refused() -> None:
    message = _refused(_rules_with('token = "acme two"\nreason = "blocked"\nsource = "RFC 5321"'))
    assert "[acme] row 2" in message
    assert "meaning" in message


def test_regex_that_does_not_compile_is_refused() -> None:
    message = _refused(
        _rules_with(
            "pattern = 'acme(?:two'\nwhy = \"varies\"\n"
            'reason = "blocked"\nmeaning = "x"\nsource = "RFC 5321"'
        )
    )
    assert "[acme] row 2" in message
    assert "does not compile" in message


def test_regex_with_a_capturing_group_is_refused() -> None:
    message = _refused(
        _rules_with(
            "pattern = 'acme (two|three)'\nwhy = \"varies\"\n"
            'reason = "blocked"\nmeaning = "x"\nsource = "RFC 5321"'
        )
    )
    assert "[acme] row 2" in message
    assert "capturing group" in message


def test_regex_that_matches_empty_text_is_refused() -> None:
    message = _refused(
        _rules_with(
            'pattern = \'a?\'\nwhy = "varies"\nreason = "blocked"\n'
            'meaning = "x"\nsource = "RFC 5321"'
        )
    )
    assert "[acme] row 2" in message
    assert "empty text" in message


def test_regex_with_uppercase_letters_is_refused() -> None:
    message = _refused(
        _rules_with(
            'pattern = \'ACME\\d+\'\nwhy = "varies"\nreason = "blocked"\n'
            'meaning = "x"\nsource = "RFC 5321"'
        )
    )
    assert "[acme] row 2" in message
    assert "lowercase" in message


def test_regex_without_why_is_refused() -> None:
    message = _refused(
        _rules_with(
            'pattern = \'acme\\d+\'\nreason = "blocked"\nmeaning = "x"\nsource = "RFC 5321"'
        )
    )
    assert "[acme] row 2" in message
    assert "why" in message


def test_why_on_a_plain_token_is_refused() -> None:
    message = _refused(
        _rules_with(
            'token = "acme two"\nwhy = "varies"\nreason = "blocked"\n'
            'meaning = "x"\nsource = "RFC 5321"'
        )
    )
    assert "[acme] row 2" in message


def test_row_with_both_token_and_pattern_is_refused() -> None:
    message = _refused(
        _rules_with(
            'token = "acme two"\npattern = \'acme\\d+\'\nwhy = "varies"\n'
            'reason = "blocked"\nmeaning = "x"\nsource = "RFC 5321"'
        )
    )
    assert "[acme] row 2" in message
    assert "exactly one of `token` and `pattern`" in message


def test_row_with_neither_token_nor_pattern_is_refused() -> None:
    message = _refused(_rules_with('reason = "blocked"\nmeaning = "x"\nsource = "RFC 5321"'))
    assert "[acme] row 2" in message
    assert "exactly one of `token` and `pattern`" in message


def test_duplicate_token_is_refused_naming_both_rows() -> None:
    document = _rules_with(
        'token = "ACME  Said no"\nreason = "filtered"\nmeaning = "x"\nsource = "RFC 5321"'
    )
    message = _refused(document)
    assert "[acme] row 2" in message
    assert "[acme] row 1" in message


def test_duplicate_token_across_providers_is_refused() -> None:
    document = (
        f"[acme]\n{_VALID_ROW}\n[other]\n[[other.rows]]\n"
        'token = "acme said no"\nreason = "blocked"\nmeaning = "x"\nsource = "RFC 5321"\n'
    )
    message = _refused(document)
    assert "[other] row 1" in message
    assert "[acme] row 1" in message


def test_token_that_does_not_start_a_word_is_refused() -> None:
    message = _refused(
        _rules_with('token = "[acme]"\nreason = "blocked"\nmeaning = "x"\nsource = "RFC 5321"')
    )
    assert "[acme] row 2" in message
    assert "letter or a digit" in message


def test_scoped_row_of_a_provider_without_domains_hosts_or_markers_is_refused() -> None:
    message = _refused(
        _rules_with(
            'token = "acme two"\nreason = "blocked"\nmeaning = "x"\n'
            'source = "RFC 5321"\nscoped = true',
            table="",
        )
    )
    assert "[acme] row 2" in message
    assert "scoped" in message


def test_unknown_row_key_is_refused() -> None:
    message = _refused(
        _rules_with(
            'token = "acme two"\nreasn = "blocked"\nreason = "blocked"\n'
            'meaning = "x"\nsource = "RFC 5321"'
        )
    )
    assert "[acme] row 2" in message
    assert "reasn" in message


def test_unknown_provider_key_is_refused() -> None:
    message = _refused(_rules_with('token = "acme two"', table='domain = ["acme.example"]'))
    assert "[acme]" in message
    assert "domain" in message


def test_provider_without_rows_is_refused() -> None:
    assert "[acme]" in _refused('[acme]\ndomains = ["acme.example"]\n')


def test_malformed_domain_is_refused() -> None:
    message = _refused(f'[acme]\ndomains = ["acme"]\n{_VALID_ROW}')
    assert "[acme]" in message
    assert "'acme'" in message


def test_text_that_is_not_toml_is_refused() -> None:
    assert "not valid TOML" in _refused("[acme\n")


# --- The shipped file ------------------------------------------------------------------------

_SOURCE = re.compile(r"https?://[^\s/]+\.[^\s/]+\S*|RFC \d+")


def test_shipped_file_loads_and_is_the_one_in_use() -> None:
    assert [row.token for row in load_rules_file(RULES_PATH).rows] == [
        row.token for row in RULES.rows
    ]
    assert len(RULES.rows) >= 100


@pytest.mark.parametrize("row", RULES.rows, ids=lambda row: f"{row.provider}-{row.number}")
def test_every_row_cites_a_url_or_an_rfc(row: ProviderRow) -> None:
    assert _SOURCE.match(row.source), row.source


def test_every_row_names_a_reason_of_the_vocabulary() -> None:
    assert all(isinstance(row.reason, Reason) for row in RULES.rows)


def test_provider_tables_list_every_domain_the_provider_label_gives_them() -> None:
    for table in RULES.providers:
        if table.name in {provider.value for provider in Provider}:
            labelled = {domain for domain, provider in PROVIDERS.items() if provider == table.name}
            assert labelled <= table.domains, table.name


# --- Each provider's documented replies ----------------------------------------------------

_DOCUMENTED = [
    # Google, as its SMTP error reference words them
    (
        (
            "550-5.1.1 The email account that you tried to reach does not exist. Please try"
            " double-checking the address. x12si - gsmtp"
        ),
        "gmail.com",
        "",
        "google",
        Reason.USER_UNKNOWN,
    ),
    (
        (
            "550 5.2.1 The email account that you tried to reach is inactive. For more information,"
            " go to https://support.google.com/mail/?p=DisabledUser - gsmtp"
        ),
        "example.org",
        "",
        "google",
        Reason.SUSPEND,
    ),
    (
        (
            "452-4.2.2 The recipient's inbox is out of storage space. Please direct the recipient"
            " to free up room. - gsmtp"
        ),
        "googlemail.com",
        "",
        "google",
        Reason.MAILBOX_FULL,
    ),
    (
        "450 4.2.1 The user you are trying to contact is receiving mail too quickly. - gsmtp",
        "gmail.com",
        "",
        "google",
        Reason.RATE_LIMITED,
    ),
    (
        (
            "421-4.7.0 [192.0.2.1] This message is suspicious due to the very low reputation of the"
            " sending IP address. - gsmtp"
        ),
        "gmail.com",
        "",
        "google",
        Reason.BAD_REPUTATION,
    ),
    (
        (
            "550-5.7.26 Unauthenticated email from shop.example is not accepted due to domain's"
            " DMARC policy. Please contact the administrator. - gsmtp"
        ),
        "workspace-customer.example",
        "aspmx.l.google.com",
        "google",
        Reason.AUTH_FAILURE,
    ),
    (
        "550-5.7.25 The IP address sending this message does not have a PTR record setup. - gsmtp",
        "workspace-customer.example",
        "",
        "google",
        Reason.REQUIRE_PTR,
    ),
    (
        (
            "550 5.7.28 There is an unusual rate of unsolicited mail originating from your IP"
            " address. To protect our users, mail sent from your IP address has been blocked."
            " - gsmtp"
        ),
        "gmail.com",
        "",
        "google",
        Reason.BLOCKED,
    ),
    (
        (
            "421-4.7.28 Gmail has detected an unusual rate of unsolicited mail originating from"
            " your SPF domain. - gsmtp"
        ),
        "gmail.com",
        "",
        "google",
        Reason.RATE_LIMITED,
    ),
    (
        (
            "550-5.7.28 There is an unusual rate of unsolicited email originating from your IP"
            " address. To protect our users from spam, email sent from your IP address has been"
            " blocked. - gsmtp"
        ),
        "gmail.com",
        "",
        "google",
        Reason.BLOCKED,
    ),
    (
        (
            "421-4.7.28 Gmail has detected an unusual rate of email originating from your IP"
            " address 192.0.2.1. To protect our users from spam, email sent from your IP address"
            " has been temporarily rate limited. - gsmtp"
        ),
        "gmail.com",
        "",
        "google",
        Reason.RATE_LIMITED,
    ),
    (
        (
            "550-5.7.30 This message was blocked because it didn't pass DKIM authentication. Gmail"
            " requires bulk email senders to authenticate their email with DKIM. - gsmtp"
        ),
        "gmail.com",
        "",
        "google",
        Reason.AUTH_FAILURE,
    ),
    (
        "421-4.7.29 Your email has been rate limited because you're not using a TLS connection.",
        "gmail.com",
        "",
        "google",
        Reason.FAILED_STARTTLS,
    ),
    (
        (
            "552-5.3.4 Your message exceeded Google's message header size limits. To view our"
            " header size guidelines, go to Gmail message header limits. - gsmtp"
        ),
        "googlemail.com",
        "",
        "google",
        Reason.EMAIL_TOO_LARGE,
    ),
    (
        (
            "553-5.1.3 The recipient address <jane@@example.com> is not a valid RFC 5321"
            " address. - gsmtp"
        ),
        "example.com",
        "aspmx.l.google.com",
        "google",
        Reason.USER_UNKNOWN,
    ),
    (
        "554 5.4.6 Message exceeded 50 hops, this may indicate an email loop. - gsmtp",
        "workspace-customer.example",
        "",
        "google",
        Reason.NETWORK_ERROR,
    ),
    (
        (
            "550-5.7.0 Email relay denied 192.0.2.1. Invalid credentials for relay for one of the"
            " domains in: shop.example (as obtained from HELO and MAIL FROM). - gsmtp"
        ),
        "example.net",
        "smtp-relay.gmail.com",
        "google",
        Reason.NO_RELAYING,
    ),
    (
        "550 5.7.1 This email has been rate limited. For more information, go to Limits. - gsmtp",
        "gmail.com",
        "",
        "google",
        Reason.RATE_LIMITED,
    ),
    (
        (
            "550-5.1.1 The email account that you tried to reach does not exist. Please try"
            " 550-5.1.1 double-checking the recipient's email address for typos or 550-5.1.1"
            " unnecessary spaces. Learn more at 550 5.1.1"
            " https://support.google.com/mail/?p=NoSuchUser a1si2 - gsmtp"
        ),
        "gmail.com",
        "",
        "google",
        Reason.USER_UNKNOWN,
    ),
    (
        # Only the first line of a wrapped reply survives in some DSNs; the link still tells.
        "550 5.7.1 https://support.google.com/mail/?p=UnsolicitedMessageError - gsmtp",
        "gmail.com",
        "",
        "google",
        Reason.SPAM_DETECTED,
    ),
    (
        "452 4.2.2 https://support.google.com/mail/?p=OverQuotaTemp b7si1 - gsmtp",
        "gmail.com",
        "",
        "google",
        Reason.MAILBOX_FULL,
    ),
    (
        "550 5.7.1 This message violates example.com email policy. - gcdp <abc> - gsmtp",
        "example.com",
        "",
        "google",
        Reason.POLICY_VIOLATION,
    ),
    # Microsoft
    (
        (
            "550 5.4.1 Recipient address rejected: Access denied. AS(201806281)"
            " [DB5EUR03FT014.eop-EUR03.prod.protection.outlook.com]"
        ),
        "contoso.example",
        "",
        "microsoft",
        Reason.USER_UNKNOWN,
    ),
    (
        (
            "550 5.7.1 Unfortunately, messages from [192.0.2.7] weren't sent. Please contact your"
            " Internet service provider since part of their network is on our block list (S3150)."
        ),
        "hotmail.com",
        "",
        "microsoft",
        Reason.BLOCKED,
    ),
    (
        (
            "451 4.7.650 The mail server [192.0.2.7] has been temporarily rate limited due to IP"
            " reputation. For e-mail delivery information, see https://aka.ms/postmaster (S775)"
        ),
        "outlook.com",
        "",
        "microsoft",
        Reason.BAD_REPUTATION,
    ),
    (
        "421 RP-002 (BAY0-MC1-F22) Unfortunately, some messages from 192.0.2.7 weren't sent.",
        "live.com",
        "",
        "microsoft",
        Reason.BAD_REPUTATION,
    ),
    (
        "550 DY-001 (SNT0-MC4-F3) Unfortunately, messages from 192.0.2.7 weren't sent.",
        "msn.com",
        "",
        "microsoft",
        Reason.BLOCKED,
    ),
    (
        (
            "550 5.7.515 Access denied, sending domain example.net doesn't meet the required"
            " authentication level."
        ),
        "",
        "hotmail-com.olc.protection.outlook.com",
        "microsoft",
        Reason.AUTH_FAILURE,
    ),
    (
        ("550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup"),
        "contoso.example",
        "contoso-example.mail.protection.outlook.com",
        "microsoft",
        Reason.USER_UNKNOWN,
    ),
    (
        "Remote Server returned '550 5.1.1 RESOLVER.ADR.RecipNotFound; not found'",
        "fabrikam.example",
        "",
        "microsoft",
        Reason.USER_UNKNOWN,
    ),
    (
        "550 5.5.0 Requested action not taken: mailbox unavailable. [BN1NAM02FT012.eop-nam02]",
        "outlook.com",
        "",
        "microsoft",
        Reason.USER_UNKNOWN,
    ),
    (
        (
            "550 5.7.708 Service unavailable. Access denied, traffic not accepted from this IP."
            " For more information please go to http://go.microsoft.com/fwlink/?LinkId=526653"
        ),
        "example.org",
        "",
        "microsoft",
        Reason.BAD_REPUTATION,
    ),
    (
        "550 5.7.750 Service unavailable. Client blocked from sending from unregistered domains",
        "example.org",
        "",
        "microsoft",
        Reason.REJECTED,
    ),
    (
        "550 5.7.511 Access denied, banned sender[192.0.2.7]. To request removal from this list",
        "contoso.example",
        "",
        "microsoft",
        Reason.BLOCKED,
    ),
    (
        "550 5.7.606 Access denied, banned sending IP [192.0.2.7]. To request removal from it",
        "contoso.example",
        "",
        "microsoft",
        Reason.BLOCKED,
    ),
    (
        "550 5.2.2 Submission quota exceeded",
        "contoso.example",
        "",
        "microsoft",
        Reason.RATE_LIMITED,
    ),
    (
        "554 5.4.14 Hop count exceeded - possible mail loop ATTR34",
        "contoso.example",
        "",
        "microsoft",
        Reason.NETWORK_ERROR,
    ),
    (
        "550 5.7.134 Sender was not authenticated for mailbox",
        "contoso.example",
        "",
        "microsoft",
        Reason.FILTERED,
    ),
    (
        (
            "550 5.7.133 RESOLVER.RST.SenderNotAuthenticatedForGroup; Sender not authenticated"
            " for group"
        ),
        "contoso.example",
        "",
        "microsoft",
        Reason.REJECTED,
    ),
    (
        (
            "550 5.7.509 Access denied, sending domain shop.example does not pass DMARC"
            " verification and has a DMARC policy of reject."
        ),
        "contoso.example",
        "",
        "microsoft",
        Reason.AUTH_FAILURE,
    ),
    (
        "550 5.7.512 Access denied, message must be RFC 5322 section 3.6.2 compliant",
        "contoso.example",
        "",
        "microsoft",
        Reason.NOT_COMPLIANT_RFC,
    ),
    (
        (
            "550 5.7.25 Access denied, the sending IPv6 address [2001:db8::1] must have a reverse"
            " DNS record"
        ),
        "contoso.example",
        "",
        "microsoft",
        Reason.REQUIRE_PTR,
    ),
    (
        "530 5.7.57 Client was not authenticated to send anonymous mail during MAIL FROM",
        "example.org",
        "smtp.office365.com",
        "microsoft",
        Reason.SECURITY_ERROR,
    ),
    (
        "550 5.7.64 TenantAttribution; Relay Access Denied",
        "example.org",
        "",
        "microsoft",
        Reason.NO_RELAYING,
    ),
    (
        (
            "451 4.7.321 starttls-not-supported: Destination mail server must support TLS to"
            " receive mail."
        ),
        "example.org",
        "",
        "microsoft",
        Reason.FAILED_STARTTLS,
    ),
    (
        "550 5.0.350 Requested action not taken: policy violation detected (AS345)",
        "contoso.example",
        "",
        "microsoft",
        Reason.POLICY_VIOLATION,
    ),
    (
        "550 5.0.350 x-dg-ref header is too long",
        "contoso.example",
        "",
        "microsoft",
        Reason.CONTENT_ERROR,
    ),
    (
        "550 Command rejected due to Sender ID validation failure",
        "hotmail.com",
        "",
        "microsoft",
        Reason.AUTH_FAILURE,
    ),
    # Yahoo
    (
        (
            "421 4.7.0 [TSS04] Messages from 192.0.2.9 temporarily deferred due to unexpected"
            " volume or user complaints - 4.16.55.1"
        ),
        "yahoo.com",
        "",
        "yahoo",
        Reason.BAD_REPUTATION,
    ),
    (
        "421 4.7.1 [TS03] All messages from 192.0.2.9 will be permanently deferred",
        "",
        "mta7.am0.yahoodns.net",
        "yahoo",
        Reason.BAD_REPUTATION,
    ),
    (
        "554 5.7.9 Message not accepted for policy reasons [PH01]",
        "aol.com",
        "",
        "yahoo",
        Reason.POLICY_VIOLATION,
    ),
    (
        "554 delivery error: dd This user doesn't have a yahoo.com account (x@yahoo.com) [0]",
        "yahoo.com",
        "",
        "yahoo",
        Reason.USER_UNKNOWN,
    ),
    (
        "451 Message temporarily deferred due to unresolvable RFC.5321 from domain",
        "ymail.com",
        "",
        "yahoo",
        Reason.REJECTED,
    ),
    # AOL, whose mail Yahoo now receives
    (
        "554 5.7.1 : (RLY:B1) http://postmaster.info.aol.com/errors/554rlyb1.html",
        "aol.com",
        "",
        "yahoo",
        Reason.BLOCKED,
    ),
    (
        "554 5.7.1 : (HVU:B1) http://postmaster.info.aol.com/errors/554hvub1.html",
        "example.org",
        "",
        "yahoo",
        Reason.SPAM_DETECTED,
    ),
    # Comcast
    (
        (
            "554 resimta-po-01.sys.comcast.net comcast 192.0.2.3 Comcast block for spam. Please see"
            " http://postmaster.comcast.net/smtp-error-codes.php#BL000010"
        ),
        "comcast.net",
        "",
        "comcast",
        Reason.BLOCKED,
    ),
    (
        "421 mx.comcast.net Too many sessions opened",
        "comcast.net",
        "",
        "comcast",
        Reason.RATE_LIMITED,
    ),
    (
        (
            "550 5.7.1 resimta-h1p-02.sys.comcast.net comcast 192.0.2.3 found on one or more"
            " DNSBLs, see http://postmaster.comcast.net/smtp-error-codes.php#BL006"
        ),
        "comcast.net",
        "",
        "comcast",
        Reason.BLOCKED,
    ),
    # Cox
    (
        "554 cxr.mx.a.cox.net cmsmtp 192.0.2.4 blocked. Refer to Error Codes section. AUP#CXBL",
        "cox.net",
        "",
        "cox",
        Reason.BLOCKED,
    ),
    (
        "554 cox.net cmsmtp IP address 192.0.2.4 is listed. AUP#IPBL0010",
        "cox.net",
        "",
        "cox",
        Reason.BLOCKED,
    ),
    # GMX / WEB.DE
    (
        (
            "554-gmx.net (mxgmx017) Nemesis ESMTP Service not available 554-No SMTP service"
            " 554-IP address is block listed."
        ),
        "gmx.de",
        "",
        "gmx",
        Reason.BLOCKED,
    ),
    # Yandex
    (
        "554 5.7.1 [2] Message rejected under suspicion of SPAM; https://ya.cc/1IrBc",
        "yandex.ru",
        "",
        "yandex",
        Reason.SPAM_DETECTED,
    ),
    (
        "550 5.7.1 Policy rejection on the target address",
        "yandex.com",
        "",
        "yandex",
        Reason.SUSPEND,
    ),
    (
        "552 5.2.2 Mailbox size limit exceeded",
        "yandex.ru",
        "",
        "yandex",
        Reason.MAILBOX_FULL,
    ),
    # Facebook
    (
        (
            "550 5.1.1 RCP-P1 https://www.facebook.com/postmaster/response_codes?ip=192.0.2.5#rcp"
            " Attempted to deliver to a non-existent address"
        ),
        "facebook.com",
        "",
        "facebook",
        Reason.USER_UNKNOWN,
    ),
    (
        "552 5.2.3 MSG-P1 message too large",
        "facebook.com",
        "",
        "facebook",
        Reason.EMAIL_TOO_LARGE,
    ),
    # GoDaddy
    (
        "421 p3plibsmtp01.prod.phx3.secureserver.net server temporarily unavailable. IB101",
        "small-business.example",
        "",
        "godaddy",
        Reason.SYSTEM_ERROR,
    ),
    # Mimecast, Proofpoint, Barracuda
    (
        "550 Envelope blocked - User Entry - https://community.mimecast.com/docs/DOC-1369#550",
        "customer.example",
        "",
        "mimecast",
        Reason.FILTERED,
    ),
    (
        "550 Rejected by header based Anti-Spoofing policy: boss@customer.example",
        "customer.example",
        "",
        "mimecast",
        Reason.POLICY_VIOLATION,
    ),
    (
        "554 5.7.0 Blocked - see https://ipcheck.proofpoint.com/?ip=192.0.2.6",
        "customer.example",
        "",
        "proofpoint",
        Reason.BLOCKED,
    ),
    (
        (
            "554 Service unavailable; Client host [192.0.2.6] blocked using Barracuda Reputation;"
            " https://www.barracudanetworks.com/reputation/?r=1&ip=192.0.2.6"
        ),
        "customer.example",
        "",
        "barracuda",
        Reason.BLOCKED,
    ),
]


@pytest.mark.parametrize(
    ("text", "domain", "host", "provider", "reason"),
    _DOCUMENTED,
    ids=[f"{case[3]}-{case[4]}-{i}" for i, case in enumerate(_DOCUMENTED)],
)
def test_documented_reply_gives_the_documented_reason(
    text: str, domain: str, host: str, provider: str, reason: Reason
) -> None:
    verdict = provider_reason(text, domain, host)
    assert verdict is not None
    assert (verdict.provider, verdict.reason) == (provider, reason)


def test_every_provider_table_has_a_documented_reply_above() -> None:
    assert {table.name for table in RULES.providers} == {case[3] for case in _DOCUMENTED}


def test_verdict_names_the_token_and_its_source() -> None:
    verdict = provider_reason("421 RP-001 rate limited", "outlook.com")
    assert verdict == ProviderVerdict(
        Reason.BAD_REPUTATION,
        "microsoft",
        "rp-001",
        "https://sendersupport.olc.protection.outlook.com/pm/troubleshooting.aspx"
        " (SMTP Error Codes: 421 RP-001)",
    )


# --- Conditions: a token that only counts for its provider ---------------------------------


@pytest.mark.parametrize(
    ("text", "domain", "host"),
    [
        # Postfix writes these words for a check_recipient_access refusal.
        ("554 5.7.1 <x@example.org>: Recipient address rejected: Access denied", "example.org", ""),
        ("421 4.7.0 [TS01] deferred", "example.org", "mx.example.org"),
        ("550 Comcast? no: BL000010", "example.org", ""),
        ("554 AUP#CXBL", "example.net", "mx.notcox.net"),
        ("550 SC-001 refused", "example.org", ""),
        ("550 RCP-P1 unknown", "example.org", ""),
        ("421 server busy IB101", "example.org", ""),
        ("550 5.7.515 denied", "example.org", ""),
        ("550 rejected by a gcdp rule", "example.org", ""),
        # RFC 5321's words, which Microsoft gives 5.5.0 only for its consumer domains.
        ("550 5.5.0 Requested action not taken: mailbox unavailable", "example.org", ""),
        # Submission servers write these words for a missing SMTP AUTH.
        ("530 5.7.0 Sender was not authenticated", "example.org", "mx.example.org"),
        ("550 5.7.1 This email has been rate limited.", "example.org", ""),
        ("554 5.7.1 (RLY:B1) blocked", "example.org", ""),
        ("554 5.7.1 (RTR:DU) blocked", "example.net", "mx.example.net"),
        ("554 5.7.1 (HVU:B1) blocked", "example.org", ""),
        ("550 blocked BL006", "example.org", ""),
        ("552 Mailbox size limit exceeded", "example.org", ""),
    ],
)
def test_scoped_token_does_not_fire_for_other_providers(text: str, domain: str, host: str) -> None:
    assert provider_reason(text, domain, host) is None


@pytest.mark.parametrize(
    ("domain", "host", "text"),
    [
        ("hotmail.co.uk", "", "550 5.4.1 Recipient address rejected: Access denied"),
        (
            "",
            "contoso-com.mail.protection.outlook.com",
            "550 5.4.1 Recipient address rejected: Access denied",
        ),
        (
            "",
            "CONTOSO-COM.MAIL.PROTECTION.OUTLOOK.COM.",
            "550 5.4.1 Recipient address rejected: Access denied",
        ),
        (
            "",
            "",
            (
                "host eur.olc.protection.outlook.com[192.0.2.8] said:"
                " 550 5.4.1 Recipient address rejected: Access denied"
            ),
        ),
    ],
)
def test_scoped_token_counts_by_domain_host_or_host_named_in_the_reply(
    domain: str, host: str, text: str
) -> None:
    verdict = provider_reason(text, domain, host)
    assert verdict is not None
    assert verdict.reason is Reason.USER_UNKNOWN


def test_host_suffix_must_end_a_host_name() -> None:
    text = "550 5.4.1 Recipient address rejected: Access denied"
    assert provider_reason(text, "", "outlook.com.attacker.example") is None
    assert provider_reason(text, "", "notoutlook.com") is None
    assert provider_reason(text + " via outlook.com.attacker.example", "", "") is None


# --- Generic replies are left to the generic lexicon ---------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "550 5.1.1 user unknown",
        "550 5.1.1 <neko@example.jp>: Recipient address rejected: User unknown in local table",
        "452 4.2.2 Mailbox full",
        "554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org",
        "421 4.7.0 Too many connections, slow down",
        "550 5.7.26 DMARC policy rejection",
        "",
        "   ",
    ],
)
def test_generic_reply_gives_no_provider_verdict(text: str) -> None:
    assert provider_reason(text, "example.jp", "mx.example.jp") is None


# --- How a reply is read ---------------------------------------------------------------------


def test_matching_ignores_case_and_folds_whitespace() -> None:
    text = "THE EMAIL ACCOUNT THAT\tYOU TRIED\n  TO REACH DOES NOT EXIST"
    verdict = provider_reason(text)
    assert verdict is not None
    assert verdict.reason is Reason.USER_UNKNOWN


def test_multi_line_reply_is_read_across_its_line_prefixes() -> None:
    text = (
        "550-5.1.1 The email account that you tried to reach does\n"
        "550-5.1.1 not exist. Please try double-checking the recipient's email\n"
        "550 5.1.1 address for typos. x1si.2 - gsmtp"
    )
    verdict = provider_reason(text, "gmail.com")
    assert verdict is not None
    assert verdict.reason is Reason.USER_UNKNOWN


def test_typographic_apostrophe_reads_like_a_plain_one() -> None:
    verdict = provider_reason("553 5.1.2 We weren\u2019t able to find the recipient domain.")
    assert verdict is not None
    assert verdict.reason is Reason.HOST_UNKNOWN


def test_token_matches_only_at_word_boundaries() -> None:
    assert provider_reason("421 see posts01 and xts01 and ts012", "yahoo.com") is None
    assert provider_reason("554 AUP#CXBLX", "cox.net") is None


def test_first_row_in_file_order_wins_when_several_match() -> None:
    rules = load_rules(
        """
[acme]
[[acme.rows]]
token = "mailbox unavailable"
reason = "suspend"
meaning = "x"
source = "RFC 5321"

[[acme.rows]]
token = "your mailbox unavailable"
reason = "userunknown"
meaning = "x"
source = "RFC 5321"
"""
    )
    verdict = rules.reason("550 your mailbox unavailable")
    assert verdict is not None
    assert verdict.reason is Reason.SUSPEND


def test_scoped_row_that_does_not_apply_leaves_a_later_row_at_the_same_place() -> None:
    rules = load_rules(
        """
[acme]
domains = ["acme.example"]
[[acme.rows]]
token = "access denied"
reason = "userunknown"
meaning = "x"
source = "RFC 5321"
scoped = true

[[acme.rows]]
token = "access denied by policy"
reason = "policyviolation"
meaning = "x"
source = "RFC 5321"
"""
    )
    elsewhere = rules.reason("550 access denied by policy", "example.org")
    at_acme = rules.reason("550 access denied by policy", "acme.example")
    assert elsewhere is not None
    assert at_acme is not None
    assert (elsewhere.reason, at_acme.reason) == (Reason.POLICY_VIOLATION, Reason.USER_UNKNOWN)


def test_long_repetitive_reply_is_read_quickly() -> None:
    text = "the email account that you tried   " * 20_000 + " to reach does not exist"
    started = time.perf_counter()
    verdict = provider_reason(text)
    elapsed = time.perf_counter() - started
    assert verdict is not None
    assert verdict.reason is Reason.USER_UNKNOWN
    assert elapsed < 0.5
