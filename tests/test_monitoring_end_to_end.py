"""The shipped rules, dashboards and alert routing against real servers on loopback.

The exporter, Debian's Prometheus (loading the shipped rule file unchanged; only the scrape
and evaluation intervals and the alert resend delay are the test's) and Alertmanager (the
shipped routing, with each receiver's integration replaced by a webhook to this test) run as
real processes. Prometheus
starts on six and a half hours of the exporter's past, made by running the service's own
parse, diagnose and record steps on generated traffic (``tests/history.py``) and written
with ``promtool tsdb create-blocks-from openmetrics``: the spike alert compares with hours
it could not otherwise have. Then Microsoft starts refusing the sender, live, over HTTP.

The test asserts, through Prometheus' HTTP API, that every recording rule has samples, that
every query of every panel of both dashboards parses and returns data, and that the spike,
provider-blocking and authentication alerts reach the right receivers with the right labels.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterable
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml

from benchmarks.traffic import Post, Traffic
from monitoring import ALERTMANAGER_FILE, RULES_FILE
from monitoring.alertmanager import RECEIVERS
from monitoring.config import Config
from monitoring.dashboards import panel_queries, variable_queries
from monitoring.rules import recording_rules
from tests.conftest import PROJECT_ROOT, free_ports, require_tool
from tests.history import openmetrics
from tests.servers import Receiver, answers, get_json, servers, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.tools]

JOB = "smtpeter-exporter"
DASHBOARDS = PROJECT_ROOT / "grafana" / "dashboards"
HISTORY_HOURS = 6.5


class Exporter:
    """Posts to the running exporter over one keep-alive connection."""

    def __init__(self, port: int) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def post_all(self, posts: Iterable[Post]) -> int:
        count = 0
        for path, fields in posts:
            body = urllib.parse.urlencode(fields).encode()
            headers = {"Content-Type": "application/x-www-form-urlencoded"}
            self.connection.request("POST", path, body, headers)
            response = self.connection.getresponse()
            response.read()
            assert response.status == 200, (path, response.status)
            count += 1
        return count

    def close(self) -> None:
        self.connection.close()

    def post_invalid(self, count: int) -> None:
        for _ in range(count):
            self.connection.request(
                "POST", "/webhooks/failures", b"recipient=nobody", {"Content-Type": "text/plain"}
            )
            response = self.connection.getresponse()
            response.read()
            assert response.status == 415


class Prometheus:
    def __init__(self, port: int) -> None:
        self.api = f"http://127.0.0.1:{port}/api/v1"

    def query(self, expr: str) -> list[dict[str, Any]]:
        answer = get_json(f"{self.api}/query", {"query": expr})
        assert answer["status"] == "success", (expr, answer)
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def label_values(self, label: str, match: str) -> list[str]:
        answer = get_json(f"{self.api}/label/{label}/values", {"match[]": match})
        values: list[str] = answer["data"]
        return values

    def firing(self) -> dict[str, list[dict[str, str]]]:
        alerts = get_json(f"{self.api}/alerts")["data"]["alerts"]
        found: dict[str, list[dict[str, str]]] = {}
        for alert in alerts:
            if alert["state"] == "firing":
                found.setdefault(alert["labels"]["alertname"], []).append(alert["labels"])
        return found


def _prometheus_config(
    directory: Path, exporter_port: int, alertmanager_port: int, *, rules: bool
) -> Path:
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(PROJECT_ROOT / RULES_FILE)] if rules else [],
        "alerting": {
            "alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]}]
        },
        "scrape_configs": [
            {"job_name": JOB, "static_configs": [{"targets": [f"127.0.0.1:{exporter_port}"]}]}
        ],
    }
    path = directory / "prometheus.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def _alertmanager_config(directory: Path, receiver_port: int) -> Path:
    """The shipped routing with every receiver's integration sent to the test instead."""
    config = yaml.safe_load((PROJECT_ROOT / ALERTMANAGER_FILE).read_text(encoding="utf-8"))
    config["receivers"] = [
        {
            "name": receiver["name"],
            "webhook_configs": [{"url": f"http://127.0.0.1:{receiver_port}/{receiver['name']}"}],
        }
        for receiver in config["receivers"]
    ]
    path = directory / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def _substitute(expr: str, instance: str) -> str:
    """Grafana's template variables as the dashboards' defaults would set them."""
    values = {
        "job": JOB,
        # A regex inside a PromQL string: its backslashes are escaped once more.
        "instance": re.escape(instance).replace("\\", "\\\\"),
        "provider": ".*",
        "domain": ".*",
        "__rate_interval": "1m",
        "__interval": "15s",
        "__range": "1h",
    }
    return re.sub(r"\$\{?(\w+)\}?", lambda match: values[match[1]], expr)


