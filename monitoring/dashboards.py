"""The two Grafana dashboards, built with Grafana's own typed builders (grafana-foundation-sdk).

* **Deliverability overview**: how much mail fails, why, where (provider, domain, SMTP
  state, reply code, enhanced status), complaints and engagement, and the firing alerts.
* **Exporter health**: is the exporter receiving webhooks, answering them fast, and being
  scraped.

Rates and ratios come from the recorded series of :mod:`monitoring.rules`, which keep ``job``
and ``instance``, so every variable filters them; ratios are summed per panel (sum numerator /
sum denominator), never averaged. Raw metrics are queried only where no rule fits, and always
by their name in :mod:`exporter.catalog`, so a renamed metric changes every query here.

Each file is what Grafana's "Export for sharing externally" writes: ``__inputs`` asks for a
Prometheus data source on import, which becomes the default of the ``datasource`` variable
that every panel and query goes through; file provisioning ignores ``__inputs`` and the
variable falls back to the default Prometheus data source.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final

from grafana_foundation_sdk.builders import (
    bargauge,
    common,
    piechart,
    prometheus,
    stat,
    table,
    timeseries,
)
from grafana_foundation_sdk.builders import dashboard as board
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.variants import Dataquery
from grafana_foundation_sdk.models import common as common_model
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models import piechart as piechart_model
from grafana_foundation_sdk.models import prometheus as prometheus_model

from exporter import catalog
from exporter.catalog import Label
from exporter.errors import UNAUTHENTICATED, Outcome
from monitoring import rules
from monitoring.config import Config, RatioThreshold, seconds
from monitoring.promql import by, eq, matchers, regex

OVERVIEW_FILE: Final = "grafana/dashboards/smtpeter-deliverability.json"
HEALTH_FILE: Final = "grafana/dashboards/smtpeter-exporter-health.json"
OVERVIEW_TITLE: Final = "SMTPeter deliverability overview"
HEALTH_TITLE: Final = "SMTPeter exporter health"
TAGS: Final = ("smtpeter", "email")
GRAFANA_VERSION: Final = "11.6.0"

#: The import input Grafana asks for, and the variable every panel reads its data source from.
DS_INPUT: Final = "DS_PROMETHEUS"
DATASOURCE_VARIABLE: Final = "datasource"
DATASOURCE: Final = model.DataSourceRef(type_val="prometheus", uid=f"${{{DATASOURCE_VARIABLE}}}")

#: Series that Prometheus itself or prometheus-client's standard collectors write: not in
#: the catalog, but as fixed as the catalog's names.
ALERTS: Final = "ALERTS"
UP: Final = "up"
SCRAPE_DURATION: Final = "scrape_duration_seconds"
SCRAPE_SAMPLES: Final = "scrape_samples_scraped"
RESIDENT_MEMORY: Final = "process_resident_memory_bytes"
CPU_SECONDS: Final = "process_cpu_seconds_total"
STANDARD_SERIES: Final = frozenset(
    {ALERTS, UP, SCRAPE_DURATION, SCRAPE_SAMPLES, RESIDENT_MEMORY, CPU_SECONDS}
)

#: The template variables; each is named after the label it filters.
JOB: Final = "job"
INSTANCE: Final = "instance"

_TOP: Final = 10
_PANEL_NAMES: Final = {
    "bargauge": "Bar gauge",
    "piechart": "Pie chart",
    "stat": "Stat",
    "table": "Table",
    "timeseries": "Time series",
}


def _var(label: Label | str) -> str:
    """``label=~"$label"``: a multi-value variable, "All" being ``.*``."""
    return f'{label}=~"${label}"'


def _selected(*extra: str) -> str:
    """Matchers for the selected jobs and instances, plus ``extra``."""
    return matchers(_var(JOB), _var(INSTANCE), *extra)


_PROVIDERS: Final = _var(Label.PROVIDER)
_DOMAINS: Final = _var(Label.DOMAIN)


@dataclass(frozen=True, slots=True)
class _Query:
    expr: str
    legend: str
    #: One value at the range's end (tables, bar gauges, pies) instead of a series over it.
    instant: bool = False


def _targets(queries: Iterable[_Query], *, table_format: bool = False) -> list[Builder[Dataquery]]:
    targets: list[Builder[Dataquery]] = []
    for index, query in enumerate(queries):
        target = (
            prometheus.Dataquery()
            .ref_id(chr(ord("A") + index))
            .datasource(DATASOURCE)
            .editor_mode(prometheus_model.QueryEditorMode.CODE)
            .expr(query.expr)
            .legend_format(query.legend)
        )
        target = target.instant() if query.instant else target.range()
        if table_format:
            target = target.format(prometheus_model.PromQueryFormat.TABLE)
        targets.append(target)
    return targets


def _thresholds(*steps: tuple[float, str], base: str = "green") -> board.ThresholdsConfig:
    # Grafana writes the base step's -Infinity as null, which the 11.6 schema does not allow
    # (value: number); Grafana treats the first step as the base whatever its value.
    first = model.Threshold(value=0, color=base)
    return (
        board.ThresholdsConfig()
        .mode(model.ThresholdsMode.ABSOLUTE)
        .steps([first, *(model.Threshold(value=value, color=color) for value, color in steps)])
    )


def _ratio_thresholds(threshold: RatioThreshold) -> board.ThresholdsConfig:
    levels = [(threshold.warning, "orange")]
    if threshold.critical is not None:
        levels.append((threshold.critical, "red"))
    return _thresholds(*levels)


def _legend(*, table_mode: bool) -> common.VizLegendOptions:
    legend = common.VizLegendOptions().show_legend(True)
    if not table_mode:
        return legend.display_mode(common_model.LegendDisplayMode.LIST).placement(
            common_model.LegendPlacement.BOTTOM
        )
    return (
        legend.display_mode(common_model.LegendDisplayMode.TABLE)
        .placement(common_model.LegendPlacement.RIGHT)
        .calcs(["mean", "max", "lastNotNull"])
        .sort_by("Mean")
        .sort_desc(True)
    )


def _timeseries(
    title: str,
    description: str,
    unit: str,
    *queries: _Query,
    stacked: bool = False,
    legend_table: bool = False,
    thresholds: board.ThresholdsConfig | None = None,
    width: int = 12,
    height: int = 8,
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(_targets(queries))
        .unit(unit)
        .min(0)
        .span(width)
        .height(height)
        .legend(_legend(table_mode=legend_table))
        .tooltip(
            common.VizTooltipOptions()
            .mode(common_model.TooltipDisplayMode.MULTI)
            .sort(common_model.SortOrder.DESCENDING)
            .hide_zeros(True)
        )
        .draw_style(common_model.GraphDrawStyle.LINE)
        .line_width(1)
        .fill_opacity(25 if stacked else 10)
        .show_points(common_model.VisibilityMode.NEVER)
        .stacking(
            common.StackingConfig().mode(
                common_model.StackingMode.NORMAL if stacked else common_model.StackingMode.NONE
            )
        )
    )
    if thresholds is not None:
        panel = panel.thresholds(thresholds).thresholds_style(
            common.GraphThresholdsStyleConfig().mode(common_model.GraphThresholdsStyleMode.DASHED)
        )
    return panel


def _reduce_last() -> common.ReduceDataOptions:
    return common.ReduceDataOptions().values(False).calcs(["lastNotNull"]).fields("")


def _stat(
    title: str,
    description: str,
    unit: str,
    query: _Query,
    thresholds: board.ThresholdsConfig,
    *,
    mappings: list[model.ValueMapping] | None = None,
    width: int = 6,
    height: int = 5,
) -> stat.Panel:
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(_targets([query]))
        .unit(unit)
        .span(width)
        .height(height)
        .thresholds(thresholds)
        .color_scheme(board.FieldColor().mode(model.FieldColorModeId.THRESHOLDS))
        .graph_mode(
            common_model.BigValueGraphMode.NONE
            if query.instant
            else common_model.BigValueGraphMode.AREA
        )
        .color_mode(common_model.BigValueColorMode.VALUE)
        .justify_mode(common_model.BigValueJustifyMode.AUTO)
        .text_mode(common_model.BigValueTextMode.AUTO)
        .orientation(common_model.VizOrientation.AUTO)
        .reduce_options(_reduce_last())
    )
    if mappings is not None:
        panel = panel.mappings(mappings)
    return panel


def _bargauge(
    title: str, description: str, unit: str, query: _Query, *, width: int = 6, height: int = 9
) -> bargauge.Panel:
    return (
        bargauge.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(_targets([query]))
        .unit(unit)
        .min(0)
        .span(width)
        .height(height)
        .color_scheme(
            board.FieldColor()
            .mode(model.FieldColorModeId.CONTINUOUS_YL_RD)
            .series_by(model.FieldColorSeriesByMode.MAX)
        )
        .display_mode(common_model.BarGaugeDisplayMode.BASIC)
        .value_mode(common_model.BarGaugeValueMode.TEXT)
        .name_placement(common_model.BarGaugeNamePlacement.LEFT)
        .show_unfilled(True)
        .sizing(common_model.BarGaugeSizing.AUTO)
        .orientation(common_model.VizOrientation.HORIZONTAL)
        .legend(_legend(table_mode=False).show_legend(False))
        .reduce_options(_reduce_last())
    )


def _pie(title: str, description: str, query: _Query, *, width: int = 8) -> piechart.Panel:
    return (
        piechart.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(_targets([query]))
        .unit("short")
        .decimals(0)
        .span(width)
        .height(9)
        .pie_type(piechart_model.PieChartType.DONUT)
        .display_labels([piechart_model.PieChartLabels.PERCENT])
        .tooltip(
            common.VizTooltipOptions()
            .mode(common_model.TooltipDisplayMode.SINGLE)
            .sort(common_model.SortOrder.NONE)
        )
        .legend(
            piechart.PieChartLegendOptions()
            .show_legend(True)
            .display_mode(common_model.LegendDisplayMode.TABLE)
            .placement(common_model.LegendPlacement.RIGHT)
            .values([piechart_model.PieChartLegendValues.VALUE])
        )
        .orientation(common_model.VizOrientation.AUTO)
        .reduce_options(_reduce_last())
    )


def _table(
    title: str,
    description: str,
    query: _Query,
    columns: Iterable[str],
    *,
    hidden: Iterable[str] = ("Time", "Value", "__name__"),
    width: int = 24,
    height: int = 7,
) -> table.Panel:
    """A table of one instant query's labels, one row per series, in the column order given."""
    return (
        table.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(_targets([query], table_format=True))
        .span(width)
        .height(height)
        .frame_index(0)
        .show_header(True)
        .cell_height(common_model.TableCellHeight.SM)
        .align(common_model.FieldTextAlignment.AUTO)
        .with_transformation(
            model.DataTransformerConfig(
                id_val="organize",
                options={
                    "excludeByName": dict.fromkeys(hidden, True),
                    "indexByName": {name: index for index, name in enumerate(columns)},
                    "renameByName": {},
                },
            )
        )
    )


