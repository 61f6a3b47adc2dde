"""The bounce reader against Sisimai's verdicts on the shared corpus, with regression floors.

The floors sit a point or two under the figures reached when they were set (see the README's
benchmark section), so an ordinary change passes and a regression in reading or classifying
bounces fails. Raise them when the figures rise; never lower them to make a change pass.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.bounces import BounceFigures, measure

RECIPIENTS_FOUND_FLOOR = 0.97  # reached: 0.985 (334 of 339)
STATUS_AGREEMENT_FLOOR = 0.97  # reached: 0.988 (of 251)
REASON_AGREEMENT_FLOOR = 0.805  # reached: 0.817, every rule cited
HARD_SOFT_AGREEMENT_FLOOR = 0.93  # reached: 0.940


@pytest.fixture(scope="module")
def figures(corpus_dir: Path) -> BounceFigures:
    return measure(corpus_dir, seconds=0.2)


def test_every_corpus_message_is_read(figures: BounceFigures) -> None:
    assert figures.messages == 320
    assert figures.recipients == 339


def test_recipients_found_stay_above_the_floor(figures: BounceFigures) -> None:
    assert figures.recipients_found >= RECIPIENTS_FOUND_FLOOR


def test_status_agreement_stays_above_the_floor(figures: BounceFigures) -> None:
    assert figures.statuses >= 240
    assert figures.status_agreement >= STATUS_AGREEMENT_FLOOR


def test_reason_agreement_stays_above_the_floor(figures: BounceFigures) -> None:
    assert figures.reason_agreement >= REASON_AGREEMENT_FLOOR


def test_hard_soft_agreement_stays_above_the_floor(figures: BounceFigures) -> None:
    assert figures.hard_soft_agreement >= HARD_SOFT_AGREEMENT_FLOOR


def test_speed_is_measured(figures: BounceFigures) -> None:
    assert figures.messages_per_second > 0
