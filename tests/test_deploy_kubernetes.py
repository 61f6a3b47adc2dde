"""deploy/kubernetes/: the kustomize base and the example overlay, built with ``kubectl
kustomize`` and checked the way a cluster would check them: Kubernetes' own schemas
(``kubernetes-validate --strict``), the Prometheus Operator's CRD schemas (a pinned copy in
``tests/fixtures/deploy/crds``), and ``promtool`` for the rules inside the PrometheusRule."""

from __future__ import annotations

import base64
import copy
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from monitoring import PROMETHEUS_RULE_FILE, RULES_FILE
from monitoring.config import Config
from tests.conftest import PROJECT_ROOT, require_tool

KUSTOMIZE = PROJECT_ROOT / "deploy" / "kubernetes"
BASE = KUSTOMIZE / "base"
OVERLAY = KUSTOMIZE / "overlays" / "example"
CRDS = PROJECT_ROOT / "tests" / "fixtures" / "deploy" / "crds"
DOCKERFILE = PROJECT_ROOT / "Dockerfile"
NAME = "smtpeter-exporter"
# The oldest Kubernetes kubernetes-validate has schemas for, and its newest (its default).
KUBERNETES_VERSIONS = ("1.25.0", None)

Manifest = dict[str, Any]


def _build(path: Path) -> list[Manifest]:
    kubectl = require_tool("kubectl")
    result = subprocess.run(
        [kubectl, "kustomize", str(path)], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return [document for document in yaml.safe_load_all(result.stdout) if document]


@pytest.fixture(scope="module")
def built() -> dict[str, list[Manifest]]:
    return {"base": _build(BASE), "overlay": _build(OVERLAY)}


#: The base's name, with the hash suffix kustomize gives generated ConfigMaps and Secrets.
_OWN_NAME = re.compile(rf"{NAME}(-[a-z0-9]{{10}})?")


def _one(manifests: list[Manifest], kind: str) -> Manifest:
    """The object of ``kind`` the base makes (not the overlay's Redis)."""
    [found] = [
        m for m in manifests if m["kind"] == kind and _OWN_NAME.fullmatch(m["metadata"]["name"])
    ]
    return found


def _exporter_container(manifests: list[Manifest]) -> Manifest:
    [container] = _one(manifests, "Deployment")["spec"]["template"]["spec"]["containers"]
    found: Manifest = container
    return found


def _env(container: Manifest) -> dict[str, Manifest]:
    return {entry["name"]: entry for entry in container.get("env", [])}


def test_base_and_overlay_build_with_kubectl_kustomize(built: dict[str, list[Manifest]]) -> None:
    expected = {
        "Deployment",
        "Service",
        "ServiceMonitor",
        "PrometheusRule",
        "PodDisruptionBudget",
    }
    assert {m["kind"] for m in built["base"]} == expected
    assert {m["kind"] for m in built["overlay"]} == expected | {
        "Namespace",
        "ConfigMap",
        "Secret",
        "NetworkPolicy",
    }
    assert {
        m["metadata"].get("namespace") for m in built["overlay"] if m["kind"] != "Namespace"
    } == {"mail-monitoring"}


def _kubernetes_validate(path: Path, version: str | None) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).parent / "kubernetes-validate"), "--strict"]
    if version:
        command += ["--kubernetes-version", version]
    return subprocess.run(
        [*command, str(path)], capture_output=True, text=True, check=False, timeout=120
    )


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS, ids=["oldest", "newest"])
def test_built_objects_pass_kubernetes_validate_strict(
    built: dict[str, list[Manifest]], tmp_path: Path, version: str | None
) -> None:
    for name, manifests in built.items():
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump_all(manifests), encoding="utf-8")
        result = _kubernetes_validate(path, version)
        output = result.stdout + result.stderr
        assert result.returncode == 0, output
        # Every built-in kind was validated; only the operator's kinds have no schema there
        # (the next test checks them against the CRDs).
        unvalidated = set(re.findall(r"Couldn't find schema for kind (\w+)", output))
        assert unvalidated == {"ServiceMonitor", "PrometheusRule"}, output
        passed = len(re.findall(r" passed for resource ", output))
        assert passed == len(manifests) - 2, output


