"""deploy/compose/: the demo stack's files are valid and agree with each other, and its
Prometheus configuration, run by Debian's Prometheus, scrapes the exporter.

No image can be pulled here, so the stack's own containers do not run. Instead the end-to-end
test builds what Compose would give each process, on loopback: a private network namespace
(only ``lo``, so the Compose ports are free and nothing leaves the machine) and a private
mount namespace in which ``/etc/hosts`` maps the service names to 127.0.0.1 and every file
the Compose file mounts into Prometheus and Alertmanager is bind-mounted at the path it has
in the container. The exporter runs with the Compose file's environment, Prometheus and
Alertmanager with its commands (only their data directories differ), and the sample-traffic
script posts to ``exporter:10587``.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from monitoring.alertmanager import PAGERDUTY_KEY_FILE, SLACK_URL_FILE
from monitoring.config import Config
from tests.conftest import PROJECT_ROOT, free_ports, require_tool
from tests.servers import answers, servers, wait_for

COMPOSE_DIR = PROJECT_ROOT / "deploy" / "compose"
COMPOSE_FILE = COMPOSE_DIR / "compose.yaml"
TRAFFIC_SCRIPT = COMPOSE_DIR / "send-traffic.py"
JOB = "smtpeter-exporter"


def _compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    return document


def _services() -> dict[str, Any]:
    services: dict[str, Any] = _compose()["services"]
    return services


def _bind_mounts(service: str) -> Iterator[tuple[Path, PurePosixPath]]:
    """(file or directory in this repository, path in the container) of a service's binds."""
    for volume in _services()[service].get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            yield (COMPOSE_DIR / source).resolve(), PurePosixPath(target)


def _file_on_host(service: str, container_path: str) -> Path:
    """The repository file that is ``container_path`` inside ``service``."""
    wanted = PurePosixPath(container_path)
    for source, target in _bind_mounts(service):
        if wanted == target:
            return source
        if wanted.is_relative_to(target):
            return source / wanted.relative_to(target)
    raise AssertionError(f"{container_path} is not mounted into {service}")


def _address_port(address: str) -> int:
    return int(address.rpartition(":")[2])


def _prometheus_config() -> dict[str, Any]:
    path = _file_on_host("prometheus", "/etc/prometheus/prometheus.yml")
    config: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return config


def _targets(job: str) -> list[str]:
    [scrape] = [s for s in _prometheus_config()["scrape_configs"] if s["job_name"] == job]
    return [target for static in scrape["static_configs"] for target in static["targets"]]


def test_compose_file_validates_against_the_compose_specification() -> None:
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "check-jsonschema"),
            "--builtin-schema",
            "vendor.compose-spec",
            str(COMPOSE_FILE),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_file_the_stack_mounts_or_builds_from_exists() -> None:
    compose = _compose()
    named = set(compose.get("volumes", {}))
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (COMPOSE_DIR / source).exists(), f"{name} mounts missing {source}"
            elif not source.startswith(("/", "$")):
                assert source in named, f"{name} uses undeclared volume {source}"
        if "build" in service:
            context = COMPOSE_DIR / service["build"]["context"]
            assert (context / service["build"]["dockerfile"]).is_file()
    # What the mounted Alertmanager configuration reads from its secrets directory.
    for secret in (PAGERDUTY_KEY_FILE, SLACK_URL_FILE):
        assert _file_on_host("alertmanager", secret).is_file(), secret