def _arrived(receiver: Receiver) -> dict[tuple[str, str], list[dict[str, str]]]:
    """(receiver, alertname) -> label sets of the firing alerts that arrived there."""
    found: dict[tuple[str, str], list[dict[str, str]]] = {}
    for path, document in receiver.received():
        for alert in document["alerts"]:
            if alert["status"] == "firing":
                key = (path.strip("/"), alert["labels"]["alertname"])
                found.setdefault(key, []).append(alert["labels"])
    return found


def test_rules_dashboards_and_routing_work_on_real_prometheus_and_alertmanager(
    tmp_path: Path,
) -> None:
    prometheus_bin = require_tool("prometheus")
    promtool = require_tool("promtool")
    alertmanager_bin = require_tool("prometheus-alertmanager")
    exporter_port, prometheus_port, alertmanager_port, receiver_port = free_ports(4)
    instance = f"127.0.0.1:{exporter_port}"
    ports = (exporter_port, alertmanager_port)
    with servers(tmp_path) as running:
        running.start(
            "exporter",
            [str(Path(sys.executable).parent / "smtpeter-exporter")],
            env={
                **os.environ,
                "SMTPETER_EXPORTER_WEB_LISTEN_ADDRESS": instance,
                "SMTPETER_EXPORTER_LOG_FORMAT": "json",
            },
        )
        wait_for("the exporter", lambda: answers(f"http://{instance}/readyz"), 20)

        # The past: six and a half hours of ordinary traffic, 3 % failures.
        end = time.time() - 5
        history = tmp_path / "history.om"
        history.write_text(
            openmetrics(JOB, instance, end - HISTORY_HOURS * 3600, end), encoding="utf-8"
        )
        data = tmp_path / "prometheus-data"
        subprocess.run(
            [promtool, "tsdb", "create-blocks-from", "openmetrics", str(history), str(data)],
            check=True,
            capture_output=True,
            timeout=120,
        )

        # The incident: Microsoft refuses the sender, among ordinary traffic.
        exporter = Exporter(exporter_port)
        traffic = Traffic(seed=3)
        exporter.post_all(traffic.blocked("microsoft") for _ in range(300))
        exporter.post_all(traffic.delivery(domain) for domain in ("gmail.com", "yahoo.com") * 150)
        exporter.post_all(traffic.mix(300))

        receiver = running.receiver(receiver_port)
        running.start(
            "alertmanager",
            [
                alertmanager_bin,
                f"--config.file={_alertmanager_config(tmp_path, receiver_port)}",
                f"--storage.path={tmp_path / 'alertmanager-data'}",
                f"--web.listen-address=127.0.0.1:{alertmanager_port}",
                "--cluster.listen-address=",
            ],
        )
        running.start(
            "prometheus",
            [
                prometheus_bin,
                f"--config.file={_prometheus_config(tmp_path, *ports, rules=False)}",
                f"--storage.tsdb.path={data}",
                f"--web.listen-address=127.0.0.1:{prometheus_port}",
                # After the reload below, Prometheus learns Alertmanager's address again a
                # few seconds late; alerts it sent meanwhile are resent after this delay
                # (a minute by default).
                "--rules.alert.resend-delay=1s",
            ],
        )
        prometheus = Prometheus(prometheus_port)
        for name, port in (("Alertmanager", alertmanager_port), ("Prometheus", prometheus_port)):
            wait_for(name, partial(answers, f"http://127.0.0.1:{port}/-/ready"), 30)
        up = f'up{{job="{JOB}"}} == 1'
        wait_for("the first scrape", lambda: prometheus.query(up) or None, 30)

        # With the exporter's series in Prometheus at their current values, the rest of the
        # traffic moves every counter the panels read: all six kinds, authentication
        # failures, and a few requests the exporter refuses.
        exporter.post_all(traffic.auth_failure() for _ in range(12))
        exporter.post_all(traffic.blocked("microsoft") for _ in range(100))
        exporter.post_all(traffic.mix(600))
        exporter.post_all(traffic.bounce() for _ in range(5))
        exporter.post_all(traffic.abuse() for _ in range(5))
        exporter.post_invalid(5)
        exporter.close()
        time.sleep(2)

        # The shipped rules are loaded now, so their first evaluation already sees minutes
        # of the incident (their sustain windows are measured in the data, from then on).
        _prometheus_config(tmp_path, *ports, rules=True)
        running.signal("prometheus", signal.SIGHUP)
        running.check_running()

        # Alerts fire in Prometheus and arrive through Alertmanager where the routing says.
        expected = {
            ("pager", "SMTPeterFailureRateSpike"): {"job": JOB, "severity": "critical"},
            ("chat", "SMTPeterFailureRateSpike"): {"job": JOB, "severity": "critical"},
            ("pager", "SMTPeterProviderBlocking"): {
                "job": JOB,
                "provider": "microsoft",
                "severity": "critical",
            },
            ("chat", "SMTPeterAuthenticationFailures"): {"job": JOB, "severity": "warning"},
        }

        def all_arrived() -> dict[tuple[str, str], list[dict[str, str]]] | None:
            running.check_running()
            arrived = _arrived(receiver)
            return arrived if set(expected) <= set(arrived) else None

        arrived = wait_for(
            f"alerts at the receiver (firing in Prometheus: {sorted(prometheus.firing())})",
            all_arrived,
            90,
            every=1,
        )
        for key, labels in expected.items():
            [got] = arrived[key]
            assert {name: got[name] for name in labels} == labels, key
            assert set(got) == {"alertname", *labels}, got
        assert all(path in RECEIVERS for path, _ in arrived)
        assert ("pager", "SMTPeterAuthenticationFailures") not in arrived
        blocking = prometheus.firing()["SMTPeterProviderBlocking"]
        assert {labels["provider"] for labels in blocking} == {"microsoft"}

        # Every recording rule has samples.
        empty = [r.name for r in recording_rules(Config()) if not prometheus.query(r.name)]
        assert not empty, f"recording rules without samples: {empty}"

        # Every query of every panel of every dashboard parses and returns data.
        dashboards = sorted(DASHBOARDS.glob("*.json"))
        assert len(dashboards) == 2
        for path in dashboards:
            dashboard = json.loads(path.read_text(encoding="utf-8"))
            for title, expr in panel_queries(dashboard):
                query = _substitute(expr, instance)
                assert prometheus.query(query), f"{path.name}: panel {title!r} is empty: {query}"
            for name, expr in variable_queries(dashboard):
                metric, label = _label_values(_substitute(expr, instance))
                assert prometheus.label_values(label, metric), f"{path.name}: ${name} is empty"


def _label_values(expr: str) -> tuple[str, str]:
    """``label_values(metric{...}, label)`` -> (metric selector, label)."""
    match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", expr.strip())
    assert match is not None, expr
    return match[1], match[2]
