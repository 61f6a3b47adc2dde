"""Failed recipients, as the readers found them, classified into facts."""

from __future__ import annotations

from collections.abc import Iterator

from exporter.mail.bounces.notices import command_in
from exporter.mail.bounces.report import MAX_DESCRIPTION, MAX_FACTS, BounceFact, Failure
from exporter.mail.bounces.text import enhanced_in, fold, reply_code_in
from exporter.mail.classifier import classify_failure
from exporter.mail.smtp import unwrap_reply


def facts(failures: list[Failure], dialogue_state: str) -> Iterator[BounceFact]:
    """Classified facts, one per recipient; ``dialogue_state`` is the stage that a quoted SMTP
    dialogue says failed, for recipients whose own text does not say."""
    seen: set[str] = set()
    for failure in failures:
        if not failure.recipient or failure.recipient in seen or len(seen) >= MAX_FACTS:
            continue
        seen.add(failure.recipient)
        yield _fact(failure, dialogue_state)


def _fact(failure: Failure, dialogue_state: str) -> BounceFact:
    description = fold(unwrap_reply(failure.diagnostic[: MAX_DESCRIPTION * 4]))
    code = reply_code_in(description)
    status = enhanced_in(description) or enhanced_in(failure.status)
    state = command_in(failure.diagnostic) or command_in(failure.context) or dialogue_state
    verdict = classify_failure(state, code, status, description)
    return BounceFact(
        failure.recipient, status, code, state, description, verdict.reason, verdict.bounce_type
    )
