"""Agreement tallied by family of message: which MTA or provider wrote the bounce.

The corpus names each message after where it comes from (``bounces/lhost-postfix-07.eml``:
a Postfix bounce; ``rhost-outlook``: a reply from Outlook's servers; ``rfc3464``, ``arf``):
the family is that name without its number. A total hides a family the rules do not know;
the benchmarks print one line per family so that it shows.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

_NUMBERED: Final = re.compile(r"[-_]?\d+$")


def family_of(source: str) -> str:
    """``lhost-postfix`` for ``bounces/lhost-postfix-07.eml``."""
    return _NUMBERED.sub("", Path(source).stem) or Path(source).stem


def held_out(corpus: Path) -> Path | None:
    """The corpus's held-out set (``extra/``, same layout), if it has one."""
    extra = corpus / "extra"
    return extra if (extra / "failures.jsonl").is_file() else None


@dataclass(frozen=True, slots=True)
class FamilyTally:
    """How many cases of one family there were, and how many agreed on reason and hard/soft."""

    family: str
    cases: int
    same_reason: int
    same_type: int


def tally(outcomes: Iterable[tuple[str, bool, bool]]) -> tuple[FamilyTally, ...]:
    """Per family, from ``(family, same reason, same hard/soft)``; largest family first."""
    cases: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    types: Counter[str] = Counter()
    for family, same_reason, same_type in outcomes:
        cases[family] += 1
        reasons[family] += same_reason
        types[family] += same_type
    return tuple(
        FamilyTally(family, count, reasons[family], types[family])
        for family, count in sorted(cases.items(), key=lambda item: (-item[1], item[0]))
    )


def family_lines(families: Iterable[FamilyTally], indent: str = "    ") -> list[str]:
    """One aligned line per family: cases, reason agreement, hard/soft agreement."""
    header = f"{indent}{'family':<26} {'cases':>5} {'reason':>7} {'hard/soft':>9}"
    return [header] + [
        f"{indent}{f.family:<26} {f.cases:>5} {f.same_reason / f.cases:>7.0%}"
        f" {f.same_type / f.cases:>9.0%}"
        for f in families
    ]