def _link(title: str, uid: str, slug: str, tooltip: str) -> board.DashboardLink:
    """A link that carries the time range and every variable along."""
    return (
        board.DashboardLink(title)
        .type(model.DashboardLinkType.LINK)
        .url(f"/d/{uid}/{slug}")
        .icon("dashboard")
        .tooltip(tooltip)
        .include_vars(True)
        .keep_time(True)
        .target_blank(False)
        .as_dropdown(False)
    )


_ALL: Final = model.VariableOption(selected=True, text=["All"], value=["$__all"])


def _label_values(spec: catalog.MetricSpec, label: Label | str, *filters: str) -> str:
    return f"label_values({spec.series}{matchers(*filters) if filters else ''}, {label})"


def _query_variable(name: str, label: str, description: str, query: str) -> board.QueryVariable:
    return (
        board.QueryVariable(name)
        .label(label)
        .description(description)
        .datasource(DATASOURCE)
        .query(query)
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_CASE_INSENSITIVE_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .current(_ALL)
    )


def _common_variables() -> list[Builder[model.VariableModel]]:
    return [
        board.DatasourceVariable(DATASOURCE_VARIABLE)
        .label("Data source")
        .description("The Prometheus that scrapes smtpeter-exporter and evaluates its rules.")
        .type("prometheus")
        .current(model.VariableOption(text="Prometheus", value=f"${{{DS_INPUT}}}"))
        .allow_custom_value(False),
        _query_variable(
            JOB,
            "Job",
            f"Scrape jobs with a running smtpeter-exporter (from {catalog.BUILD_INFO.series}).",
            _label_values(catalog.BUILD_INFO, JOB),
        ),
        _query_variable(
            INSTANCE,
            "Instance",
            "Exporter instances of the selected jobs.",
            _label_values(catalog.BUILD_INFO, INSTANCE, _var(JOB)),
        ),
    ]


