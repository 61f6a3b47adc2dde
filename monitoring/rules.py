"""Prometheus recording and alert rules, generated from :mod:`monitoring.config`.

Recording rules hold what dashboards and alerts share, named ``level:metric:operations``:

* ``instance_*:...:rate5m`` keep ``job`` and ``instance`` (so dashboards can pick one
  replica) and drop ``domain``;
* ``job_*:...`` sum over instances, for alerts, and hold the ratios.

Every ratio divides only by a denominator above zero, and exists only for a job that
received deliveries within ``deliveries_seen_within`` (without the deliveries webhook a
failure rate is always 100 % and means nothing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from exporter import catalog
from exporter.catalog import Label
from exporter.errors import REFUSED, UNAVAILABLE, Outcome
from exporter.events import Kind
from monitoring.config import Config, RatioThreshold, Severity, seconds
from monitoring.promql import by, eq, matchers, not_regex, regex, series

#: The dashboards alerts link to (their uids are fixed, see ``monitoring.dashboards``).
OVERVIEW_UID: Final = "smtpeter-deliverability"
OVERVIEW_SLUG: Final = "smtpeter-deliverability-overview"
HEALTH_UID: Final = "smtpeter-exporter-health"
HEALTH_SLUG: Final = "smtpeter-exporter-health"

RECORDING_GROUP: Final = "smtpeter-exporter.recording"
ALERTS_GROUP: Final = "smtpeter-exporter.alerts"
ALERT_PREFIX: Final = "SMTPeter"

ACCEPTED: Final = eq(Label.OUTCOME, Outcome.ACCEPTED)
SENT_KINDS: Final = regex(Label.KIND, (Kind.FAILURE, Kind.DELIVERY))


@dataclass(frozen=True, slots=True)
class Record:
    """A recording rule, with what it holds in one line (for the README)."""

    name: str
    expr: str
    meaning: str


@dataclass(frozen=True, slots=True)
class Alert:
    name: str
    expr: str
    severity: Severity
    summary: str
    description: str
    for_: str = "0m"
    dashboard: tuple[str, str] = (OVERVIEW_UID, OVERVIEW_SLUG)
    #: The alert has a ``provider`` label, passed on to the dashboard link.
    per_provider: bool = False


# Names of the recorded series, for the dashboards and the tests.
EVENTS_BY_KIND: Final = "instance_kind:smtpeter_events:rate5m"
REQUESTS_BY_OUTCOME: Final = "instance_kind_outcome:smtpeter_webhook_requests:rate5m"
FAILURES_BY_PROVIDER: Final = "instance_provider:smtpeter_failures:rate5m"
DELIVERIES_BY_PROVIDER: Final = "instance_provider:smtpeter_deliveries:rate5m"
OPENS_BY_PROVIDER: Final = "instance_provider:smtpeter_opens:rate5m"
CLICKS_BY_PROVIDER: Final = "instance_provider:smtpeter_clicks:rate5m"
REASONS_BY_PROVIDER: Final = "instance_provider_reason:smtpeter_failure_reasons:rate5m"
COMPLAINTS_BY_PROVIDER: Final = "instance_provider_feedback_type:smtpeter_complaints:rate5m"
JOB_EVENTS_BY_KIND: Final = "job_kind:smtpeter_events:rate5m"
JOB_REASONS: Final = "job_reason:smtpeter_failure_reasons:rate5m"
JOB_PROVIDER_FAILURES: Final = "job_provider:smtpeter_failures:rate5m"
JOB_PROVIDER_SENT: Final = "job_provider:smtpeter_sent:rate5m"
JOB_PROVIDER_FAILURE_RATIO: Final = "job_provider:smtpeter_failures_per_sent:ratio_rate5m"
JOB_PROVIDER_BLOCKS: Final = "job_provider:smtpeter_blocks:rate5m"
JOB_PROVIDER_BLOCK_RATIO: Final = "job_provider:smtpeter_blocks_per_sent:ratio_rate5m"
JOB_FAILURES: Final = "job:smtpeter_failures:rate5m"
JOB_SENT: Final = "job:smtpeter_sent:rate5m"
JOB_BLOCKS: Final = "job:smtpeter_blocks:rate5m"
JOB_FAILURE_RATIO: Final = "job:smtpeter_failures_per_sent:ratio_rate5m"
JOB_HARD_SHARE: Final = "job:smtpeter_hard_failures_per_failures:ratio_rate5m"
JOB_KIND_REJECTED: Final = "job_kind:smtpeter_webhook_requests_rejected:rate5m"
JOB_KIND_REJECTED_RATIO: Final = (
    "job_kind:smtpeter_webhook_requests_rejected_per_requests:ratio_rate5m"
)


def _window_names(config: Config) -> dict[str, str]:
    """Names of the long-window rules, whose windows come from the configuration."""
    fail, hard, complaint = config.failure_rate, config.hard_bounce_rate, config.complaint_rate
    baseline = config.spike_baseline_window
    offset = _baseline_offset(config)
    return {
        "baseline_ratio": f"job:smtpeter_failures_per_sent:ratio_rate{baseline}_offset{offset}",
        "baseline_sent": f"job:smtpeter_sent:increase{baseline}_offset{offset}",
        "failure_ratio": f"job:smtpeter_failures_per_sent:ratio_rate{fail.window}",
        "failure_sent": f"job:smtpeter_sent:increase{fail.window}",
        "hard_ratio": f"job:smtpeter_hard_failures_per_sent:ratio_rate{hard.window}",
        "hard_sent": f"job:smtpeter_sent:increase{hard.window}",
        "complaint_ratio": f"job:smtpeter_complaints_per_deliveries:ratio_rate{complaint.window}",
        "complaint_deliveries": f"job:smtpeter_deliveries:increase{complaint.window}",
    }


def _baseline_offset(config: Config) -> str:
    """The baseline ends where the sustain window's first rate window begins."""
    return f"{(seconds(config.spike_sustain) + config.rate_seconds) // 60}m"


