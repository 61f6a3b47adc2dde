"""The shipped rules as a Prometheus Operator ``PrometheusRule``, for the kustomize base.

The groups are exactly those of the rule file (:func:`monitoring.rules.rule_file`), so a
cluster running the Prometheus Operator evaluates the same rules as a Prometheus that loads
``deploy/prometheus/``; ``tests/test_deploy_kubernetes.py`` proves the two agree.
"""

from __future__ import annotations

from typing import Any, Final

from monitoring import rules
from monitoring.config import Config

#: The name of every object of the kustomize base, and of the Service whose name becomes
#: the ``job`` label the rules select.
NAME: Final = "smtpeter-exporter"


def prometheus_rule(config: Config) -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": NAME, "labels": {"app.kubernetes.io/name": NAME}},
        "spec": rules.rule_file(config),
    }
