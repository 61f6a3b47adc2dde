"""How well and how fast ``exporter.mail.bounces`` reads the shared bounce corpus.

Agreement is measured against Sisimai's verdicts in ``bounces.jsonl``: the fraction of its
recipients we also find, and over those, how often the status, reason and hard/soft verdict
agree. Speed is messages per second on one core, reading every message in turn.

Run ``python -m benchmarks.bounces``: it prints the corpus and, separately, its held-out
``extra/`` set, each with agreement per family; the tests call :func:`measure` and assert
floors on the corpus.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from benchmarks import corpus_dir
from benchmarks.agreement import FamilyTally, family_lines, family_of, held_out, tally
from exporter.mail import BounceFact, BounceType, read_bounce

#: How long the speed measurement runs, and at most how many passes over the corpus it makes.
SECONDS: Final = 2.0
MAX_PASSES: Final = 1000

# Sisimai's stand-in for "the report names no recipient"; we report those with recipient "".
_SISIMAI_NO_RECIPIENT: Final = "@libsisimai.org.invalid"


@dataclass(frozen=True, slots=True)
class BounceFigures:
    """Agreement with Sisimai (fractions of 1) and speed on the corpus."""

    #: Which set: the corpus, or its held-out ``extra/``.
    name: str
    messages: int
    #: Sisimai's recipients, and the fraction of them we found too.
    recipients: int
    recipients_found: float
    #: Statuses compared (Sisimai gave one, and not a private x.x.9xx), and how many agree.
    statuses: int
    status_agreement: float
    #: Over the recipients found: same reason, same hard/soft verdict.
    reason_agreement: float
    hard_soft_agreement: float
    #: Per family, over the recipients found.
    families: tuple[FamilyTally, ...]
    messages_per_second: float


@dataclass(frozen=True, slots=True)
class _Expected:
    recipient: str
    status: str
    reason: str
    hard: bool


def _cases(corpus: Path) -> Iterator[tuple[str, bytes, list[_Expected]]]:
    with (corpus / "bounces.jsonl").open(encoding="utf-8") as lines:
        for line in lines:
            row = json.loads(line)
            expected = [
                _Expected(f["recipient"].lower(), f["status"], f["reason"], bool(f["hardbounce"]))
                for f in row["facts"]
            ]
            yield row["file"], (corpus / row["file"]).read_bytes(), expected


def _comparable_status(status: str) -> bool:
    """Sisimai's own codes (detail 900 and up) say nothing the message said."""
    parts = status.split(".")
    return len(parts) == 3 and parts[2].isdigit() and int(parts[2]) < 900


def _ours(facts: tuple[BounceFact, ...], recipient: str) -> BounceFact | None:
    found = {fact.recipient.lower(): fact for fact in facts}
    if recipient.endswith(_SISIMAI_NO_RECIPIENT):
        return found.get("")
    return found.get(recipient)


def measure(
    corpus: Path, seconds: float = SECONDS, *, max_passes: int = MAX_PASSES, name: str = "corpus"
) -> BounceFigures:
    """Read every corpus message, compare with Sisimai, then time repeated passes."""
    cases = list(_cases(corpus))
    recipients = found = statuses = status_agree = reason_agree = hard_agree = 0
    outcomes: list[tuple[str, bool, bool]] = []
    for source, raw, expected in cases:
        facts = read_bounce(raw).facts
        for want in expected:
            recipients += 1
            fact = _ours(facts, want.recipient)
            if fact is None:
                continue
            found += 1
            if want.status and _comparable_status(want.status):
                statuses += 1
                status_agree += fact.status == want.status
            same_reason = fact.reason == want.reason
            same_type = (fact.bounce_type is BounceType.HARD) == want.hard
            reason_agree += same_reason
            hard_agree += same_type
            outcomes.append((family_of(source), same_reason, same_type))

    raws = [raw for _, raw, _ in cases]
    read = 0
    started = time.perf_counter()
    for _ in range(max_passes):
        for raw in raws:
            read_bounce(raw)
        read += len(raws)
        if time.perf_counter() - started >= seconds:
            break
    elapsed = time.perf_counter() - started

    return BounceFigures(
        name=name,
        messages=len(cases),
        recipients=recipients,
        recipients_found=found / recipients if recipients else 0.0,
        statuses=statuses,
        status_agreement=status_agree / statuses if statuses else 0.0,
        reason_agreement=reason_agree / found if found else 0.0,
        hard_soft_agreement=hard_agree / found if found else 0.0,
        families=tally(outcomes),
        messages_per_second=read / elapsed if elapsed > 0 else 0.0,
    )


def report(figures: BounceFigures) -> str:
    """The figures as the README's benchmark section shows them."""
    return "\n".join(
        (
            (
                f"bounce reader on the {figures.name}: {figures.messages} messages, "
                f"{figures.recipients} recipients"
            ),
            f"  recipients found    {figures.recipients_found:7.1%}",
            (
                f"  status agreement    {figures.status_agreement:7.1%}"
                f"  (of {figures.statuses} statuses the messages give)"
            ),
            f"  reason agreement    {figures.reason_agreement:7.1%}",
            f"  hard/soft agreement {figures.hard_soft_agreement:7.1%}",
            f"  speed               {figures.messages_per_second:7.0f} messages/s (one core)",
            "  per family (over the recipients found)",
            *family_lines(figures.families),
        )
    )


def main() -> int:
    """Print the figures, or say why there are none."""
    corpus = corpus_dir()
    if corpus is None:
        print("bounce corpus not found (set SMTPETER_CORPUS); skipping the bounce benchmark")
        return 0
    print(report(measure(corpus)))
    extra = held_out(corpus)
    if extra is not None:
        print(report(measure(extra, max_passes=1, name="held-out extra/")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