def recording_rules(config: Config) -> list[Record]:
    """Every recording rule, in dependency order (one group evaluates them in turn)."""
    s = config.selector
    w = config.rate_window
    names = _window_names(config)
    blocking = regex(Label.REASON, config.blocking_reasons)
    rejected = regex(Label.OUTCOME, rejected_outcomes(config))
    # Probes are left out of the denominator too, or a scanner would dilute real refusals.
    answered = matchers(not_regex(Label.OUTCOME, config.rejected_ignored))
    deliveries_seen = (
        f"(max_over_time({JOB_EVENTS_BY_KIND}{matchers(eq(Label.KIND, Kind.DELIVERY))}"
        f"[{config.deliveries_seen_within}]) > 0)"
    )

    def per_instance(spec: catalog.MetricSpec, *labels: Label) -> str:
        keep = by("job", "instance", *labels)
        return f"sum {keep} (rate({series(spec, s)}[{w}]))"

    def requests_increase(kinds: str, window: str, offset: str = "") -> str:
        shift = f" offset {offset}" if offset else ""
        spec = series(catalog.REQUESTS, s, ACCEPTED, kinds)
        return f"sum by (job) (increase({spec}[{window}]{shift}))"

    def guarded_ratio(numerator: str, denominator: str) -> str:
        return f"{numerator}\n/\n({denominator} > 0)\nand on (job)\n{deliveries_seen}"

    offset = _baseline_offset(config)
    baseline = config.spike_baseline_window
    fail_w = config.failure_rate.window
    hard_w = config.hard_bounce_rate.window
    complaint_w = config.complaint_rate.window
    return [
        Record(
            EVENTS_BY_KIND,
            f"sum by (job, instance, kind) (rate({series(catalog.REQUESTS, s, ACCEPTED)}[{w}]))",
            "accepted events per second, by webhook kind",
        ),
        Record(
            REQUESTS_BY_OUTCOME,
            per_instance(catalog.REQUESTS, Label.KIND, Label.OUTCOME),
            "webhook requests per second, by kind and outcome",
        ),
        Record(
            FAILURES_BY_PROVIDER,
            per_instance(catalog.FAILURES, Label.PROVIDER),
            "failed deliveries per second, by provider",
        ),
        Record(
            DELIVERIES_BY_PROVIDER,
            per_instance(catalog.DELIVERIES, Label.PROVIDER),
            "deliveries per second, by provider",
        ),
        Record(
            OPENS_BY_PROVIDER,
            per_instance(catalog.OPENS, Label.PROVIDER),
            "opens per second, by provider",
        ),
        Record(
            CLICKS_BY_PROVIDER,
            per_instance(catalog.CLICKS, Label.PROVIDER),
            "clicks per second, by provider",
        ),
        Record(
            REASONS_BY_PROVIDER,
            per_instance(catalog.FAILURE_REASONS, Label.PROVIDER, Label.REASON, Label.BOUNCE_TYPE),
            "failed deliveries per second, by provider, reason and hard/soft",
        ),
        Record(
            COMPLAINTS_BY_PROVIDER,
            per_instance(catalog.COMPLAINTS, Label.PROVIDER, Label.FEEDBACK_TYPE),
            "complaints per second, by provider and feedback type",
        ),
        Record(
            JOB_EVENTS_BY_KIND,
            f"sum by (job, kind) ({EVENTS_BY_KIND})",
            "accepted events per second, by kind, over all instances",
        ),
        Record(
            JOB_REASONS,
            f"sum by (job, reason, bounce_type) ({REASONS_BY_PROVIDER})",
            "failed deliveries per second, by reason and hard/soft",
        ),
        Record(
            JOB_PROVIDER_FAILURES,
            f"sum by (job, provider) ({FAILURES_BY_PROVIDER})",
            "failed deliveries per second, by provider",
        ),
        Record(
            JOB_PROVIDER_SENT,
            f"{JOB_PROVIDER_FAILURES}\n+ on (job, provider)\n"
            f"sum by (job, provider) ({DELIVERIES_BY_PROVIDER})",
            "sent messages (failures + deliveries) per second, by provider",
        ),
        Record(
            JOB_PROVIDER_FAILURE_RATIO,
            guarded_ratio(JOB_PROVIDER_FAILURES, JOB_PROVIDER_SENT),
            "failure (bounce) rate by provider: failures / (failures + deliveries)",
        ),
        Record(
            JOB_PROVIDER_BLOCKS,
            f"sum by (job, provider) ({REASONS_BY_PROVIDER}{matchers(blocking)})",
            "failures per second for a blocking reason, by provider",
        ),
        Record(
            JOB_PROVIDER_BLOCK_RATIO,
            guarded_ratio(JOB_PROVIDER_BLOCKS, JOB_PROVIDER_SENT),
            "share of the mail sent to a provider that failed for a blocking reason",
        ),
        Record(
            JOB_FAILURES,
            f"sum by (job) ({JOB_PROVIDER_FAILURES})",
            "failed deliveries per second",
        ),
        Record(
            JOB_SENT,
            f"sum by (job) ({JOB_PROVIDER_SENT})",
            "sent messages (failures + deliveries) per second",
        ),
        Record(
            JOB_BLOCKS,
            f"sum by (job) ({JOB_PROVIDER_BLOCKS})",
            "failures per second for a blocking reason",
        ),
        Record(
            JOB_FAILURE_RATIO,
            guarded_ratio(JOB_FAILURES, JOB_SENT),
            "failure (bounce) rate: failures / (failures + deliveries)",
        ),
        Record(
            JOB_HARD_SHARE,
            f"sum by (job) ({JOB_REASONS}{matchers(eq(Label.BOUNCE_TYPE, 'hard'))})\n/\n"
            f"(sum by (job) ({JOB_REASONS}) > 0)",
            "hard-bounce share: hard failures / all failures",
        ),
        Record(
            JOB_KIND_REJECTED,
            f"sum by (job, kind) ({REQUESTS_BY_OUTCOME}{matchers(rejected)})",
            "webhook requests per second refused for what was posted (4xx but 404 and 405)",
        ),
        Record(
            JOB_KIND_REJECTED_RATIO,
            f"{JOB_KIND_REJECTED}\n/\n(sum by (job, kind) ({REQUESTS_BY_OUTCOME}{answered}) > 0)",
            "share of each kind's webhook requests (404 and 405 aside) refused for what was posted",
        ),
        Record(
            names["baseline_sent"],
            requests_increase(SENT_KINDS, baseline, offset),
            f"messages sent in the {baseline} before the last {offset} (the spike baseline)",
        ),
        Record(
            names["baseline_ratio"],
            guarded_ratio(
                requests_increase(eq(Label.KIND, Kind.FAILURE), baseline, offset),
                names["baseline_sent"],
            ),
            f"failure rate over the {baseline} before the last {offset} (the spike baseline)",
        ),
        Record(
            names["failure_sent"],
            requests_increase(SENT_KINDS, fail_w),
            f"messages sent in the last {fail_w}",
        ),
        Record(
            names["failure_ratio"],
            guarded_ratio(
                requests_increase(eq(Label.KIND, Kind.FAILURE), fail_w), names["failure_sent"]
            ),
            f"failure rate over the last {fail_w}",
        ),
        *(
            ()
            if hard_w == fail_w
            else (
                Record(
                    names["hard_sent"],
                    requests_increase(SENT_KINDS, hard_w),
                    f"messages sent in the last {hard_w}",
                ),
            )
        ),
        Record(
            names["hard_ratio"],
            guarded_ratio(
                f"sum by (job) (increase("
                f"{series(catalog.FAILURE_REASONS, s, eq(Label.BOUNCE_TYPE, 'hard'))}[{hard_w}]))",
                names["hard_sent"],
            ),
            f"hard bounces / sent messages over the last {hard_w}",
        ),
        Record(
            names["complaint_deliveries"],
            requests_increase(eq(Label.KIND, Kind.DELIVERY), complaint_w),
            f"deliveries in the last {complaint_w}",
        ),
        Record(
            names["complaint_ratio"],
            f"{requests_increase(eq(Label.KIND, Kind.ABUSE), complaint_w)}\n/\n"
            f"({names['complaint_deliveries']} > 0)",
            f"complaint rate: complaints / deliveries over the last {complaint_w}",
        ),
    ]