def _builder(uid: str, title: str, description: str) -> board.Dashboard:
    return (
        board.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(list(TAGS))
        .editable()
        .timezone("browser")
        .time("now-6h", "now")
        .refresh("1m")
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
    )


# -- the deliverability overview ----------------------------------------------------------


def _avg(name: str, *extra: str) -> str:
    """A recorded rate of the selected instances and providers, averaged over the range."""
    return f"sum(avg_over_time({name}{_selected(_PROVIDERS, *extra)}[$__range]))"


def _recorded(name: str, *extra: str) -> str:
    return f"{name}{_selected(_PROVIDERS, *extra)}"


def _sent(aggregation: str = "sum") -> str:
    """Failures + deliveries per second of the selected instances and providers."""
    failures = f"{aggregation} ({_recorded(rules.FAILURES_BY_PROVIDER)})"
    deliveries = f"{aggregation} ({_recorded(rules.DELIVERIES_BY_PROVIDER)})"
    return f"({failures} + {deliveries})"


def _overview_panels(config: Config) -> Iterator[tuple[str, list[Builder[model.Panel]]]]:
    blocking = regex(Label.REASON, config.blocking_reasons)
    blocking_names = ", ".join(config.blocking_reasons)
    hard = eq(Label.BOUNCE_TYPE, "hard")
    sent_range = f"({_avg(rules.FAILURES_BY_PROVIDER)} + {_avg(rules.DELIVERIES_BY_PROVIDER)}) > 0"
    per_provider = by(Label.PROVIDER)
    alerts = ALERTS + matchers(
        f'alertname=~"{rules.ALERT_PREFIX}.*"', eq("alertstate", "firing"), _var(JOB)
    )
    raw_failures = catalog.FAILURES.series + _selected(_PROVIDERS, _DOMAINS)

    yield (
        "Summary over the selected time range",
        [
            _stat(
                "Failure rate",
                "Failed deliveries / (failed + successful deliveries) over the selected time "
                "range, for the selected jobs, instances and providers (the 5-minute recorded "
                "rates averaged over the range). Orange and red at the warning and critical "
                f"thresholds of the failure-rate alert, which looks at the last "
                f"{config.failure_rate.window}.",
                "percentunit",
                _Query(
                    f"{_avg(rules.FAILURES_BY_PROVIDER)}\n/\n({sent_range})",
                    "failure rate",
                    instant=True,
                ),
                _ratio_thresholds(config.failure_rate),
            ),
            _stat(
                "Hard-bounce rate",
                "Hard failures (the address does not exist, will never accept) / sent messages "
                "(failed + delivered) over the selected time range, for the selected jobs, "
                "instances and providers. Orange at the hard-bounce alert's threshold.",
                "percentunit",
                _Query(
                    f"{_avg(rules.REASONS_BY_PROVIDER, hard)}\n/\n({sent_range})",
                    "hard-bounce rate",
                    instant=True,
                ),
                _ratio_thresholds(config.hard_bounce_rate),
            ),
            _stat(
                "Blocked share",
                f"Failures for a blocking reason ({blocking_names}: the receiver refuses the "
                "sender, not the address) / sent messages over the selected time range, for "
                "the selected jobs, instances and providers. Red at the provider-blocking "
                "alert's threshold.",
                "percentunit",
                _Query(
                    f"{_avg(rules.REASONS_BY_PROVIDER, blocking)}\n/\n({sent_range})",
                    "blocked share",
                    instant=True,
                ),
                _thresholds((config.provider_block_ratio, "red")),
            ),
            _stat(
                "Complaint rate",
                "Spam complaints (abuse reports) / successful deliveries over the selected time "
                "range, for the selected jobs, instances and providers. Orange and red at the "
                "complaint-rate alert's thresholds, which it applies to the last "
                f"{config.complaint_rate.window}: choose that range to compare.",
                "percentunit",
                _Query(
                    f"{_avg(rules.COMPLAINTS_BY_PROVIDER)}\n/\n"
                    f"({_avg(rules.DELIVERIES_BY_PROVIDER)} > 0)",
                    "complaint rate",
                    instant=True,
                ),
                _ratio_thresholds(config.complaint_rate),
            ),
            _table(
                "Firing SMTPeter alerts",
                f"Alerts of this exporter ({rules.ALERT_PREFIX}*) firing now for the selected "
                "jobs, one row each, from Prometheus' ALERTS series; empty when all is well. "
                "Provider and instance are set only for the alerts that carry them.",
                _Query(alerts, "{{alertname}}", instant=True),
                ("alertname", "severity", JOB, INSTANCE, Label.PROVIDER),
                hidden=("Time", "Value", "__name__", "alertstate"),
                height=6,
            ),
        ],
    )
    yield (
        "Traffic and failure rate",
        [
            _timeseries(
                "Events per second by kind",
                "Accepted webhook events per second (5-minute rate), by kind: failure, "
                "delivery, open, click, bounce (a raw bounce message) and abuse (a spam "
                "complaint), for the selected jobs and instances. Not filtered by provider or "
                "domain.",
                "ops",
                _Query(
                    f"sum {by(Label.KIND)} ({rules.EVENTS_BY_KIND}{_selected()})",
                    "{{kind}}",
                ),
                stacked=True,
            ),
            _timeseries(
                "Failure rate over time",
                "Failed deliveries / (failed + successful deliveries) over the last 5 minutes, "
                "for the selected jobs, instances and providers. Dashed lines: the warning and "
                "critical thresholds of the failure-rate alert (which looks at the last "
                f"{config.failure_rate.window}).",
                "percentunit",
                _Query(
                    f"sum ({_recorded(rules.FAILURES_BY_PROVIDER)})\n/\n({_sent()} > 0)",
                    "failure rate",
                ),
                thresholds=_ratio_thresholds(config.failure_rate),
            ),
        ],
    )
    yield (
        "Failures",
        [
            _timeseries(
                "Failure rate by provider",
                "Failed / (failed + successful) deliveries over the last 5 minutes, per "
                "mailbox provider, for the selected jobs, instances and providers. A provider "
                "without sent mail in the window has no point.",
                "percentunit",
                _Query(
                    f"sum {per_provider} ({_recorded(rules.FAILURES_BY_PROVIDER)})\n/\n"
                    f"({_sent(f'sum {per_provider}')} > 0)",
                    "{{provider}}",
                ),
                legend_table=True,
            ),
            _timeseries(
                "Blocked share by provider",
                f"Failures for a blocking reason ({blocking_names}) / sent messages over the "
                "last 5 minutes, per mailbox provider. One provider high while the others stay "
                "low is what the provider-blocking alert looks for (dashed line: its "
                "threshold).",
                "percentunit",
                _Query(
                    f"sum {per_provider} ({_recorded(rules.REASONS_BY_PROVIDER, blocking)})\n/\n"
                    f"({_sent(f'sum {per_provider}')} > 0)",
                    "{{provider}}",
                ),
                legend_table=True,
                thresholds=_thresholds((config.provider_block_ratio, "red")),
            ),
            _timeseries(
                "Failures by reason",
                "Failed deliveries per second (5-minute rate) by reason (Sisimai's vocabulary: "
                "userunknown, mailboxfull, blocked, spamdetected, ...), for the selected jobs, "
                "instances and providers, stacked.",
                "ops",
                _Query(
                    f"sum {by(Label.REASON)} ({_recorded(rules.REASONS_BY_PROVIDER)})",
                    "{{reason}}",
                ),
                stacked=True,
                legend_table=True,
            ),
            _timeseries(
                "Hard vs soft failures",
                "Failed deliveries per second (5-minute rate), hard (the address will never "
                "accept: remove it) or soft (temporary or the sender's problem: retry, fix), "
                "for the selected jobs, instances and providers, stacked.",
                "ops",
                _Query(
                    f"sum {by(Label.BOUNCE_TYPE)} ({_recorded(rules.REASONS_BY_PROVIDER)})",
                    "{{bounce_type}}",
                ),
                stacked=True,
            ),
        ],
    )
    yield (
        "Providers and domains",
        [
            _bargauge(
                "Top providers by failures",
                f"The {_TOP} mailbox providers with the most failed deliveries per second, "
                "averaged over the selected time range, among the selected jobs, instances and "
                "providers.",
                "ops",
                _Query(
                    f"sort_desc(topk({_TOP}, sum {per_provider} (avg_over_time("
                    f"{_recorded(rules.FAILURES_BY_PROVIDER)}[$__range]))))",
                    "{{provider}}",
                    instant=True,
                ),
            ),
            _bargauge(
                "Top providers by blocking failures",
                f"The {_TOP} mailbox providers with the most failures for a blocking reason "
                f"({blocking_names}) per second, averaged over the selected time range.",
                "ops",
                _Query(
                    f"sort_desc(topk({_TOP}, sum {per_provider} (avg_over_time("
                    f"{_recorded(rules.REASONS_BY_PROVIDER, blocking)}[$__range]))))",
                    "{{provider}}",
                    instant=True,
                ),
            ),
            _bargauge(
                "Top domains by failures",
                f"The {_TOP} recipient domains with the most failed deliveries per second over "
                "the selected time range, among the selected jobs, instances, providers and "
                'domains. Domains past --metrics.domain-limit are counted together as "other".',
                "ops",
                _Query(
                    f"sort_desc(topk({_TOP}, sum {by(Label.DOMAIN)} "
                    f"(rate({raw_failures}[$__range]))))",
                    "{{domain}}",
                    instant=True,
                ),
            ),
            _bargauge(
                "Top domains by blocking failures",
                f"The {_TOP} recipient domains with the most failures for a blocking reason "
                f"({blocking_names}) per second over the selected time range.",
                "ops",
                _Query(
                    f"sort_desc(topk({_TOP}, sum {by(Label.DOMAIN)} (rate("
                    f"{catalog.FAILURE_REASONS.series}{_selected(_PROVIDERS, _DOMAINS, blocking)}"
                    "[$__range]))))",
                    "{{domain}}",
                    instant=True,
                ),
            ),
        ],
    )
    yield (
        "SMTP replies",
        [
            _pie(
                "Failures by SMTP state",
                "Failed deliveries over the selected time range by the SMTP step that failed "
                "(connect, helo, starttls, auth, mail, rcpt, data; bounce: an asynchronous "
                "bounce), for the selected jobs, instances, providers and domains.",
                _Query(
                    f"sum {by(Label.STATE)} (increase({raw_failures}[$__range]))",
                    "{{state}}",
                    instant=True,
                ),
            ),
            _pie(
                "Failures by reply-code class",
                "Failed deliveries over the selected time range by SMTP reply-code class: 5xx "
                "permanent, 4xx temporary, none when SMTPeter sent no code; for the selected "
                "jobs, instances, providers and domains.",
                _Query(
                    f"sum {by(Label.CODE_CLASS)} (increase({raw_failures}[$__range]))",
                    "{{code_class}}",
                    instant=True,
                ),
            ),
            _bargauge(
                "Failures by enhanced status",
                f"The {_TOP} most frequent RFC 3463 enhanced status codes (class.subject: 5.1 "
                "addressing, 5.7 security or policy, 4.2 mailbox, ...) of the failed deliveries "
                "over the selected time range, for the selected jobs and instances. This metric "
                "has no provider or domain.",
                "short",
                _Query(
                    f"sort_desc(topk({_TOP}, sum "
                    f"{by(Label.STATUS_CLASS, Label.STATUS_SUBJECT)} (increase("
                    f"{catalog.FAILURE_STATUS.series}{_selected()}[$__range]))))",
                    "{{class}}.{{subject}}",
                    instant=True,
                ),
                width=8,
            ),
        ],
    )
    yield (
        "Complaints and engagement",
        [
            _timeseries(
                "Complaints by feedback type",
                "Spam complaints per second (5-minute rate) by ARF feedback type (abuse, fraud, "
                "virus, auth-failure, not-spam, other), for the selected jobs, instances and "
                "providers.",
                "ops",
                _Query(
                    f"sum {by(Label.FEEDBACK_TYPE)} ({_recorded(rules.COMPLAINTS_BY_PROVIDER)})",
                    "{{feedback_type}}",
                ),
                stacked=True,
            ),
            _timeseries(
                "Opens and clicks",
                "Opens and clicks per second (5-minute rate) that SMTPeter reported, for the "
                "selected jobs, instances and providers.",
                "ops",
                _Query(f"sum ({_recorded(rules.OPENS_BY_PROVIDER)})", "opens"),
                _Query(f"sum ({_recorded(rules.CLICKS_BY_PROVIDER)})", "clicks"),
            ),
        ],
    )


