"""RFC 5965 feedback reports (ARF) and Microsoft JMRP complaints: one fact per complaint."""

from __future__ import annotations

from exporter.mail.bounces.mime import Parts, content_type, first, parse_headers
from exporter.mail.bounces.report import MAX_FACTS, BounceFact, BounceReport
from exporter.mail.bounces.text import addresses, fold
from exporter.mail.classifier import bounce_type_of
from exporter.mail.vocabulary import Reason


def feedback_report(recipients: list[str], feedback_type: str, text: str) -> BounceReport:
    """One ``feedback`` fact per complained-about recipient ("" when the report hides it)."""
    description = fold(text)
    bounce_type = bounce_type_of(Reason.FEEDBACK, "", "")
    facts = tuple(
        BounceFact(recipient, "", "", "", description, Reason.FEEDBACK, bounce_type)
        for recipient in (recipients or [""])[:MAX_FACTS]
    )
    return BounceReport("feedback", facts, feedback_type=feedback_type.lower())


def arf_report(parts: Parts, text: str) -> BounceReport | None:
    """An RFC 5965 report, or a Microsoft JMRP complaint (the original with a recipient header)."""
    report_type = content_type(first(parts.headers, "content-type"))[1].get("report-type", "")
    jmrp = [h for h in parts.originals if "x-hmxmroriginalrecipient" in h]
    if not parts.feedback and report_type.lower() != "feedback-report" and not jmrp:
        return None
    fields = parse_headers("\n".join(parts.feedback))
    recipients = addresses(fields.get("original-rcpt-to", []))
    recipients = recipients or addresses(fields.get("removal-recipient", []))
    for original in parts.originals:
        recipients = recipients or addresses(original.get("x-hmxmroriginalrecipient", []))
        recipients = recipients or addresses(original.get("to", []) + original.get("cc", []))
    feedback_type = first(fields, "feedback-type").split(maxsplit=1)[0:1]
    default = "abuse" if jmrp else "other"
    return feedback_report(recipients, feedback_type[0] if feedback_type else default, text)
