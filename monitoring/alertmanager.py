"""An example Alertmanager configuration that routes the shipped alerts by severity.

``critical`` pages (PagerDuty) and is posted to chat; ``warning`` goes to chat (Slack);
``info`` goes nowhere (the dashboards show it). Alerts are grouped by alert name, job and
provider, so a blocking provider is one notification however many rules agree. While the
exporter is down or absent, alerts about a provider are held back: their data is stale.
Secrets are read from files, so the example can be committed and mounted as it is.
"""

from __future__ import annotations

from typing import Any, Final

from exporter.catalog import Label
from monitoring.config import Config, Severity
from monitoring.rules import ALERT_PREFIX

PAGER: Final = "pager"
CHAT: Final = "chat"
NOWHERE: Final = "nowhere"
RECEIVERS: Final = (PAGER, CHAT, NOWHERE)

PAGERDUTY_KEY_FILE: Final = "/etc/alertmanager/secrets/pagerduty-routing-key"
SLACK_URL_FILE: Final = "/etc/alertmanager/secrets/slack-webhook-url"

_SLACK_TITLE: Final = (
    '[{{ .Status | toUpper }}{{ if eq .Status "firing" }}:{{ .Alerts.Firing | len }}'
    "{{ end }}] {{ .CommonLabels.alertname }} {{ .CommonLabels.provider }}"
)
_SLACK_TEXT: Final = (
    "{{ range .Alerts }}*{{ .Labels.severity }}*: {{ .Annotations.summary }}\n"
    "{{ .Annotations.description }}\n"
    "<{{ .Annotations.runbook_url }}|runbook> <{{ .Annotations.dashboard_url }}|dashboard>\n"
    "{{ end }}"
)


def alertmanager_config(config: Config) -> dict[str, Any]:
    severity = "severity"
    return {
        "route": {
            "receiver": CHAT,
            "group_by": list(config.group_by),
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "4h",
            "routes": [
                {
                    "receiver": PAGER,
                    "matchers": [f'{severity}="{Severity.CRITICAL}"'],
                    "group_wait": "10s",
                    "repeat_interval": "1h",
                    # Also post pages to chat, where the team discusses them.
                    "continue": True,
                },
                {
                    "receiver": CHAT,
                    "matchers": [f'{severity}=~"{Severity.CRITICAL}|{Severity.WARNING}"'],
                },
                {"receiver": NOWHERE, "matchers": [f'{severity}="{Severity.INFO}"']},
            ],
        },
        "inhibit_rules": [
            {
                # A provider alert's data is stale while the exporter cannot be scraped.
                "source_matchers": [
                    f'alertname=~"{ALERT_PREFIX}ExporterDown|{ALERT_PREFIX}ExporterAbsent"'
                ],
                "target_matchers": [f'{Label.PROVIDER}=~".+"'],
                "equal": ["job"],
            },
            {
                # The critical level of an alert makes its warning level redundant.
                "source_matchers": [f'{severity}="{Severity.CRITICAL}"'],
                "target_matchers": [f'{severity}="{Severity.WARNING}"'],
                "equal": ["alertname", "job", "provider"],
            },
        ],
        "receivers": [
            {
                "name": PAGER,
                "pagerduty_configs": [
                    {
                        "routing_key_file": PAGERDUTY_KEY_FILE,
                        "description": "{{ .CommonAnnotations.summary }}",
                        "send_resolved": True,
                    }
                ],
            },
            {
                "name": CHAT,
                "slack_configs": [
                    {
                        "api_url_file": SLACK_URL_FILE,
                        "channel": "#email-deliverability",
                        "title": _SLACK_TITLE,
                        "text": _SLACK_TEXT,
                        "send_resolved": True,
                    }
                ],
            },
            {"name": NOWHERE},
        ],
    }