def rejected_outcomes(config: Config) -> list[str]:
    """The outcomes the rejected-requests alert counts: every 4xx but the ignored probes."""
    return sorted(outcome for outcome in REFUSED if outcome not in config.rejected_ignored)


def _percent(value: float) -> str:
    return f"{value * 100:g} %"


def _ratio_alerts(
    name: str,
    threshold: RatioThreshold,
    *,
    ratio: str,
    volume: str,
    what: str,
    why: str,
) -> list[Alert]:
    levels = [(Severity.WARNING, threshold.warning)]
    if threshold.critical is not None:
        levels.append((Severity.CRITICAL, threshold.critical))
    return [
        Alert(
            name,
            f"{ratio} > {level}\nand on (job)\n{volume} >= {threshold.min_volume}",
            severity,
            f"{what} of {{{{ $labels.job }}}} is {{{{ $value | humanizePercentage }}}} "
            f"(over {_percent(level)} for {threshold.for_})",
            f"{what} over the last {threshold.window} is {{{{ $value | humanizePercentage }}}}, "
            f"above the {severity} threshold of {_percent(level)}, with at least "
            f"{threshold.min_volume} messages in the window. {why}",
            threshold.for_,
        )
        for severity, level in levels
    ]


def alert_rules(config: Config) -> list[Alert]:
    s = config.selector
    names = _window_names(config)
    sustain = config.spike_sustain
    rate = config.rate_seconds
    provider_filter = matchers(not_regex(Label.PROVIDER, config.provider_excluded))
    others = config.provider_others_ratio
    most_blocked = (
        f"(\n  ({JOB_BLOCKS} - on (job) group_right {JOB_PROVIDER_BLOCKS})\n"
        f"  /\n  (({JOB_SENT} - on (job) group_right {JOB_PROVIDER_SENT}) > 0)\n"
        f"  > {others}\n"
        f"  and on (job)\n"
        f"  quantile by (job) (0.5, {JOB_PROVIDER_BLOCK_RATIO}{provider_filter}) > {others}\n)"
    )
    last_event = f"max_over_time({series(catalog.LAST_EVENT, s)}[{config.silence_lookback}])"
    return [
        Alert(
            f"{ALERT_PREFIX}FailureRateSpike",
            f"min_over_time({JOB_FAILURE_RATIO}[{sustain}])\n"
            f"  > on (job) {config.spike_factor:g} * {names['baseline_ratio']}\n"
            f"and on (job)\nmin_over_time({JOB_FAILURE_RATIO}[{sustain}])\n"
            f"  > on (job) {names['baseline_ratio']} + {config.spike_min_increase}\n"
            f"and on (job)\nmin_over_time({JOB_SENT}[{sustain}]) * {rate} >= "
            f"{config.spike_min_sent}\n"
            f"and on (job)\n{names['baseline_sent']} >= {config.spike_min_baseline_sent}",
            Severity.CRITICAL,
            "Failure rate of {{ $labels.job }} jumped to {{ $value | humanizePercentage }}",
            f"For {sustain} the failure (bounce) rate has stayed above {config.spike_factor:g} "
            f"times its own baseline (the rate over the {config.spike_baseline_window} before) "
            f"and at least {config.spike_min_increase * 100:g} points above it; it is now "
            "{{ $value | humanizePercentage }}. Something changed: a provider blocking, a bad "
            "list, or a broken template.",
        ),
        *_ratio_alerts(
            f"{ALERT_PREFIX}FailureRateHigh",
            config.failure_rate,
            ratio=names["failure_ratio"],
            volume=names["failure_sent"],
            what="Failure (bounce) rate",
            why="Providers and relays judge senders by it; find the reason and the provider on "
            "the deliverability dashboard.",
        ),
        *_ratio_alerts(
            f"{ALERT_PREFIX}HardBounceRateHigh",
            config.hard_bounce_rate,
            ratio=names["hard_ratio"],
            volume=names["hard_sent"],
            what="Hard-bounce rate",
            why="Mail to addresses that do not exist: the list needs cleaning.",
        ),
        Alert(
            f"{ALERT_PREFIX}ProviderBlocking",
            f"min_over_time({JOB_PROVIDER_BLOCK_RATIO}{provider_filter}[{config.provider_sustain}])"
            f" > {config.provider_block_ratio}\n"
            f"and on (job, provider)\n{JOB_PROVIDER_BLOCKS} * {rate} >= "
            f"{config.provider_min_blocked}\n"
            f"unless on (job, provider)\n{most_blocked}",
            Severity.CRITICAL,
            "{{ $labels.provider }} is refusing mail from {{ $labels.job }} "
            "({{ $value | humanizePercentage }} blocked)",
            f"For {config.provider_sustain}, {{{{ $value | humanizePercentage }}}} of the mail "
            "sent to {{ $labels.provider }} failed as blocked, spam, bad reputation, policy or "
            f"authentication (threshold {_percent(config.provider_block_ratio)}), while most "
            "other providers accept the mail. Read the provider's replies in the logs and its "
            "postmaster pages.",
            per_provider=True,
        ),
        Alert(
            f"{ALERT_PREFIX}AuthenticationFailures",
            f"sum by (job) (increase("
            f"{series(catalog.FAILURE_REASONS, s, eq(Label.REASON, 'authfailure'))}"
            f"[{config.auth_failure_window}])) >= {config.auth_failure_min}",
            Severity.WARNING,
            "{{ $labels.job }}: {{ $value | humanize }} deliveries failed SPF, DKIM or DMARC",
            f"{{{{ $value | humanize }}}} failures in the last {config.auth_failure_window} "
            "were refused for sender authentication (SPF, DKIM or DMARC). Check the sending "
            "domain's DNS records and DKIM signing before providers start refusing more.",
        ),
        *_ratio_alerts(
            f"{ALERT_PREFIX}ComplaintRateHigh",
            config.complaint_rate,
            ratio=names["complaint_ratio"],
            volume=names["complaint_deliveries"],
            what="Complaint (spam report) rate",
            why="Recipients mark this mail as spam; Gmail and Yahoo filter or refuse senders "
            "above 0.3 %.",
        ),
        Alert(
            f"{ALERT_PREFIX}WebhooksSilent",
            f"time() - max by (job) ({last_event}) > {seconds(config.silence_after)}\n"
            f"and on (job)\nmax by (job) ({last_event}) > 0\n"
            f"and on (job)\nmax by (job) ({series_up(s)}) == 1",
            Severity.WARNING,
            "No SMTPeter webhook has reached {{ $labels.job }} for {{ $value | humanizeDuration }}",
            f"The exporter is up but has accepted no event for over {config.silence_after}, "
            f"although it received some within the last {config.silence_lookback}. SMTPeter "
            "may have stopped calling (webhook disabled, URL or certificate changed, a proxy "
            "in between refusing).",
            dashboard=(HEALTH_UID, HEALTH_SLUG),
        ),
        Alert(
            f"{ALERT_PREFIX}WebhookRequestsRejected",
            f"{JOB_KIND_REJECTED_RATIO} > {config.rejected_ratio}\n"
            f"and on (job, kind)\n{JOB_KIND_REJECTED} * {rate} >= {config.rejected_min}",
            Severity.WARNING,
            "{{ $labels.job }} refuses {{ $value | humanizePercentage }} of "
            "{{ $labels.kind }} webhooks",
            f"For {config.rejected_for}, over {_percent(config.rejected_ratio)} of the "
            "{{ $labels.kind }} webhook requests were refused with a 4xx for what they carried "
            "(bad payload, size, content type, time-out or authentication): SMTPeter sending "
            "something this version does not accept or signing it differently, or a client "
            "posting junk. Events in refused requests are not counted.",
            config.rejected_for,
            (HEALTH_UID, HEALTH_SLUG),
        ),
        Alert(
            f"{ALERT_PREFIX}InternalErrors",
            f"sum by (job) (increase("
            f"{series(catalog.REQUESTS, s, eq(Label.OUTCOME, Outcome.INTERNAL_ERROR))}"
            f"[{config.internal_error_window}])) > 0",
            Severity.WARNING,
            "{{ $labels.job }} answered {{ $value | humanize }} webhooks with a 500",
            f"Requests failed inside the exporter in the last {config.internal_error_window} "
            "(a bug; the log has the traceback as event internal_error). SMTPeter retries "
            "them, but until the cause is fixed the events are not counted.",
            dashboard=(HEALTH_UID, HEALTH_SLUG),
        ),
        Alert(
            f"{ALERT_PREFIX}WebhooksUnavailable",
            f"sum by (job, outcome) (rate("
            f"{series(catalog.REQUESTS, s, regex(Label.OUTCOME, sorted(UNAVAILABLE)))}"
            f"[{config.rate_window}])) > 0",
            Severity.WARNING,
            "{{ $labels.job }} answers webhooks 503: {{ $labels.outcome }}",
            f"For {config.unavailable_for} webhook requests were answered 503 and not recorded "
            "({{ $labels.outcome }}: key_unavailable when SMTPeter's signing keys cannot be "
            "looked up in DNS, log_unavailable when the event log cannot be written). SMTPeter "
            "retries them, so nothing is lost yet, but nothing is counted either.",
            config.unavailable_for,
            (HEALTH_UID, HEALTH_SLUG),
        ),
        Alert(
            f"{ALERT_PREFIX}DomainLabelOverflow",
            f"sum by (job) (increase({series(catalog.DOMAIN_OVERFLOW, s)}"
            f"[{config.overflow_window}])) > 0",
            Severity.INFO,
            '{{ $labels.job }} counts new recipient domains as domain="other"',
            f"{{{{ $value | humanize }}}} events in the last {config.overflow_window} had a "
            'recipient domain past --metrics.domain-limit and were counted as domain="other" '
            "(provider views are unaffected). Raise the limit if a domain you care about is "
            "among them, within the series budget.",
            dashboard=(HEALTH_UID, HEALTH_SLUG),
        ),
        Alert(
            f"{ALERT_PREFIX}ExporterDown",
            f"{series_up(s)} == 0",
            Severity.CRITICAL,
            "smtpeter-exporter {{ $labels.instance }} cannot be scraped",
            f"Prometheus has failed to scrape {{{{ $labels.instance }}}} for {config.down_for}. "
            "Webhooks sent to it are probably failing too; SMTPeter retries them for a while.",
            config.down_for,
            (HEALTH_UID, HEALTH_SLUG),
        ),
        Alert(
            f"{ALERT_PREFIX}ExporterAbsent",
            f"absent({series_up(s)})",
            Severity.CRITICAL,
            "No smtpeter-exporter target is scraped",
            f"Prometheus has had no target matching {s} for {config.absent_for}: the "
            "exporter is gone from service discovery or the scrape configuration.",
            config.absent_for,
            (HEALTH_UID, HEALTH_SLUG),
        ),
    ]


