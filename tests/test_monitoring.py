"""The generated rules and routing: committed as generated, valid for promtool and amtool,
built only from declared metrics, and shaped as operators expect (labels, annotations)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.catalog import METRICS, MetricType
from exporter.errors import ANSWERED_OK, REFUSED, UNANSWERED, UNAUTHENTICATED, Outcome
from exporter.mail import Reason
from monitoring import ALERTMANAGER_FILE, RULES_FILE, generated_files
from monitoring.__main__ import main as generate
from monitoring.config import Config, Severity, load
from monitoring.rules import ALERT_PREFIX, alert_rules, recording_rules, runbook_anchor
from tests.conftest import PROJECT_ROOT, require_tool

RUNBOOKS = PROJECT_ROOT / "deploy" / "runbooks.md"


def test_committed_files_are_exactly_what_the_generator_writes() -> None:
    for relative, content in generated_files(Config()).items():
        path = PROJECT_ROOT / relative
        assert path.is_file(), f"{relative} is not committed; run make monitoring"
        assert path.read_text(encoding="utf-8") == content, f"{relative} is stale"


def test_check_mode_reports_a_stale_file_and_changes_nothing(tmp_path: Path) -> None:
    assert generate(["--output", str(tmp_path)]) == 0
    rules = tmp_path / RULES_FILE
    rules.write_text("stale\n", encoding="utf-8")
    assert generate(["--output", str(tmp_path), "--check"]) == 1
    assert rules.read_text(encoding="utf-8") == "stale\n"
    assert generate(["--output", str(tmp_path)]) == 0
    assert generate(["--output", str(tmp_path), "--check"]) == 0


def test_a_threshold_changed_in_a_toml_file_reaches_the_rules(tmp_path: Path) -> None:
    overrides = tmp_path / "mine.toml"
    overrides.write_text(
        "selector = 'job=\"mail\"'\nspike_factor = 4\n"
        '[failure_rate]\nwarning = 0.03\ncritical = 0.08\nfor = "20m"\n',
        encoding="utf-8",
    )
    config = load(overrides)
    assert (config.spike_factor, config.failure_rate.warning, config.failure_rate.for_) == (
        4,
        0.03,
        "20m",
    )
    text = generated_files(config)[RULES_FILE]
    assert "> on (job) 4 * job:smtpeter_failures_per_sent" in text
    assert "job:smtpeter_failures_per_sent:ratio_rate1h > 0.03\n" in text
    assert 'smtpeter_failures_total{job="mail"}' in text
    assert 'job="smtpeter-exporter"' not in text


def test_an_unknown_setting_or_a_bad_duration_is_refused(tmp_path: Path) -> None:
    typo = tmp_path / "typo.toml"
    typo.write_text("spike_facto = 4\n", encoding="utf-8")
    with pytest.raises(ValueError, match="spike_facto"):
        load(typo)
    with pytest.raises(ValueError, match="duration"):
        Config(spike_sustain="10 minutes")


@pytest.mark.tools
def test_rules_pass_promtool_check() -> None:
    promtool = require_tool("promtool")
    result = subprocess.run(
        [promtool, "check", "rules", str(PROJECT_ROOT / RULES_FILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(recording_rules(Config())) + len(alert_rules(Config()))} rules" in (
        result.stdout
    )


@pytest.mark.tools
def test_alertmanager_example_passes_amtool_check() -> None:
    amtool = require_tool("amtool")
    result = subprocess.run(
        [amtool, "check-config", str(PROJECT_ROOT / ALERTMANAGER_FILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.tools
@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        (["severity=critical", "alertname=SMTPeterFailureRateSpike"], "pager,chat"),
        (["severity=warning", "alertname=SMTPeterAuthenticationFailures"], "chat"),
        (["severity=info", "alertname=SMTPeterDomainLabelOverflow"], "nowhere"),
        (["alertname=SomethingElse"], "chat"),
    ],
)
def test_alerts_are_routed_by_severity(labels: list[str], receivers: str) -> None:
    amtool = require_tool("amtool")
    result = subprocess.run(
        [
            amtool,
            "config",
            "routes",
            "test",
            f"--config.file={PROJECT_ROOT / ALERTMANAGER_FILE}",
            *labels,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.stdout.strip() == receivers, result.stdout + result.stderr


def _alerts() -> list[dict[str, Any]]:
    document = yaml.safe_load((PROJECT_ROOT / RULES_FILE).read_text(encoding="utf-8"))
    return [rule for group in document["groups"] for rule in group["rules"] if "alert" in rule]


def test_every_alert_has_a_prefixed_camelcase_name_a_severity_and_the_four_annotations() -> None:
    alerts = _alerts()
    assert alerts
    for alert in alerts:
        name = alert["alert"]
        assert re.fullmatch(rf"{ALERT_PREFIX}(?:[A-Z][a-z]+)+", name), name
        assert set(alert["labels"]) == {"severity"}
        assert alert["labels"]["severity"] in set(Severity)
        annotations = alert["annotations"]
        assert set(annotations) == {"summary", "description", "runbook_url", "dashboard_url"}
        assert annotations["runbook_url"].endswith(f"runbooks.md#{runbook_anchor(name)}")


def test_every_alert_has_a_runbook_section_and_every_section_an_alert() -> None:
    sections = set(re.findall(r"^## (\S+)$", RUNBOOKS.read_text(encoding="utf-8"), re.MULTILINE))
    assert sections == {alert.name for alert in alert_rules(Config())}


def test_recorded_names_follow_level_metric_operations() -> None:
    names = [record.name for record in recording_rules(Config())]
    assert len(set(names)) == len(names)
    for name in names:
        assert re.fullmatch(r"[a-z_]+:smtpeter_[a-z_]+:[a-z0-9_]+", name), name


def test_rules_query_only_declared_metrics() -> None:
    declared = {spec.series for spec in METRICS} | {
        spec.suffixed(suffix)
        for spec in METRICS
        if spec.type is MetricType.HISTOGRAM
        for suffix in ("bucket", "sum", "count")
    }
    text = (PROJECT_ROOT / RULES_FILE).read_text(encoding="utf-8")
    queried = set(re.findall(r"(?<![:\w])(smtpeter_[a-z_]+)(?=[{\[)\s])", text))
    assert queried
    assert queried <= declared


def test_blocking_reasons_are_reasons_and_every_outcome_is_in_one_group() -> None:
    assert set(Config().blocking_reasons) <= {reason.value for reason in Reason}
    groups = (ANSWERED_OK, REFUSED, UNANSWERED)
    assert set().union(*groups) == set(Outcome)
    assert sum(len(group) for group in groups) == len(Outcome)
    assert UNAUTHENTICATED <= REFUSED
