"""How many corpus failures each rule row matches: a row that matches exactly one is suspect.

A wording phrase or provider row written from a source's general phrase matches wherever servers
say it; a row shaped around one sample matches that sample and nothing else. This counts,
for every row of ``wording.toml`` and ``providers.toml``, the descriptions of the corpus's
``failures.jsonl`` in which it occurs on its own (as the matcher reads them), and prints how
many rows match none, exactly one, and more. ``python -m benchmarks.rules`` lists the rows
matching exactly one, so that each can be checked against its source.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from benchmarks import corpus_dir
from exporter.mail.matcher import Matcher, Wins
from exporter.mail.providers import RULES
from exporter.mail.rulebook import WORDING


@dataclass(frozen=True, slots=True)
class RowMatches:
    """One rule row, where it is written, and how many corpus descriptions it matches."""

    where: str
    source: str
    matches: int


@dataclass(frozen=True, slots=True)
class RuleFigures:
    descriptions: int
    rows: tuple[RowMatches, ...]

    def count(self, matches: int) -> int:
        return sum(row.matches == matches for row in self.rows)

    @property
    def more(self) -> int:
        return sum(row.matches > 1 for row in self.rows)


def _rows() -> list[tuple[str, str, str]]:
    """Every phrase and pattern of the wording rules, and every provider row, on its own."""
    rows = [
        (
            f"wording.toml [{rule.table}] rule {rule.number} ({rule.value}): {text!r}",
            rule.source,
            expression,
        )
        for table in WORDING.tables
        for rule in table.rules
        for text, expression in zip(
            (*rule.phrases, *rule.patterns), rule.expressions(), strict=True
        )
    ]
    rows += [
        (
            f"providers.toml [{row.provider}] row {row.number}: {row.token!r}",
            row.source,
            row.expression,
        )
        for row in RULES.rows
    ]
    return rows


def measure(corpus: Path) -> RuleFigures:
    """Match every row alone against every description of ``failures.jsonl``."""
    with (corpus / "failures.jsonl").open(encoding="utf-8") as lines:
        descriptions = [
            str(json.loads(line).get("description", "")) for line in lines if line.strip()
        ]
    results = []
    for where, source, expression in _rows():
        matcher = Matcher([(Wins.FIRST_IN_ORDER, [[expression]])])
        matches = sum(matcher.find(text)[0] is not None for text in descriptions)
        results.append(RowMatches(where, source, matches))
    return RuleFigures(len(descriptions), tuple(results))


def report(figures: RuleFigures, *, listing: bool = False) -> str:
    lines = [
        (
            f"rule rows against {figures.descriptions} corpus descriptions "
            f"({len(figures.rows)} phrases and patterns of wording.toml, rows of providers.toml)"
        ),
        f"  matching none         {figures.count(0):4d}",
        f"  matching exactly one  {figures.count(1):4d}",
        f"  matching more         {figures.more:4d}",
    ]
    if listing:
        lines += [f"    {row.where}: {row.source}" for row in figures.rows if row.matches == 1]
    return "\n".join(lines)


def main() -> int:
    corpus = corpus_dir()
    if corpus is None:
        print("skipped: no bounce corpus at ../shared/corpus (set SMTPETER_CORPUS)")
        return 0
    print(report(measure(corpus), listing=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