def _overview_variables() -> list[Builder[model.VariableModel]]:
    return [
        *_common_variables(),
        _query_variable(
            Label.PROVIDER,
            "Provider",
            "Mailbox providers (google, microsoft, yahoo, ...; other for the rest) with "
            "failure series on the selected instances.",
            _label_values(catalog.FAILURES, Label.PROVIDER, _var(JOB), _var(INSTANCE)),
        ),
        _query_variable(
            Label.DOMAIN,
            "Domain",
            "Recipient domains of the selected providers. Only the panels on raw counters "
            "(top domains, SMTP states and code classes) can filter by domain.",
            _label_values(catalog.FAILURES, Label.DOMAIN, _var(JOB), _var(INSTANCE), _PROVIDERS),
        ),
    ]


# -- exporter health ----------------------------------------------------------------------


def _health_panels(config: Config) -> Iterator[tuple[str, list[Builder[model.Panel]]]]:
    refused = regex(Label.OUTCOME, rules.rejected_outcomes(config))
    unauthenticated = regex(Label.OUTCOME, sorted(UNAUTHENTICATED))
    duplicate = eq(Label.OUTCOME, Outcome.DUPLICATE)
    buckets = catalog.REQUEST_DURATION.suffixed("bucket") + _selected()

    def quantile(q: float) -> _Query:
        return _Query(
            f"histogram_quantile({q}, sum {by('le')} (rate({buckets}[$__rate_interval])))",
            f"p{round(q * 100)}",
        )

    yield (
        "Webhooks",
        [
            _stat(
                "Targets up",
                "Whether Prometheus' last scrape of each selected instance succeeded (the up "
                "series). DOWN pages after the exporter-down alert's for: duration.",
                "short",
                _Query(f"{UP}{_selected()}", "{{instance}}", instant=True),
                _thresholds((1, "green"), base="red"),
                mappings=[
                    model.ValueMap(
                        options={
                            "0": model.ValueMappingResult(text="DOWN", color="red"),
                            "1": model.ValueMappingResult(text="UP", color="green"),
                        }
                    )
                ],
            ),
            _stat(
                "Refused requests by kind",
                "Webhook requests of each kind refused for what they carried (every 4xx but "
                "404 and 405, which scanners cause) / all requests of that kind over the last 5 "
                "minutes, for the selected jobs and instances. Orange at the rejected-requests "
                "alert's threshold, which it applies per kind.",
                "percentunit",
                _Query(
                    f"sum {by(Label.KIND)} ({rules.REQUESTS_BY_OUTCOME}{_selected(refused)})\n/\n"
                    f"(sum {by(Label.KIND)} ({rules.REQUESTS_BY_OUTCOME}{_selected()}) > 0)",
                    "{{kind}}",
                ),
                _thresholds((config.rejected_ratio, "orange")),
            ),
            _stat(
                "Time since the last event",
                "Seconds since the most recent of the selected instances accepted an event of "
                "each kind. Kinds none of them has received since it started are not shown. "
                "Orange past the webhooks-silent alert's threshold.",
                "s",
                _Query(
                    f"time() - (max {by(Label.KIND)} "
                    f"({catalog.LAST_EVENT.series}{_selected()}) > 0)",
                    "{{kind}}",
                    instant=True,
                ),
                _thresholds((seconds(config.silence_after), "orange")),
                width=12,
            ),
            _timeseries(
                "Webhook requests by outcome",
                "Webhook requests per second (5-minute rate) by outcome: accepted and "
                "duplicate (200); refused for the payload (invalid, too_large, "
                "unsupported_media, timeout), the path or method (not_found, "
                "method_not_allowed) or authentication (401: bad_signature, bad_token, ...); "
                "key_unavailable (503), client_closed, internal_error (500). For the "
                "selected jobs and instances, stacked.",
                "reqps",
                _Query(
                    f"sum {by(Label.OUTCOME)} ({rules.REQUESTS_BY_OUTCOME}{_selected()})",
                    "{{outcome}}",
                ),
                stacked=True,
            ),
            _timeseries(
                "Webhook latency",
                "Median, 90th and 99th percentile of the time from a webhook request's arrival "
                "to its response, over all kinds and the selected jobs and instances (from the "
                "request-duration histogram; resolution is its buckets).",
                "s",
                quantile(0.5),
                quantile(0.9),
                quantile(0.99),
            ),
            _timeseries(
                "Domain-label overflow",
                'Events per second whose recipient domain was counted as domain="other" '
                "because --metrics.domain-limit was reached, per selected instance. Above zero: "
                "new domains no longer get their own series (provider views are unaffected).",
                "ops",
                _Query(
                    f"sum {by(JOB, INSTANCE)} (rate("
                    f"{catalog.DOMAIN_OVERFLOW.series}{_selected()}[$__rate_interval]))",
                    "{{instance}}",
                ),
            ),
            _table(
                "Build info",
                "The smtpeter-exporter version and Python version each selected instance runs, "
                f"from {catalog.BUILD_INFO.series}.",
                _Query(f"{catalog.BUILD_INFO.series}{_selected()}", "{{instance}}", instant=True),
                (JOB, INSTANCE, Label.VERSION, Label.PYTHON_VERSION),
                width=12,
                height=8,
            ),
        ],
    )
    yield (
        "Authentication, duplicates and connections",
        [
            _timeseries(
                "Refused for authentication",
                "Webhook requests per second (5-minute rate) refused with a 401 because they do "
                "not prove they come from SMTPeter, by outcome (bad_signature, stale_date, "
                "wrong_account, bad_token, ...), for the selected jobs and instances. "
                "Steady refusals from SMTPeter's addresses mean a wrong Copernica id, a "
                "skewed clock or a proxy changing host or path.",
                "reqps",
                _Query(
                    f"sum {by(Label.OUTCOME)} ("
                    f"{rules.REQUESTS_BY_OUTCOME}{_selected(unauthenticated)})",
                    "{{outcome}}",
                ),
                stacked=True,
            ),
            _timeseries(
                "Signing-key lookups",
                "DNS lookups of SMTPeter's signing keys per second, by outcome (found, "
                "not_found, error); errors make signed webhooks wait for a 503 and a retry.",
                "ops",
                _Query(
                    f"sum {by(Label.OUTCOME)} (rate("
                    f"{catalog.KEY_LOOKUPS.series}{_selected()}[$__rate_interval]))",
                    "{{outcome}}",
                ),
            ),
            _timeseries(
                "Duplicates",
                "Retried events answered as duplicates and not counted again, per second, and "
                "events accepted unchecked because the duplicate store (Redis) could not be "
                "reached.",
                "ops",
                _Query(f"sum ({rules.REQUESTS_BY_OUTCOME}{_selected(duplicate)})", "duplicates"),
                _Query(
                    f"sum (rate({catalog.DEDUP_UNAVAILABLE.series}{_selected()}"
                    "[$__rate_interval]))",
                    "unchecked (store unavailable)",
                ),
            ),
            _timeseries(
                "Connections",
                "Client connections open on the webhook listener, and connections the "
                "server closed per second by reason (header_timeout, idle_timeout, evicted at "
                "the connection cap, bad_request).",
                "short",
                _Query(f"sum ({catalog.CONNECTIONS.series}{_selected()})", "open"),
                _Query(
                    f"sum {by(Label.REASON)} (rate("
                    f"{catalog.CONNECTIONS_CLOSED.series}{_selected()}[$__rate_interval]))",
                    "closed: {{reason}}",
                ),
            ),
        ],
    )
    yield (
        "Scrapes and process",
        [
            _timeseries(
                "Scrape duration",
                "How long Prometheus took to scrape each selected instance's /metrics.",
                "s",
                _Query(f"{SCRAPE_DURATION}{_selected()}", "{{instance}}"),
            ),
            _timeseries(
                "Samples scraped",
                "Samples each scrape of a selected instance returned: the exporter's series "
                "count, bounded by --metrics.domain-limit.",
                "short",
                _Query(f"{SCRAPE_SAMPLES}{_selected()}", "{{instance}}"),
            ),
            _timeseries(
                "Resident memory",
                "Resident set size of each selected exporter process.",
                "bytes",
                _Query(f"{RESIDENT_MEMORY}{_selected()}", "{{instance}}"),
            ),
            _timeseries(
                "CPU usage",
                "CPU time each selected exporter process used per second of wall time "
                "(100 % is one full core).",
                "percentunit",
                _Query(f"rate({CPU_SECONDS}{_selected()}[$__rate_interval])", "{{instance}}"),
            ),
        ],
    )


