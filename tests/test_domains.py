"""Recipient domain normalization and the bounded domain label."""

from __future__ import annotations

import pytest

from exporter.domains import (
    OTHER,
    PROVIDER_DOMAINS,
    DomainLabels,
    InvalidDomainError,
    normalize_domain,
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
    assert labels.label("gmail.com") == ("gmail.com", False)
    assert labels.label("example.com") == (OTHER, True)


def test_first_n_other_domains_keep_their_label_then_overflow_into_other() -> None:
    labels = DomainLabels(2)
    assert labels.label("a.example") == ("a.example", False)
    assert labels.label("b.example") == ("b.example", False)
    assert labels.label("c.example") == (OTHER, True)
    # Domains that claimed a value keep it after the cap is reached.
    assert labels.label("a.example") == ("a.example", False)
    assert labels.claimed == 2


def test_provider_list_is_normalized_and_has_no_duplicates() -> None:
    assert len(set(PROVIDER_DOMAINS)) == len(PROVIDER_DOMAINS)
    assert all(normalize_domain(domain) == domain for domain in PROVIDER_DOMAINS)
