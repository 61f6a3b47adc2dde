"""The accuracy benchmarks' reports: held-out figures apart, per family, single-match rows."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import failures, rules
from benchmarks.agreement import FamilyTally, family_lines, family_of, held_out, tally


def test_a_family_is_the_file_name_without_its_number() -> None:
    assert family_of("bounces/lhost-postfix-07.eml") == "lhost-postfix"
    assert family_of("bounces/rfc3464-12.eml") == "rfc3464"
    assert family_of("bounces/arf.eml") == "arf"


def test_tally_counts_each_family_and_puts_the_largest_first() -> None:
    families = tally([("b", True, True), ("a", False, True), ("b", False, False)])
    assert families == (FamilyTally("b", 2, 1, 1), FamilyTally("a", 1, 0, 1))
    lines = family_lines(families)
    assert lines[1].split() == ["b", "2", "50%", "50%"]
    assert lines[2].split() == ["a", "1", "0%", "100%"]


def test_the_held_out_report_gives_totals_per_family_but_no_misses(corpus_dir: Path) -> None:
    extra = held_out(corpus_dir)
    if extra is None:
        pytest.skip("this corpus has no extra/ set")
    figures = failures.measure(extra, max_rounds=1, name="held-out extra/")
    text = failures.report(figures, misses=False)
    assert "held-out extra/" in text
    assert "disagreements" not in text
    assert sum(f.cases for f in figures.families) == figures.cases
    for family in figures.families:
        assert family.family in text


def test_every_rule_row_is_counted_once(corpus_dir: Path) -> None:
    figures = rules.measure(corpus_dir)
    assert figures.count(0) + figures.count(1) + figures.more == len(figures.rows)
    assert figures.descriptions >= 300
    text = rules.report(figures, listing=True)
    assert f"matching exactly one  {figures.count(1):4d}" in text
    assert text.count("\n    ") == figures.count(1)
