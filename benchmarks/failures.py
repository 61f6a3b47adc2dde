"""How the failure classifier agrees with Sisimai, and how fast it is.

``python -m benchmarks.failures`` prints the figures for the shared corpus's
``failures.jsonl`` and, separately, for its held-out ``extra/`` set, each with its agreement
per family; ``tests/test_corpus_failures.py`` holds the corpus figures above a floor.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import corpus_dir
from benchmarks.agreement import FamilyTally, family_lines, family_of, held_out, tally
from exporter.domains import domain_of
from exporter.mail import BounceType, classify_failure
from exporter.mail.smtp import normalize_state

#: Default bounds of the speed run: whichever is reached first ends it.
SPEED_SECONDS = 1.0
SPEED_MAX_ROUNDS = 5_000


@dataclass(frozen=True, slots=True)
class FailureCase:
    """One line of ``failures.jsonl``: what the webhook carries, and Sisimai's verdict."""

    source: str
    state: str
    code: str
    extended: str
    description: str
    #: The recipient's domain, as the webhook's event carries it ("" when it has none).
    domain: str
    expected_reason: str
    expected_hard: bool


@dataclass(frozen=True, slots=True)
class FailureFigures:
    """Agreement with Sisimai (fractions from 0 to 1) and classification speed."""

    #: Which set: ``failures.jsonl`` of the corpus, or of its held-out ``extra/``.
    name: str
    cases: int
    reason_agreement: float
    hardsoft_agreement: float
    #: ``(Sisimai's reason, ours, count)`` for every disagreement, most frequent first.
    confusion: tuple[tuple[str, str, int], ...]
    families: tuple[FamilyTally, ...]
    classifications_per_second: float


def load_cases(corpus: Path) -> list[FailureCase]:
    """Read ``failures.jsonl`` from ``corpus``, with the state normalized as the webhook's is."""
    with (corpus / "failures.jsonl").open(encoding="utf-8") as lines:
        return [_case(json.loads(line)) for line in lines if line.strip()]


def _case(row: dict[str, Any]) -> FailureCase:
    expect = row["expect"]
    return FailureCase(
        source=str(row.get("source", "")),
        state=normalize_state(str(row.get("command", ""))),
        code=str(row.get("code", "")),
        extended=str(row.get("extended", "")),
        description=str(row.get("description", "")),
        domain=domain_of(str(row.get("recipient", ""))) or "",
        expected_reason=str(expect["reason"]),
        expected_hard=bool(expect["hardbounce"]),
    )


def measure(
    corpus: Path,
    *,
    seconds: float = SPEED_SECONDS,
    max_rounds: int = SPEED_MAX_ROUNDS,
    name: str = "corpus",
) -> FailureFigures:
    """Classify every case once for agreement, then repeatedly for speed.

    The speed run classifies the whole corpus again and again on this one thread until
    ``seconds`` have passed or ``max_rounds`` rounds are done.
    """
    cases = load_cases(corpus)
    if not cases:
        raise ValueError(f"no cases in {corpus / 'failures.jsonl'}")
    same_reason = same_type = 0
    confusion: Counter[tuple[str, str]] = Counter()
    outcomes: list[tuple[str, bool, bool]] = []
    for case in cases:
        verdict = classify_failure(
            case.state, case.code, case.extended, case.description, domain=case.domain
        )
        agrees = verdict.reason == case.expected_reason
        if not agrees:
            confusion[case.expected_reason, verdict.reason] += 1
        hard_agrees = (verdict.bounce_type is BounceType.HARD) == case.expected_hard
        same_reason += agrees
        same_type += hard_agrees
        outcomes.append((family_of(case.source), agrees, hard_agrees))

    inputs = [(c.state, c.code, c.extended, c.description, c.domain) for c in cases]
    rounds = 0
    started = time.perf_counter()
    elapsed = 0.0
    while rounds < max_rounds and (rounds == 0 or elapsed < seconds):
        for state, code, extended, description, domain in inputs:
            classify_failure(state, code, extended, description, domain=domain)
        rounds += 1
        elapsed = time.perf_counter() - started

    return FailureFigures(
        name=name,
        cases=len(cases),
        reason_agreement=same_reason / len(cases),
        hardsoft_agreement=same_type / len(cases),
        confusion=tuple(
            (expected, got, count)
            for (expected, got), count in sorted(confusion.items(), key=lambda i: (-i[1], i[0]))
        ),
        families=tally(outcomes),
        classifications_per_second=rounds * len(cases) / elapsed,
    )


def report(figures: FailureFigures, *, misses: bool = True) -> str:
    """The figures as lines for a terminal or the README.

    ``misses=False`` leaves out which reasons disagreed: the held-out set is measured, never
    studied, so its report stops at the totals per family.
    """
    lines = [
        f"failure classifier on {figures.cases} cases of {figures.name} failures.jsonl",
        f"  reason agreement with Sisimai     {figures.reason_agreement:6.1%}",
        f"  hard/soft agreement with Sisimai  {figures.hardsoft_agreement:6.1%}",
        f"  speed  {figures.classifications_per_second:,.0f} classifications/s on one thread",
        "  per family",
        *family_lines(figures.families),
    ]
    if misses and figures.confusion:
        lines.append("  disagreements (Sisimai -> ours: count)")
        lines += [f"    {expected} -> {got}: {count}" for expected, got, count in figures.confusion]
    return "\n".join(lines)


def main() -> int:
    corpus = corpus_dir()
    if corpus is None:
        print("skipped: no bounce corpus at ../shared/corpus (set SMTPETER_CORPUS)")
        return 0
    print(report(measure(corpus)))
    extra = held_out(corpus)
    if extra is not None:
        print(report(measure(extra, max_rounds=1, name="held-out extra/"), misses=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