def series_up(selector: str) -> str:
    return f"up{matchers(selector)}"


def runbook_anchor(alert_name: str) -> str:
    """The anchor of an alert's runbook section (a Markdown heading of the alert's name)."""
    return alert_name.lower()


def _dashboard_variables(alert: Alert) -> str:
    provider = "&var-provider={{ $labels.provider }}" if alert.per_provider else ""
    return "var-job={{ $labels.job }}" + provider


def rule_file(config: Config) -> dict[str, Any]:
    """Both groups, as the YAML document Prometheus loads."""
    records = [{"record": r.name, "expr": r.expr} for r in recording_rules(config)]
    alerts = []
    for alert in alert_rules(config):
        uid, slug = alert.dashboard
        rule: dict[str, Any] = {"alert": alert.name, "expr": alert.expr}
        if alert.for_ != "0m":
            rule["for"] = alert.for_
        rule["labels"] = {"severity": str(alert.severity)}
        rule["annotations"] = {
            "summary": alert.summary,
            "description": alert.description,
            "runbook_url": f"{config.runbook_url}#{runbook_anchor(alert.name)}",
            "dashboard_url": f"{config.grafana_url}/d/{uid}/{slug}?{_dashboard_variables(alert)}",
        }
        alerts.append(rule)
    return {
        "groups": [
            {"name": RECORDING_GROUP, "rules": records},
            {"name": ALERTS_GROUP, "rules": alerts},
        ]
    }
