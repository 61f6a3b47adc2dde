"""The one place that holds every selector, threshold, window and URL of the shipped rules,
dashboards and alert routing.

Change a value here (or name it in a TOML file passed with ``--config``) and run
``make monitoring`` (``python -m monitoring``): the recording and alert rules under
``deploy/prometheus/``, the dashboards under ``grafana/`` and the Alertmanager example under
``deploy/alertmanager/`` are written anew from it.

Two kinds of persistence are used, on purpose:

* Alerts on *event ratios* (failure-rate spike, provider blocking) measure persistence in
  the data: ``min_over_time`` of the recorded 5-minute ratio over ``sustain``. A Prometheus
  restart neither resets that clock (as it resets ``for:``) nor fakes it, and a single bad
  minute can never fill a window longer than the rate window plus itself.
* Operational alerts (exporter down, rejected requests, ...) use ``for:`` as usual.

Thresholds are fractions (0.05 is 5 %), volumes are event counts, durations are Prometheus
duration strings.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field, fields, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

_DURATION: Final = re.compile(r"([0-9]+)([smhdw])")
_UNIT_SECONDS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def seconds(duration: str) -> int:
    """Seconds in a single-unit Prometheus duration (``5m`` is 300)."""
    match = _DURATION.fullmatch(duration)
    if match is None:
        raise ValueError(f"{duration!r} is not a duration such as 30s, 5m, 6h or 1d")
    return int(match[1]) * _UNIT_SECONDS[match[2]]


class Severity(StrEnum):
    """The ``severity`` label of every alert, and how Alertmanager routes it."""

    #: Act now: mail is not being delivered, or the exporter cannot see it. Pages.
    CRITICAL = "critical"
    #: Act today. Goes to the team's chat.
    WARNING = "warning"
    #: Worth knowing, routed nowhere; shown on the dashboard's active-alerts panel.
    INFO = "info"


@dataclass(frozen=True, slots=True)
class RatioThreshold:
    """A ratio alert: fire above ``warning`` (and again, as critical, above ``critical``)
    over ``window``, when at least ``min_volume`` events are in the window's denominator."""

    warning: float
    critical: float | None
    window: str
    min_volume: int
    for_: str