def test_strict_validation_rejects_a_misspelt_field(
    built: dict[str, list[Manifest]], tmp_path: Path
) -> None:
    """The control for the test above: strict mode does catch a field Kubernetes lacks."""
    deployment = copy.deepcopy(_one(built["base"], "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbes"] = {}
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump(deployment), encoding="utf-8")
    result = _kubernetes_validate(path, None)
    assert result.returncode != 0
    assert "readinesProbes" in result.stdout + result.stderr


def _strict(schema: Any) -> Any:  # noqa: ANN401 - any part of a JSON schema
    """The CRD schema as a strict server applies it, for Python's ``jsonschema``.

    Unknown fields are errors, as with ``kubectl apply --validate=strict``: every object
    schema that lists its properties allows no others. A pattern that sets a flag after
    ``^`` (fine for Go's regexp, an error for Python's) gets the flag first.
    """
    if isinstance(schema, dict):
        schema = {key: _strict(value) for key, value in schema.items() if key != "x-shared"}
        if "properties" in schema and "additionalProperties" not in schema:
            schema["additionalProperties"] = False
        if isinstance(schema.get("pattern"), str):
            schema["pattern"] = re.sub(r"^\^(\(\?[a-z]+\))", r"\1^", schema["pattern"])
        return schema
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    return schema


def _crd_validator(kind: str) -> jsonschema.Draft7Validator:
    path = CRDS / f"{kind.lower()}-v1.schema.yaml"
    schema = _strict(yaml.safe_load(path.read_text(encoding="utf-8")))
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def _errors(kind: str, manifest: Manifest) -> list[str]:
    return [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in _crd_validator(kind).iter_errors(manifest)
    ]


@pytest.mark.parametrize("kind", ["ServiceMonitor", "PrometheusRule"])
def test_operator_objects_match_the_prometheus_operator_crd_schemas(
    built: dict[str, list[Manifest]], kind: str
) -> None:
    for manifests in built.values():
        manifest = _one(manifests, kind)
        assert manifest["apiVersion"] == "monitoring.coreos.com/v1"
        assert _errors(kind, manifest) == []


def test_crd_schemas_reject_a_misplaced_field(built: dict[str, list[Manifest]]) -> None:
    monitor = copy.deepcopy(_one(built["base"], "ServiceMonitor"))
    monitor["spec"]["endpoints"][0]["scrapeInterval"] = "30s"
    assert any("scrapeInterval" in error for error in _errors("ServiceMonitor", monitor))
    rule = copy.deepcopy(_one(built["base"], "PrometheusRule"))
    rule["spec"]["groups"][1]["rules"][0]["for"] = "10 minutes"
    assert any("for" in error for error in _errors("PrometheusRule", rule))


def _rule_file() -> Manifest:
    rules: Manifest = yaml.safe_load((PROJECT_ROOT / RULES_FILE).read_text(encoding="utf-8"))
    return rules


def test_prometheus_rule_holds_exactly_the_shipped_rule_groups(
    built: dict[str, list[Manifest]],
) -> None:
    committed = yaml.safe_load((PROJECT_ROOT / PROMETHEUS_RULE_FILE).read_text(encoding="utf-8"))
    assert committed["spec"] == _rule_file()
    for manifests in built.values():
        assert _one(manifests, "PrometheusRule")["spec"] == _rule_file()


@pytest.mark.tools
def test_rule_groups_inside_the_prometheus_rule_pass_promtool(
    built: dict[str, list[Manifest]], tmp_path: Path
) -> None:
    promtool = require_tool("promtool")
    path = tmp_path / "groups.yml"
    path.write_text(yaml.safe_dump(_one(built["overlay"], "PrometheusRule")["spec"]))
    result = subprocess.run(
        [promtool, "check", "rules", str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def _dockerfile_user() -> tuple[int, int]:
    match = re.search(r"^USER (\d+):(\d+)$", DOCKERFILE.read_text(encoding="utf-8"), re.MULTILINE)
    assert match, "the Dockerfile sets a numeric USER"
    return int(match[1]), int(match[2])


def test_the_deployment_is_hardened_and_probes_the_private_listener(
    built: dict[str, list[Manifest]],
) -> None:
    deployment = _one(built["base"], "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = _exporter_container(built["base"])
    user, group = _dockerfile_user()
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]) == (
        user,
        group,
    )
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert "memory" in container["resources"]["limits"]
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])

    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    env = _env(container)
    metrics_address = env["SMTPETER_EXPORTER_WEB_METRICS_LISTEN_ADDRESS"]["value"]
    assert metrics_address == f":{ports['metrics']}"
    assert ports["http"] == 10587
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}

    # The kubelet waits for the preStop pause and the whole drain before it kills.
    shutdown = float(env["SMTPETER_EXPORTER_WEB_SHUTDOWN_TIMEOUT"]["value"])
    pause = float(container["lifecycle"]["preStop"]["exec"]["command"][1])
    assert pod["terminationGracePeriodSeconds"] > pause + shutdown


