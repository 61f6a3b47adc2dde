"""Raw bounce messages and ARF complaint reports, read into one fact per failed recipient.

SMTPeter's *bounces* webhook hands over the whole returned message (``mime``) and its *abuses*
webhook an ARF report; neither says in a field which recipient failed or why. This finds out,
so that an asynchronous bounce is counted with the same state, codes and reason as a failure
SMTPeter saw during the SMTP conversation: it tries the readers in turn (ARF, RFC 3464 reports,
Amazon SES, auto-replies, plain-text notices) on the parts the MIME walk found.
"""

from __future__ import annotations

from exporter.mail.bounces.arf import arf_report
from exporter.mail.bounces.autoreply import autoreply_report, is_autoreply
from exporter.mail.bounces.dsn import dsn_groups, failures_from_groups, names_recipient
from exporter.mail.bounces.facts import facts
from exporter.mail.bounces.mime import Parts, decode_words, first, read_mime
from exporter.mail.bounces.notices import (
    BOUNCE_WORDING,
    Notice,
    announces_bounce,
    cut_original,
    text_failures,
    unquote,
)
from exporter.mail.bounces.report import MAX_EXCERPT, BounceReport, Failure
from exporter.mail.bounces.ses import ses_report
from exporter.mail.bounces.text import fold


def _report_failures(parts: Parts, notice: Notice, text: str) -> list[Failure] | None:
    """Failed recipients of an RFC 3464 report, or of report fields quoted in the text;
    None when there is no report, [] when it reports only successful deliveries."""
    groups = [g for report in parts.reports for g in dsn_groups(report, embedded=False)]
    if not names_recipient(groups) and "-recipient" in text.lower():
        groups = dsn_groups(text, embedded=True)
    if not names_recipient(groups):  # none, or only unreadable ones: the text has to say
        return None
    failures = failures_from_groups(groups)
    for failure in failures:
        failure.context = notice.context(failure.recipient)
        failure.diagnostic = notice.complete(failure.diagnostic) or notice.explain(
            failure.recipient
        )
    return failures


def _read(raw: bytes) -> BounceReport:
    parts = read_mime(raw)
    headers = parts.headers
    subject = decode_words(first(headers, "subject"))
    full_text = "\n\n".join(parts.texts or parts.html)
    text, inline_original = cut_original(unquote(full_text))
    originals = [*parts.originals, inline_original] if inline_original else parts.originals

    feedback = arf_report(parts, text)
    if feedback is not None:
        return feedback
    notice = Notice(text)
    failures = _report_failures(parts, notice, text)
    if failures is not None:
        state = notice.dialogue_state(len(failures))
        return BounceReport("dsn", tuple(facts(failures, state)))
    if "notificationType" in text or "eventType" in text:  # SES, bare or in an SNS envelope
        ses = ses_report(text)
        if ses is not None:
            return ses
    # Bounces carry "Auto-Submitted: auto-replied" too, so an auto-reply is one that comes
    # from someone other than a mail system; what it says may well sound like a bounce.
    announced = announces_bounce(headers, subject)
    if not announced and is_autoreply(headers, subject):
        return autoreply_report(headers, subject, full_text)
    if announced or BOUNCE_WORDING.search(text[:4000]) is not None:
        failures = text_failures(notice, headers, originals)
        if failures:
            state = notice.dialogue_state(len(failures))
            return BounceReport("dsn", tuple(facts(failures, state)))
    return BounceReport("unrecognized", (), excerpt=fold(f"{subject} | {full_text}", MAX_EXCERPT))


def read_bounce(raw: bytes) -> BounceReport:
    """Read a raw bounce, ARF report or auto-reply; never raises on malformed input."""
    try:
        return _read(raw)
    except (ValueError, LookupError):  # a codec or a decoder on input nobody foresaw
        return BounceReport("unrecognized", (), excerpt=fold(raw[:MAX_EXCERPT].decode("latin-1")))
