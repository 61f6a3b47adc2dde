"""Recipient domain normalization and the bounded domain label."""

from __future__ import annotations

import pytest

from exporter.domains import (
    OTHER,
    PROVIDERS,
    DomainLabels,
    InvalidDomainError,
    Provider,
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
    assert DomainLabels(5).label(reserved) == ((OTHER, Provider.OTHER), True)


def test_every_provider_domain_is_normalized_and_maps_to_a_named_provider() -> None:
    assert all(normalize_domain(domain) == domain for domain in PROVIDERS)
    assert Provider.OTHER not in PROVIDERS.values()
    # Every provider but the catch-all runs at least one listed domain.
    assert set(PROVIDERS.values()) == set(Provider) - {Provider.OTHER}
