"""The precedence table's conflicts: every example is decided the way the table says."""

from __future__ import annotations

import pytest

from exporter.mail import classify_failure
from exporter.mail.precedence import CORRECTIONS, RESOLUTIONS, Correction, Resolution, markdown
from exporter.mail.vocabulary import Reason


@pytest.mark.parametrize("resolution", RESOLUTIONS, ids=lambda r: r.winner + "-over-" + r.loser)
def test_each_conflict_is_decided_as_the_table_says(resolution: Resolution) -> None:
    state, code, status, text, domain = resolution.example
    assert classify_failure(state, code, status, text, domain=domain).reason is resolution.winner


@pytest.mark.parametrize("resolution", RESOLUTIONS, ids=lambda r: r.winner + "-over-" + r.loser)
def test_each_conflict_names_real_reasons_a_place_and_a_why(resolution: Resolution) -> None:
    assert resolution.winner is not resolution.loser
    assert resolution.decided_by
    assert resolution.why
    assert resolution.conflict


def test_the_losing_reading_is_real_without_the_deciding_evidence() -> None:
    # Without the recipient's provider, the access-denied wording is not Microsoft's: the
    # 5.4.1 correction decides, and without the RCPT stage the status reads as expiry.
    text = "Recipient address rejected: Access denied"
    assert classify_failure("", "550", "5.4.1", text).reason is Reason.EXPIRED
    assert classify_failure("rcpt", "450", "4.4.1", text).reason is not Reason.USER_UNKNOWN
    # An expiry that names no network failure stays an expiry.
    assert classify_failure("", "", "4.4.7", "retry timeout exceeded").reason is Reason.EXPIRED
    # A temporary failure whose text names a cause keeps that cause.
    assert classify_failure("data", "452", "", "Mailbox full").reason is Reason.MAILBOX_FULL
    # A failure that says nothing at all, with no code, stays undefined.
    assert classify_failure("", "", "", "").reason is Reason.UNDEFINED


def test_corrections_apply_in_the_order_listed() -> None:
    assert [adjustment.correction for adjustment in CORRECTIONS] == list(Correction)


def test_the_conflicts_render_for_the_readme() -> None:
    table = markdown()
    for resolution in RESOLUTIONS:
        assert f"| {resolution.conflict} |" in table
        assert f"| `{resolution.winner}` | `{resolution.loser}` |" in table
