"""Failed recipients, as the readers found them, classified into facts."""

from __future__ import annotations

from collections.abc import Iterator

from exporter.mail.bounces.notices import command_in, refused_command
from exporter.mail.bounces.replies import failure_reply, failure_status
from exporter.mail.bounces.report import MAX_DESCRIPTION, MAX_FACTS, BounceFact, Failure
from exporter.mail.bounces.text import fold
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
    diagnostic = unwrap_reply(failure.diagnostic[: MAX_DESCRIPTION * 4])
    reply = failure_reply(diagnostic)  # before folding: a reply may start a line
    code, status = reply.code, reply.status or failure_status(failure.status)
    description = fold(diagnostic)
    dialogue = [line.strip() for line in diagnostic.split("\n")] if ">>>" in diagnostic else []
    state = (  # a quoted dialogue's refusal says best, then what the text says, then the notice
        refused_command(dialogue)
        or command_in(description)
        or command_in(failure.context)
        or dialogue_state
    )
    domain = failure.recipient.rpartition("@")[2]  # the provider layer folds it
    verdict = classify_failure(state, code, status, description, domain=domain, host=failure.host)
    return BounceFact(
        failure.recipient, status, code, state, description, verdict.reason, verdict.bounce_type
    )