@dataclass(frozen=True, slots=True)
class Config:
    """Everything the generators read; see each field's comment."""

    #: Label matchers that select the exporter's series in every rule (the scrape job).
    selector: str = 'job="smtpeter-exporter"'
    #: Every alert's ``runbook_url`` is this plus ``#`` and the alert name in lowercase.
    runbook_url: str = (
        "https://github.com/smtpeter-exporter/smtpeter-exporter/blob/main/deploy/runbooks.md"
    )
    #: Grafana's address; ``dashboard_url`` annotations link to a dashboard there.
    grafana_url: str = "http://localhost:3000"

    #: The window of every recorded rate (``...:rate5m``) the dashboards and alerts share.
    rate_window: str = "5m"
    #: Ratios are only recorded for a job that received a delivery within this window: a
    #: failure rate is meaningless when the deliveries webhook is not configured.
    deliveries_seen_within: str = "1d"

    # -- failure-rate spike against the job's own baseline -------------------------------
    #: How long the recorded 5-minute failure rate must stay above the baseline.
    spike_sustain: str = "10m"
    #: The baseline: the failure rate over this window, ending where the sustain window and
    #: its rate window begin, so a spike does not raise its own baseline before it alerts.
    #: (An incident that outlasts this window becomes the baseline and the spike alert ends;
    #: the absolute failure-rate alert goes on.)
    spike_baseline_window: str = "6h"
    #: Fire when the rate is above baseline x factor ...
    spike_factor: float = 3.0
    #: ... and at least this many points (0.05 = 5 percentage points) above it.
    spike_min_increase: float = 0.05
    #: Sent messages (failures + deliveries) needed per rate window, now and ...
    spike_min_sent: int = 100
    #: ... in the baseline window, for either figure to mean anything.
    spike_min_baseline_sent: int = 500

    # -- absolute thresholds --------------------------------------------------------------
    #: Failures / sent. Amazon SES reviews an account at a 5 % bounce rate and may pause it
    #: at 10 % (SES developer guide, "Sending review process FAQs").
    failure_rate: RatioThreshold = field(
        default_factory=lambda: RatioThreshold(
            warning=0.05, critical=0.10, window="1h", min_volume=200, for_="15m"
        )
    )
    #: Hard bounces / sent: list hygiene. Mailbox providers treat mail to many unknown users
    #: as a spammer's sign; 2 % is the figure ESPs commonly hold senders to.
    hard_bounce_rate: RatioThreshold = field(
        default_factory=lambda: RatioThreshold(
            warning=0.02, critical=None, window="1h", min_volume=200, for_="30m"
        )
    )
    #: Complaints / deliveries over a day. Gmail's sender guidelines ask for a spam rate
    #: below 0.10 % and never 0.30 % or more; Yahoo's sender requirements name 0.3 %.
    complaint_rate: RatioThreshold = field(
        default_factory=lambda: RatioThreshold(
            warning=0.001, critical=0.003, window="1d", min_volume=1000, for_="1h"
        )
    )

    # -- one provider blocking us ---------------------------------------------------------
    #: Reasons that mean "the receiver refuses us", not "this address is bad".
    blocking_reasons: tuple[str, ...] = (
        "authfailure",
        "badreputation",
        "blocked",
        "policyviolation",
        "spamdetected",
    )
    #: Fire when this share of the mail sent to one provider fails for a blocking reason ...
    provider_block_ratio: float = 0.10
    #: ... with at least this many blocking failures per rate window ...
    provider_min_blocked: int = 20
    #: ... sustained this long in the data ...
    provider_sustain: str = "10m"
    #: ... unless most providers refuse us too: the other providers together, and the median
    #: provider, both above this share. Then it is the sender, not one provider, and the
    #: failure-rate alerts say so. (Two providers blocking among many still both alert.)
    provider_others_ratio: float = 0.05
    #: Provider label values never alerted on: ``other`` is many small domains, not one
    #: receiver.
    provider_excluded: tuple[str, ...] = ("other",)

    # -- authentication failures (SPF, DKIM, DMARC) ---------------------------------------
    auth_failure_window: str = "15m"
    #: Forwarders break SPF now and then; this many in the window is a pattern.
    auth_failure_min: int = 5

    # -- the exporter and its webhooks ----------------------------------------------------
    #: No accepted event for this long, although events arrived within ``silence_lookback``.
    silence_after: str = "3h"
    silence_lookback: str = "7d"
    #: Share of one kind's webhook requests refused (4xx) over the rate window, and the
    #: least count. Per kind, so SMTPeter changing one payload is seen even when other kinds
    #: outnumber it.
    rejected_ratio: float = 0.05
    rejected_min: int = 10
    rejected_for: str = "10m"
    #: Refusals the alert ignores: scanners probing paths and methods. A wrong webhook URL in
    #: SMTPeter shows as these too, and as WebhooksSilent.
    rejected_ignored: tuple[str, ...] = ("method_not_allowed", "not_found")
    internal_error_window: str = "10m"
    #: Webhooks answered 503 (signing keys not resolvable, log not writable) this long.
    unavailable_for: str = "5m"
    overflow_window: str = "1h"
    down_for: str = "5m"
    absent_for: str = "15m"

    # -- Alertmanager example -------------------------------------------------------------
    #: Labels alerts are grouped by into one notification.
    group_by: tuple[str, ...] = ("alertname", "job", "provider")

    def __post_init__(self) -> None:
        for name in (
            "rate_window",
            "deliveries_seen_within",
            "spike_sustain",
            "spike_baseline_window",
            "provider_sustain",
            "auth_failure_window",
            "silence_after",
            "silence_lookback",
            "rejected_for",
            "internal_error_window",
            "unavailable_for",
            "overflow_window",
            "down_for",
            "absent_for",
        ):
            seconds(getattr(self, name))
        for threshold in (self.failure_rate, self.hard_bounce_rate, self.complaint_rate):
            seconds(threshold.window)
            seconds(threshold.for_)
            if threshold.critical is not None and threshold.critical <= threshold.warning:
                raise ValueError("a critical threshold must be above its warning threshold")

    @property
    def rate_seconds(self) -> int:
        return seconds(self.rate_window)


def load(path: Path | None) -> Config:
    """The defaults, with the fields a TOML file names replaced (tables for thresholds)."""
    if path is None:
        return Config()
    data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    base = Config()
    known = {f.name for f in fields(Config)}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"{path}: unknown settings {', '.join(sorted(unknown))}")
    changes: dict[str, Any] = {}
    for name, value in data.items():
        current = getattr(base, name)
        if isinstance(current, RatioThreshold):
            renamed = {("for_" if key == "for" else key): v for key, v in value.items()}
            changes[name] = replace(current, **renamed)
        elif isinstance(current, tuple):
            changes[name] = tuple(value)
        else:
            changes[name] = value
    return replace(base, **changes)