def test_names_and_ports_agree_with_the_scrape_configuration() -> None:
    services = _services()
    exporter = services["exporter"]
    environment = exporter["environment"]
    metrics_port = _address_port(environment["SMTPETER_EXPORTER_WEB_METRICS_LISTEN_ADDRESS"])
    webhook_port = _address_port(environment["SMTPETER_EXPORTER_WEB_LISTEN_ADDRESS"])
    # Prometheus scrapes the exporter's private listener, under the job the rules select...
    assert _targets(JOB) == [f"exporter:{metrics_port}"]
    assert f'job="{JOB}"' in Config().selector
    # ... which is not published; the webhook listener is, on loopback.
    assert exporter["ports"] == [f"127.0.0.1:{webhook_port}:{webhook_port}"]
    for job in ("alertmanager", "loki"):
        [target] = _targets(job)
        host, port = target.split(":")
        assert host in services
        assert f"127.0.0.1:{port}:{port}" in services[host]["ports"]
    [alertmanagers] = _prometheus_config()["alerting"]["alertmanagers"]
    assert alertmanagers["static_configs"][0]["targets"] == _targets("alertmanager")
    # The rule file glob finds the shipped rules where Compose mounts them.
    [pattern] = _prometheus_config()["rule_files"]
    rule_targets = [str(t) for s, t in _bind_mounts("prometheus") if s.suffix == ".yml"]
    assert [t for t in rule_targets if fnmatch.fnmatch(t, pattern)] == [
        "/etc/prometheus/rules/smtpeter-exporter.rules.yml"
    ]


def test_grafana_and_the_log_shipper_point_at_the_stacks_services() -> None:
    services = _services()
    for source, target in _bind_mounts("grafana"):
        if "datasources" not in str(target):
            continue
        for datasource in yaml.safe_load(source.read_text(encoding="utf-8"))["datasources"]:
            url = urllib.parse.urlsplit(datasource["url"])
            assert url.hostname in services, datasource["url"]
            assert f"127.0.0.1:{url.port}:{url.port}" in services[url.hostname]["ports"]
    # The dashboard provider reads the directory the dashboards are mounted at.
    provider_file = _file_on_host(
        "grafana", "/etc/grafana/provisioning/dashboards/smtpeter-exporter.yml"
    )
    [provider] = yaml.safe_load(provider_file.read_text(encoding="utf-8"))["providers"]
    dashboards = _file_on_host("grafana", provider["options"]["path"])
    assert sorted(p.name for p in dashboards.glob("*.json")) == [
        "smtpeter-deliverability.json",
        "smtpeter-exporter-health.json",
    ]
    # Alloy collects the containers that carry the exporter's label and pushes to Loki.
    alloy = _file_on_host("alloy", "/etc/alloy/config.alloy").read_text(encoding="utf-8")
    [(key, value)] = services["exporter"]["labels"].items()
    assert f'"{key}={value}"' in alloy
    assert '"http://loki:3100/loki/api/v1/push"' in alloy


