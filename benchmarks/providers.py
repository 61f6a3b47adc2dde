"""How often the provider layer speaks on the corpus, how often it agrees, and how fast it is.

``python -m benchmarks.providers`` runs :func:`exporter.mail.providers.provider_reason` over
the descriptions of the shared corpus's ``failures.jsonl`` (with each recipient's domain; the
corpus names no remote host) and prints, per provider, how many failures a row matched and
how often its reason is the corpus verdict. It measures; rows are never tuned to it.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchmarks import corpus_dir
from benchmarks.failures import load_cases
from exporter.mail import classify_failure
from exporter.mail.providers import provider_reason

#: Default bound of each speed run.
SPEED_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class ProviderFigures:
    """What one provider's rows did on the corpus."""

    provider: str
    matched: int
    agreed: int
    #: ``(corpus reason, provider reason, token, count)`` for every disagreement.
    disagreements: tuple[tuple[str, str, str, int], ...]


@dataclass(frozen=True, slots=True)
class Figures:
    """The layer on the whole corpus, and its speed beside the classifier's."""

    cases: int
    matched: int
    agreed: int
    providers: tuple[ProviderFigures, ...]
    #: Calls of the layer alone, per second, on one thread.
    layer_per_second: float
    #: ``classify_failure``, which runs the layer inside its one scan of the reply.
    classifier_per_second: float


def _rate(calls: int, run: Callable[[], None], seconds: float) -> float:
    """Calls per second of ``run``, which makes ``calls`` calls each time."""
    rounds = 0
    started = time.perf_counter()
    elapsed = 0.0
    while rounds == 0 or elapsed < seconds:
        run()
        rounds += 1
        elapsed = time.perf_counter() - started
    return rounds * calls / elapsed


def measure(corpus: Path, *, seconds: float = SPEED_SECONDS) -> Figures:
    """Run the layer once per case for agreement, then repeatedly for speed."""
    cases = load_cases(corpus)
    if not cases:
        raise ValueError(f"no cases in {corpus / 'failures.jsonl'}")
    matched: Counter[str] = Counter()
    agreed: Counter[str] = Counter()
    wrong: Counter[tuple[str, str, str, str]] = Counter()
    for case in cases:
        verdict = provider_reason(case.description, case.domain)
        if verdict is None:
            continue
        matched[verdict.provider] += 1
        if verdict.reason == case.expected_reason:
            agreed[verdict.provider] += 1
        else:
            wrong[verdict.provider, case.expected_reason, verdict.reason, verdict.token] += 1

    providers = tuple(
        ProviderFigures(
            provider=name,
            matched=count,
            agreed=agreed[name],
            disagreements=tuple(
                (expected, got, token, n)
                for (who, expected, got, token), n in sorted(wrong.items(), key=lambda i: -i[1])
                if who == name
            ),
        )
        for name, count in sorted(matched.items(), key=lambda i: (-i[1], i[0]))
    )

    def layer() -> None:
        for case in cases:
            provider_reason(case.description, case.domain)

    def classifier() -> None:
        for case in cases:
            classify_failure(
                case.state, case.code, case.extended, case.description, domain=case.domain
            )

    return Figures(
        cases=len(cases),
        matched=sum(matched.values()),
        agreed=sum(agreed.values()),
        providers=providers,
        layer_per_second=_rate(len(cases), layer, seconds),
        classifier_per_second=_rate(len(cases), classifier, seconds),
    )


def report(figures: Figures) -> str:
    """The figures as lines for a terminal."""
    share = figures.matched / figures.cases
    agreement = figures.agreed / figures.matched if figures.matched else 0.0
    lines = [
        f"provider layer on {figures.cases} cases of failures.jsonl",
        f"  matched by a provider row        {figures.matched:4d} ({share:6.1%})",
        f"  reason agrees with the corpus    {figures.agreed:4d} ({agreement:6.1%} of matched)",
        "  per provider (matched, agreeing)",
    ]
    for provider in figures.providers:
        lines.append(f"    {provider.provider:<12} {provider.matched:4d} {provider.agreed:4d}")
        lines += [
            f"      corpus {expected} -> {got} ({token!r}): {count}"
            for expected, got, token, count in provider.disagreements
        ]
    lines += [
        f"  speed  layer alone        {figures.layer_per_second:>12,.0f} calls/s on one thread",
        f"         classifier, layer in   {figures.classifier_per_second:>8,.0f} classifications/s",
    ]
    return "\n".join(lines)


def main() -> int:
    corpus = corpus_dir()
    if corpus is None:
        print("skipped: no bounce corpus at ../shared/corpus (set SMTPETER_CORPUS)")
        return 0
    print(report(measure(corpus)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
