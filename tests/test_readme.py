"""The README documents every option and every metric the code has."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry

from exporter.mail.precedence import markdown
from exporter.mail.vocabulary import REASON_MEANINGS
from exporter.metrics import Metrics
from exporter.settings import OPTIONS
from monitoring import dashboards
from monitoring.config import Config
from monitoring.rules import alert_rules, recording_rules

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def test_every_flag_and_environment_variable_is_in_the_configuration_table() -> None:
    for option in OPTIONS:
        assert f"| `{option.flag}` | `{option.env}` |" in README, option.flag


def test_every_metric_is_in_the_metrics_table() -> None:
    registry = CollectorRegistry()
    Metrics(registry, domain_limit=1)
    for metric in registry.collect():
        if not metric.name.startswith("smtpeter_"):
            continue
        name = metric.name + ("_total" if metric.type == "counter" else "")
        assert f"| `{name}` | {metric.type} |" in README, name


def test_every_alert_recording_rule_and_panel_is_documented() -> None:
    config = Config()
    for alert in alert_rules(config):
        assert f"| `{alert.name}` |" in README, alert.name
    for record in recording_rules(config):
        assert f"| `{record.name}` | {record.meaning} |" in README, record.name
    for dashboard in (dashboards.overview(config), dashboards.health(config)):
        for title, _ in dashboards.panel_queries(dashboard):
            assert f"| {title} |" in README, title


def test_every_reason_is_in_the_reasons_table_with_its_meaning() -> None:
    for reason, meaning in REASON_MEANINGS.items():
        assert f"| `{reason}` | {meaning} |" in README, reason


def test_the_precedence_tables_are_the_generated_ones() -> None:
    begin = "<!-- precedence: generated from exporter/mail/precedence.py by markdown() -->\n"
    start = README.index(begin) + len(begin)
    end = README.index("\n<!-- /precedence -->", start)
    assert README[start:end] == markdown(), "paste `python -m exporter.mail.precedence`"
