"""Recipient domain normalization and the bounded domain label."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from exporter.domains import (
    OTHER,
    PROVIDERS,
    DomainLabels,
    InvalidDomainError,
    Provider,
    impossible,
    normalize_domain,
    parse_domains,
    read_domains_file,
)


@pytest.mark.parametrize(
    ("raw", "domain"),
    [
        ("Example.COM", "example.com"),
        ("example.com.", "example.com"),
        (" example.com ", "example.com"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("BÜCHER.example", "xn--bcher-kva.example"),
        ("straße.de", "xn--strae-oqa.de"),
        ("[192.0.2.1]", "[192.0.2.1]"),
        ("[IPv6:2001:db8::1]", "[ipv6:2001:db8::1]"),
        ("under_score.example", "under_score.example"),
    ],
)
def test_domains_are_lowercased_idna_encoded_and_lose_the_trailing_dot(
    raw: str, domain: str
) -> None:
    assert normalize_domain(raw) == domain


@pytest.mark.parametrize(
    "raw", ["", ".", "exa mple.com", "example..com", "-example.com", "a" * 64 + ".com", "x" * 300]
)
def test_invalid_domains_are_refused(raw: str) -> None:
    with pytest.raises(InvalidDomainError):
        normalize_domain(raw)


def test_providers_always_get_their_own_label_even_with_a_zero_cap() -> None:
    labels = DomainLabels(0)
    assert labels.label("gmail.com") == (("gmail.com", Provider.GOOGLE), False)
    assert labels.label("hotmail.co.uk") == (("hotmail.co.uk", Provider.MICROSOFT), False)
    assert labels.label("example.com") == ((OTHER, Provider.OTHER), True)


def test_first_n_other_domains_keep_their_label_then_overflow_into_other() -> None:
    labels = DomainLabels(2)
    assert labels.label("a.example") == (("a.example", Provider.OTHER), False)
    assert labels.label("b.example") == (("b.example", Provider.OTHER), False)
    assert labels.label("c.example") == ((OTHER, Provider.OTHER), True)
    # Domains that claimed a value keep it after the cap is reached.
    assert labels.label("a.example") == (("a.example", Provider.OTHER), False)
    assert labels.claimed == 2


@pytest.mark.parametrize("reserved", ["other", "unknown"])
def test_a_domain_named_like_a_reserved_label_value_never_claims_it(reserved: str) -> None:
    labels = DomainLabels(5)
    assert labels.label(reserved) == ((OTHER, Provider.OTHER), False)
    assert labels.claimed == 0


@pytest.mark.parametrize(
    ("domain", "reason"),
    [
        ("[192.0.2.1]", "RFC 5321 section 4.1.3"),
        ("[ipv6:2001:db8::1]", "RFC 5321 section 4.1.3"),
        ("localhost", "RFC 5321 section 2.3.5"),
        ("example", "RFC 5321 section 2.3.5"),
        ("under_score.example", "no underscores"),
        ("_dmarc.example.com", "no underscores"),
        ("example.123", "top-level label is alphabetic"),
        ("example.c0m", "top-level label is alphabetic"),
        ("192.0.2.1", "top-level label is alphabetic"),
        ("xn--zz.example", "not a valid IDNA A-label"),
        ("example.xn--zz", "not a valid IDNA A-label"),
        ("mail.invalid", "RFC 6761"),
        ("mail.localhost", "RFC 6761"),
    ],
)
def test_domains_that_cannot_exist_in_the_dns_say_why(domain: str, reason: str) -> None:
    why = impossible(domain)
    assert why is not None
    assert reason in why


@pytest.mark.parametrize(
    "domain",
    [
        "gmail.com",
        "b.example",
        "mail.example.co.uk",
        "1und1.de",
        "xn--bcher-kva.example",
        "example.xn--p1ai",
        "a-b.example",
        "163.com",
    ],
)
def test_domains_that_can_exist_are_not_refused(domain: str) -> None:
    assert impossible(domain) is None


def test_junk_domains_never_claim_a_slot_and_are_not_an_overflow() -> None:
    labels = DomainLabels(2)
    for junk in ["[192.0.2.1]", "localhost", "under_score.example", "example.123", "a.invalid"]:
        assert labels.label(junk) == ((OTHER, Provider.OTHER), False)
    assert labels.claimed == 0
    assert labels.label("a.example") == (("a.example", Provider.OTHER), False)
    assert labels.label("b.example") == (("b.example", Provider.OTHER), False)
    assert labels.label("c.example") == ((OTHER, Provider.OTHER), True)


def test_listed_domains_keep_their_value_without_using_up_the_limit() -> None:
    labels = DomainLabels(1, listed=["corp.example", "gmail.com"])
    assert labels.label("corp.example") == (("corp.example", Provider.OTHER), False)
    assert labels.label("gmail.com") == (("gmail.com", Provider.GOOGLE), False)
    assert labels.claimed == 0
    assert labels.label("a.example") == (("a.example", Provider.OTHER), False)
    assert labels.label("b.example") == ((OTHER, Provider.OTHER), True)
    assert labels.label("corp.example") == (("corp.example", Provider.OTHER), False)
    assert set(labels.fixed) == set(PROVIDERS) | {"corp.example"}
    assert labels.fixed["gmail.com"] is Provider.GOOGLE


def test_domains_file_lines_are_normalized_and_comments_ignored() -> None:
    text = """# our own domains
    Corp.Example.   # the main one
    bücher.example

    corp.example
    gmail.com
    """
    assert parse_domains(text.splitlines(), "domains.txt") == (
        "corp.example",
        "xn--bcher-kva.example",
        "gmail.com",
    )


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("exa mple.com", "domains.txt:3: 'exa mple.com' is not a domain"),
        ("[192.0.2.1]", "domains.txt:3: '[192.0.2.1]' cannot be a mail domain: an address literal"),
        ("intranet", "domains.txt:3: 'intranet' cannot be a mail domain: a single label"),
        ("my_host.example", "domains.txt:3: 'my_host.example' cannot be a mail domain: a host"),
        ("example.42", "domains.txt:3: 'example.42' cannot be a mail domain: the top-level"),
    ],
)
def test_an_invalid_domains_file_line_is_refused_naming_the_line(line: str, error: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(error)):
        parse_domains(["# header", "ok.example", line], "domains.txt")


def test_a_domains_file_that_cannot_be_read_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot be read"):
        read_domains_file(tmp_path / "missing.txt")
    listed = tmp_path / "domains.txt"
    listed.write_text("corp.example\n", encoding="utf-8")
    assert read_domains_file(listed) == ("corp.example",)


def test_every_provider_domain_is_normalized_and_maps_to_a_named_provider() -> None:
    assert all(normalize_domain(domain) == domain for domain in PROVIDERS)
    assert Provider.OTHER not in PROVIDERS.values()
    # Every provider but the catch-all runs at least one listed domain.
    assert set(PROVIDERS.values()) == set(Provider) - {Provider.OTHER}