# -- assembly -----------------------------------------------------------------------------


def _build(
    builder: board.Dashboard,
    sections: Iterable[tuple[str, list[Builder[model.Panel]]]],
    variables: list[Builder[model.VariableModel]],
) -> dict[str, Any]:
    """The dashboard with expanded rows, ids in reading order, and the export wrapper."""
    for title, panels in sections:
        builder = builder.with_row(board.Row(title).collapsed(False))
        for panel in panels:
            builder = builder.with_panel(panel)
    built = builder.variables(variables).build()
    for number, element in enumerate(built.panels or [], start=1):
        element.id_val = number
    document: dict[str, Any] = json.loads(json.dumps(built, cls=JSONEncoder))
    return {**_export_wrapper(document), **document}


def _export_wrapper(document: dict[str, Any]) -> dict[str, Any]:
    """``__inputs`` and ``__requires`` as Grafana's "Export for sharing externally" writes them."""
    panel_types = sorted({panel["type"] for panel in _panels(document)})
    return {
        "__inputs": [
            {
                "name": DS_INPUT,
                "label": "Prometheus",
                "description": "The Prometheus that scrapes smtpeter-exporter and evaluates "
                "its recording rules.",
                "type": "datasource",
                "pluginId": "prometheus",
                "pluginName": "Prometheus",
            }
        ],
        "__requires": [
            {"type": "grafana", "id": "grafana", "name": "Grafana", "version": GRAFANA_VERSION},
            {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"},
            *(
                {"type": "panel", "id": kind, "name": _PANEL_NAMES[kind], "version": ""}
                for kind in panel_types
            ),
        ],
    }


def overview(config: Config) -> dict[str, Any]:
    """The deliverability overview, as the JSON document Grafana imports."""
    builder = _builder(
        rules.OVERVIEW_UID,
        OVERVIEW_TITLE,
        "How much mail SMTPeter fails to deliver, why and where (provider, domain, SMTP "
        "reply), complaints and engagement, and the firing SMTPeter alerts. Generated by "
        "smtpeter-exporter's `make monitoring`.",
    ).link(
        _link(
            "Exporter health",
            rules.HEALTH_UID,
            rules.HEALTH_SLUG,
            "Is the exporter receiving webhooks and being scraped?",
        )
    )
    return _build(builder, _overview_panels(config), _overview_variables())


def health(config: Config) -> dict[str, Any]:
    """The exporter-health dashboard, as the JSON document Grafana imports."""
    builder = _builder(
        rules.HEALTH_UID,
        HEALTH_TITLE,
        "Whether smtpeter-exporter receives SMTPeter's webhooks, answers them quickly and "
        "correctly, and is scraped by Prometheus. Generated by smtpeter-exporter's "
        "`make monitoring`.",
    ).link(
        _link(
            "Deliverability overview",
            rules.OVERVIEW_UID,
            rules.OVERVIEW_SLUG,
            "Failures, reasons, providers and complaints",
        )
    )
    return _build(builder, _health_panels(config), _common_variables())


def render(document: dict[str, Any]) -> str:
    """The committed form: two-space indented, keys in the order built, a final newline."""
    return json.dumps(document, indent=2, sort_keys=False) + "\n"


def dashboard_files(config: Config) -> dict[str, str]:
    """Each dashboard file's path (relative to the project root) and content."""
    return {
        OVERVIEW_FILE: render(overview(config)),
        HEALTH_FILE: render(health(config)),
    }


# -- for tests and tools ------------------------------------------------------------------


def _panels(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel that is not a row, including those inside (collapsed) rows."""
    for panel in document.get("panels", []):
        if panel.get("type") == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def panels(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel that is not a row, in order, including those inside rows."""
    return list(_panels(document))


def panel_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, expr) of every target of every panel, rows' panels included."""
    return [
        (panel.get("title", ""), target["expr"])
        for panel in _panels(dashboard)
        for target in panel.get("targets", [])
        if "expr" in target
    ]


def variable_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(variable name, query) of every query variable."""
    result = []
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        query = variable.get("query", "")
        result.append((variable["name"], query["query"] if isinstance(query, dict) else query))
    return result