@pytest.mark.tools
def test_promtool_and_amtool_accept_the_mounted_configurations(tmp_path: Path) -> None:
    promtool = require_tool("promtool")
    amtool = require_tool("amtool")
    config = tmp_path / "prometheus.yml"
    # As mounted: the rule file sits at the path the configuration's glob names.
    text = _file_on_host("prometheus", "/etc/prometheus/prometheus.yml").read_text()
    [pattern] = _prometheus_config()["rule_files"]
    rules = tmp_path / "rules"
    rules.mkdir()
    rules_source = _file_on_host("prometheus", "/etc/prometheus/rules/smtpeter-exporter.rules.yml")
    (rules / rules_source.name).write_text(rules_source.read_text())
    config.write_text(text.replace(pattern, str(rules / PurePosixPath(pattern).name)))
    result = subprocess.run(
        [promtool, "check", "config", str(config)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "SUCCESS: 1 rule files found" in output
    alertmanager = _file_on_host("alertmanager", "/etc/alertmanager/alertmanager.yml")
    result = subprocess.run(
        [amtool, "check-config", str(alertmanager)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


class Namespace:
    """A private network and mount namespace held open by a sleeping process."""

    def __init__(self, directory: Path, hosts: list[str], mounts: list[tuple[Path, str]]) -> None:
        self.directory = directory
        hosts_file = directory / "hosts"
        hosts_file.write_text(f"127.0.0.1 localhost {' '.join(hosts)}\n::1 localhost\n")
        ip = require_tool("ip")
        script = [
            "set -eu",
            f"{ip} link set lo up",
            f"mount --bind {shlex.quote(str(hosts_file))} /etc/hosts",
        ]
        # A tmpfs over each top directory (/etc/prometheus, ...) hides the host's files there;
        # then each mounted file or directory is bound at its path in the container.
        for top in sorted({"/".join(target.split("/")[:3]) for _, target in mounts}):
            script += [f"mkdir -p {top}", f"mount -t tmpfs tmpfs {top}"]
        for source, target in mounts:
            make = (
                f"mkdir -p {target}"
                if source.is_dir()
                else (
                    f"mkdir -p {shlex.quote(str(PurePosixPath(target).parent))} && touch {target}"
                )
            )
            script += [make, f"mount --bind -o ro {shlex.quote(str(source))} {target}"]
        script.append("echo ready; exec sleep 600")
        self.process = subprocess.Popen(
            [
                "unshare",
                "--net",
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                "\n".join(script),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        if self.process.stdout.readline().strip() != "ready":
            self.process.wait(timeout=10)
            assert self.process.stderr is not None
            pytest.fail(f"could not set the namespaces up: {self.process.stderr.read()}")

    def command(self, *argv: str) -> list[str]:
        return ["nsenter", f"--target={self.process.pid}", "--net", "--mount", "--", *argv]

    def get_json(self, url: str) -> Any:  # noqa: ANN401 - JSON
        """GET ``url`` from inside (names resolve through the namespace's /etc/hosts)."""
        fetch = (
            "import sys, urllib.request; "
            "sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())"
        )
        result = subprocess.run(
            self.command(sys.executable, "-c", fetch, url),
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        if result.returncode != 0:
            raise OSError(result.stderr.strip().splitlines()[-1] if result.stderr else url)
        return json.loads(result.stdout)

    def close(self) -> None:
        self.process.kill()
        self.process.communicate(timeout=10)


def _require_namespaces() -> None:
    require_tool("unshare")
    require_tool("nsenter")
    if os.geteuid() != 0:
        message = "creating network and mount namespaces needs root"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def _environment(service: str) -> dict[str, str]:
    return {str(k): str(v) for k, v in _services()[service]["environment"].items()}


def _command(service: str, storage_flag: str, storage: Path) -> list[str]:
    """The service's command as Compose gives it, with its data kept in ``storage``."""
    flags: list[str] = _services()[service]["command"]
    return [f"{storage_flag}={storage}" if f.startswith(storage_flag) else f for f in flags]


@pytest.mark.slow
@pytest.mark.tools
def test_the_stacks_prometheus_scrapes_the_exporter_on_loopback(tmp_path: Path) -> None:
    _require_namespaces()
    prometheus_bin = require_tool("prometheus")
    alertmanager_bin = require_tool("prometheus-alertmanager")
    mounts = [
        (source, str(target))
        for service in ("prometheus", "alertmanager")
        for source, target in _bind_mounts(service)
    ]
    namespace = Namespace(tmp_path, sorted(_services()), mounts)
    exporter_env = _environment("exporter")
    events = 60
    try:
        with servers(tmp_path) as running:
            running.start(
                "exporter",
                namespace.command(str(Path(sys.executable).parent / "smtpeter-exporter")),
                env={**os.environ, **exporter_env},
            )
            metrics_port = _address_port(
                exporter_env["SMTPETER_EXPORTER_WEB_METRICS_LISTEN_ADDRESS"]
            )
            webhook_port = _address_port(exporter_env["SMTPETER_EXPORTER_WEB_LISTEN_ADDRESS"])
            wait_for(
                "the exporter",
                lambda: namespace.get_json(f"http://exporter:{metrics_port}/healthz"),
                20,
            )
            # The demo's traffic, posted by the script the README gives, before Prometheus
            # starts: its first scrape already sees every event.
            posted = subprocess.run(
                namespace.command(
                    sys.executable,
                    str(TRAFFIC_SCRIPT),
                    "--url",
                    f"http://exporter:{webhook_port}",
                    "--events",
                    str(events),
                    "--rate",
                    "0",
                    "--blocking",
                    "microsoft",
                ),
                capture_output=True,
                text=True,
                check=False,
                timeout=60,
            )
            assert posted.returncode == 0, posted.stdout + posted.stderr
            assert f"posted {events} events" in posted.stdout

            running.start(
                "alertmanager",
                namespace.command(
                    alertmanager_bin,
                    *_command("alertmanager", "--storage.path", tmp_path / "am-data"),
                    "--cluster.listen-address=",
                ),
            )
            running.start(
                "prometheus",
                namespace.command(
                    prometheus_bin,
                    *_command("prometheus", "--storage.tsdb.path", tmp_path / "prom-data"),
                ),
            )
            api = "http://prometheus:9090/api/v1"

            def scraped() -> list[dict[str, Any]] | None:
                running.check_running()
                answer = namespace.get_json(
                    f"{api}/query?query="
                    + urllib.parse.quote(f'sum(smtpeter_webhook_requests_total{{job="{JOB}"}})')
                )
                result: list[dict[str, Any]] = answer["data"]["result"]
                return result or None

            # The scrape interval is the Compose configuration's (15 s).
            [total] = wait_for("Prometheus' first scrape of the exporter", scraped, 45)
            assert float(total["value"][1]) == events

            targets = namespace.get_json(f"{api}/targets")["data"]["activeTargets"]
            [exporter_target] = [t for t in targets if t["labels"]["job"] == JOB]
            assert exporter_target["health"] == "up"
            assert exporter_target["labels"]["instance"] == f"exporter:{metrics_port}"

            groups = namespace.get_json(f"{api}/rules")["data"]["groups"]
            assert {g["name"] for g in groups} == {
                "smtpeter-exporter.recording",
                "smtpeter-exporter.alerts",
            }
            managers = namespace.get_json(f"{api}/alertmanagers")["data"]
            assert [a["url"] for a in managers["activeAlertmanagers"]] == [
                "http://alertmanager:9093/api/v2/alerts"
            ]
            status = namespace.get_json("http://alertmanager:9093/api/v2/status")
            assert status["config"]["original"].count("receiver") >= 3
    finally:
        namespace.close()


@pytest.mark.slow
def test_the_traffic_script_posts_every_kind_and_reports_failure(tmp_path: Path) -> None:
    """Run against an exporter on a free loopback port: every kind arrives and is counted,
    and the script exits 1 when something was refused."""
    [webhook_port] = free_ports(1)
    address = f"127.0.0.1:{webhook_port}"
    with servers(tmp_path) as running:
        running.start(
            "exporter",
            [str(Path(sys.executable).parent / "smtpeter-exporter")],
            env={
                **os.environ,
                "SMTPETER_EXPORTER_WEB_LISTEN_ADDRESS": address,
                "SMTPETER_EXPORTER_LOG_FORMAT": "json",
            },
        )
        wait_for("the exporter", lambda: answers(f"http://{address}/readyz"), 20)
        result = subprocess.run(
            [
                sys.executable,
                str(TRAFFIC_SCRIPT),
                "--url",
                f"http://{address}",
                "--events",
                "300",
                "--rate",
                "0",
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.strip() == f"posted 300 events to http://{address}: 300 x 200"
        with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as response:
            metrics = response.read().decode()
        counted = {
            match[1]: float(match[2])
            for match in re.finditer(
                r'smtpeter_webhook_requests_total\{kind="(\w+)",outcome="accepted"\} (\S+)',
                metrics,
            )
        }
        assert set(counted) >= {"failure", "delivery", "open", "click"}
        assert sum(counted.values()) == 300
        # A wrong URL: every post refused, and the script says so in its exit status.
        refused = subprocess.run(
            [
                sys.executable,
                str(TRAFFIC_SCRIPT),
                "--url",
                f"http://{address}/nowhere",
                "--events",
                "3",
                "--rate",
                "0",
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert refused.returncode == 1
        assert "3 x 404" in refused.stdout