def test_names_ports_and_selectors_agree(built: dict[str, list[Manifest]]) -> None:
    for manifests in built.values():
        deployment = _one(manifests, "Deployment")
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        container_ports = {p["name"] for p in _exporter_container(manifests)["ports"]}
        service = _one(manifests, "Service")
        # The Service's name is the job label, which the shipped rules select.
        assert f'job="{service["metadata"]["name"]}"' in Config().selector
        assert service["spec"]["selector"].items() <= pod_labels.items()
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= container_ports
        monitor = _one(manifests, "ServiceMonitor")
        assert (
            monitor["spec"]["selector"]["matchLabels"].items()
            <= service["metadata"]["labels"].items()
        )
        [endpoint] = monitor["spec"]["endpoints"]
        assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
        assert endpoint["port"] == "metrics"
        budget = _one(manifests, "PodDisruptionBudget")
        assert budget["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
        assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


def _secret_refs(container: Manifest) -> Iterator[tuple[str, str, str, bool]]:
    for name, entry in _env(container).items():
        ref = entry.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            yield name, ref["name"], ref["key"], ref.get("optional", False)


def test_signature_and_token_settings_come_from_a_secret(
    built: dict[str, list[Manifest]],
) -> None:
    base_refs = {
        name: (secret, key, optional)
        for name, secret, key, optional in _secret_refs(_exporter_container(built["base"]))
    }
    assert base_refs == {
        "SMTPETER_EXPORTER_SMTPETER_COPERNICA_ID": (NAME, "copernica-id", True),
        "SMTPETER_EXPORTER_AUTH_TOKEN": (NAME, "auth-token", True),
        "SMTPETER_EXPORTER_DEDUP_REDIS_URL": (NAME, "dedup-redis-url", True),
    }
    # In the overlay the generated Secret (with its hash suffix) is what they point at.
    secret = _one(built["overlay"], "Secret")
    for _, name, key, _ in _secret_refs(_exporter_container(built["overlay"])):
        assert name == secret["metadata"]["name"]
        assert key in secret["data"] or key == "auth-token"


def test_overlay_runs_two_replicas_sharing_one_redis(built: dict[str, list[Manifest]]) -> None:
    deployment = _one(built["overlay"], "Deployment")
    assert deployment["spec"]["replicas"] == 2
    secret = _one(built["overlay"], "Secret")
    url = base64.b64decode(secret["data"]["dedup-redis-url"]).decode()
    [redis] = [
        m for m in built["overlay"] if m["kind"] == "Service" and "redis" in m["metadata"]["name"]
    ]
    assert url == f"redis://{redis['metadata']['name']}:{redis['spec']['ports'][0]['port']}/0"
    # The NetworkPolicy lets the exporter reach it, and Prometheus reach the metrics port.
    policy = _one(built["overlay"], "NetworkPolicy")
    redis_pods = [
        m
        for m in built["overlay"]
        if m["metadata"]["name"] == redis["metadata"]["name"] and m["kind"] == "Deployment"
    ]
    [redis_deployment] = redis_pods
    redis_labels = redis_deployment["spec"]["template"]["metadata"]["labels"]
    egress_to = [peer for rule in policy["spec"]["egress"] for peer in rule["to"]]
    assert any(
        peer.get("podSelector", {}).get("matchLabels", {}).items() <= redis_labels.items()
        and "namespaceSelector" not in peer
        for peer in egress_to
    )
    ingress_ports = {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}
    assert ingress_ports == {"http", "metrics"}
