"""The generated Grafana dashboards: valid for Grafana 11.6's own schemas, importable, linked,
and querying only what the exporter and its recording rules write."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from exporter.catalog import METRICS, MetricType
from monitoring import dashboards, generated_files, rules
from monitoring.config import Config, RatioThreshold
from monitoring.dashboards import (
    DATASOURCE_VARIABLE,
    DS_INPUT,
    HEALTH_FILE,
    OVERVIEW_FILE,
    STANDARD_SERIES,
    panel_queries,
    panels,
    variable_queries,
)
from tests.conftest import PROJECT_ROOT

SCHEMAS = PROJECT_ROOT.parent / "shared" / "schemas" / "grafana-11.6"
#: What Grafana's "Export for sharing externally" adds around a dashboard for its import
#: dialog; the dashboard model (dashboard.jsonschema.json) does not define them.
EXPORT_KEYS = frozenset({"__inputs", "__requires"})
PROVISIONING = PROJECT_ROOT / "grafana" / "provisioning"

Document = dict[str, Any]

BUILDERS: dict[str, Callable[[Config], Document]] = {
    "overview": dashboards.overview,
    "health": dashboards.health,
}


@pytest.fixture(params=sorted(BUILDERS))
def document(request: pytest.FixtureRequest) -> Document:
    return BUILDERS[request.param](Config())


@pytest.fixture(scope="session")
def schemas() -> Path:
    if not (SCHEMAS / "dashboard.jsonschema.json").is_file():
        pytest.skip(f"Grafana 11.6 JSON schemas not found at {SCHEMAS} (../shared/schemas)")
    return SCHEMAS


@cache
def _validator(folder: Path, name: str, definition: str | None) -> jsonschema.Draft7Validator:
    """The validator of a schema file, or of one of its definitions (``Options``, ...)."""
    schema = json.loads((folder / f"{name}.jsonschema.json").read_text(encoding="utf-8"))
    if definition is not None:
        schema = {"definitions": schema["definitions"], "$ref": f"#/definitions/{definition}"}
    return jsonschema.Draft7Validator(schema)


def _has_definition(folder: Path, name: str, definition: str) -> bool:
    schema = json.loads((folder / f"{name}.jsonschema.json").read_text(encoding="utf-8"))
    return definition in schema["definitions"]


def _errors(validator: jsonschema.Draft7Validator, instance: object, where: str) -> list[str]:
    return [f"{where}: {e.json_path}: {e.message}" for e in validator.iter_errors(instance)]


def schema_errors(document: Document, folder: Path) -> list[str]:
    """Every way ``document`` breaks Grafana 11.6's dashboard, panel and Prometheus schemas."""
    model = {key: value for key, value in document.items() if key not in EXPORT_KEYS}
    errors = _errors(_validator(folder, "dashboard", None), model, "dashboard")
    for panel in panels(document):
        kind, where = panel["type"], f"panel {panel.get('title')!r}"
        if not (folder / f"{kind}.jsonschema.json").is_file():
            errors.append(f"{where}: no schema for panel type {kind}")
            continue
        if "options" not in panel:
            errors.append(f"{where}: no options")
        else:
            options = _validator(folder, kind, "Options")
            errors += _errors(options, panel["options"], f"{where} options")
        custom = panel.get("fieldConfig", {}).get("defaults", {}).get("custom")
        if _has_definition(folder, kind, "FieldConfig"):
            field_config = _validator(folder, kind, "FieldConfig")
            errors += _errors(field_config, custom or {}, f"{where} custom")
        elif custom:
            errors.append(f"{where}: {kind} panels have no custom field config")
        for target in panel.get("targets", []):
            errors += _errors(_validator(folder, "prometheus", None), target, f"{where} target")
    return errors


def test_dashboards_validate_against_grafana_11_6_schemas(
    document: Document, schemas: Path
) -> None:
    assert schema_errors(document, schemas) == []


def _first(document: Document, kind: str) -> Document:
    return next(panel for panel in panels(document) if panel["type"] == kind)


def _bad_legend(document: Document) -> None:
    _first(document, "timeseries")["options"]["legend"]["displayMode"] = "sideways"


def _stat_without_reduce_options(document: Document) -> None:
    del _first(document, "stat")["options"]["reduceOptions"]


def _bad_line_width(document: Document) -> None:
    _first(document, "timeseries")["fieldConfig"]["defaults"]["custom"]["lineWidth"] = "thick"


def _misspelled_target_key(document: Document) -> None:
    target = panels(document)[0]["targets"][0]
    target["exprr"] = target.pop("expr")


def _panel_wider_than_the_grid(document: Document) -> None:
    panels(document)[0]["gridPos"]["w"] = 30


def _unknown_option(document: Document) -> None:
    _first(document, "table")["options"]["pageSize"] = 10


@pytest.mark.parametrize(
    ("corrupt", "found"),
    [
        (_bad_legend, "options: $.legend.displayMode"),
        (_stat_without_reduce_options, "'reduceOptions' is a required property"),
        (_bad_line_width, "custom: $.lineWidth"),
        (_misspelled_target_key, "target: $: 'expr' is a required property"),
        (_panel_wider_than_the_grid, "dashboard: $.panels[1]: "),
        (_unknown_option, "Additional properties are not allowed ('pageSize'"),
    ],
)
def test_schema_validation_catches_a_broken_panel(
    corrupt: Callable[[Document], None], found: str, schemas: Path
) -> None:
    document = copy.deepcopy(dashboards.overview(Config()))
    corrupt(document)
    errors = schema_errors(document, schemas)
    assert any(found in error for error in errors), errors


def test_uids_are_the_stable_ones_alert_links_point_at() -> None:
    assert (rules.OVERVIEW_UID, rules.HEALTH_UID) == (
        "smtpeter-deliverability",
        "smtpeter-exporter-health",
    )
    overview, health = dashboards.overview(Config()), dashboards.health(Config())
    assert (overview["uid"], overview["title"]) == (
        rules.OVERVIEW_UID,
        "SMTPeter deliverability overview",
    )
    assert health["uid"] == rules.HEALTH_UID
    for relative, uid in ((OVERVIEW_FILE, rules.OVERVIEW_UID), (HEALTH_FILE, rules.HEALTH_UID)):
        committed = json.loads((PROJECT_ROOT / relative).read_text(encoding="utf-8"))
        assert committed["uid"] == uid


def test_panel_ids_are_unique_and_every_panel_has_a_title_and_a_description(
    document: Document,
) -> None:
    everything = [
        *document["panels"],
        *(p for row in document["panels"] for p in row.get("panels", [])),
    ]
    ids = [panel["id"] for panel in everything]
    assert len(ids) == len(set(ids))
    titles = [panel.get("title", "") for panel in panels(document)]
    assert all(titles)
    assert len(titles) == len(set(titles))
    for panel in panels(document):
        assert len(panel.get("description", "")) > 40, panel["title"]


def test_panels_fit_the_grid_without_overlapping(document: Document) -> None:
    boxes = [panel["gridPos"] for panel in document["panels"]]
    for box in boxes:
        assert box["x"] + box["w"] <= 24
    for index, a in enumerate(boxes):
        for b in boxes[index + 1 :]:
            apart = (
                a["x"] + a["w"] <= b["x"]
                or b["x"] + b["w"] <= a["x"]
                or a["y"] + a["h"] <= b["y"]
                or b["y"] + b["h"] <= a["y"]
            )
            assert apart, (a, b)


def _series_names(expr: str) -> set[str]:
    """Metric and recorded-rule names an expression selects (not functions, labels, keywords)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    words = re.findall(r"(?<![\w:$.])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()", text)
    return set(words) - {"and", "or", "unless", "bool", "offset"}


def test_series_names_are_read_from_an_expression() -> None:
    expr = (
        'sum by (provider) (rate(a_total{job=~"$job", x="y{z}"}[$__range]))\n/\n'
        "(sum(b:c:rate5m) > 0) and on (job) time() - d offset 5m"
    )
    assert _series_names(expr) == {"a_total", "b:c:rate5m", "d"}


def test_queries_select_only_declared_metrics_and_recorded_rules(document: Document) -> None:
    declared = {spec.series for spec in METRICS} | {
        spec.suffixed(suffix)
        for spec in METRICS
        if spec.type is MetricType.HISTOGRAM
        for suffix in ("bucket", "sum", "count")
    }
    recorded = {record.name for record in rules.recording_rules(Config())}
    for title, expr in panel_queries(document):
        names = _series_names(expr)
        assert names, title
        assert names <= declared | recorded | STANDARD_SERIES, (title, names)
    for name, query in variable_queries(document):
        match = re.fullmatch(r"label_values\((\w+)(?:\{[^}]*\})?, (\w+)\)", query)
        assert match is not None, name
        assert match[1] in declared, name


def test_recorded_rules_are_read_per_instance_so_every_variable_filters_them(
    document: Document,
) -> None:
    recorded = {record.name for record in rules.recording_rules(Config())}
    for title, expr in panel_queries(document):
        for name in _series_names(expr) & recorded:
            assert name.startswith("instance_"), (title, name)
            for selector in re.findall(rf"{re.escape(name)}(\{{[^}}]*\}})?", expr):
                assert 'job=~"$job"' in selector, (title, name)
                assert 'instance=~"$instance"' in selector, (title, name)


def test_the_overview_prefers_recorded_rules() -> None:
    recorded = {record.name for record in rules.recording_rules(Config())}
    queries = panel_queries(dashboards.overview(Config()))
    from_rules = [title for title, expr in queries if _series_names(expr) & recorded]
    assert len(from_rules) > len(queries) / 2


def test_every_query_is_templated_by_job(document: Document) -> None:
    for title, expr in panel_queries(document):
        assert "$job" in expr, title
    for name, query in variable_queries(document):
        assert name == "job" or "$job" in query, name


def test_variables_are_datasource_job_instance_and_on_the_overview_provider_and_domain() -> None:
    def names(document: Document) -> list[str]:
        return [variable["name"] for variable in document["templating"]["list"]]

    assert names(dashboards.health(Config())) == [DATASOURCE_VARIABLE, "job", "instance"]
    overview = dashboards.overview(Config())
    assert names(overview) == [DATASOURCE_VARIABLE, "job", "instance", "provider", "domain"]
    for variable in overview["templating"]["list"][1:]:
        assert (variable["multi"], variable["includeAll"], variable["allValue"]) == (
            True,
            True,
            ".*",
        )
    assert dict(variable_queries(overview)) == {
        "job": "label_values(smtpeter_build_info, job)",
        "instance": 'label_values(smtpeter_build_info{job=~"$job"}, instance)',
        "provider": 'label_values(smtpeter_failures_total{job=~"$job", instance=~"$instance"}, '
        "provider)",
        "domain": "label_values(smtpeter_failures_total"
        '{job=~"$job", instance=~"$instance", provider=~"$provider"}, domain)',
    }


def test_panel_queries_include_the_panels_of_collapsed_rows() -> None:
    document: Document = {
        "panels": [
            {"type": "stat", "title": "top", "targets": [{"refId": "A", "expr": "up"}]},
            {
                "type": "row",
                "title": "folded",
                "collapsed": True,
                "panels": [
                    {
                        "type": "timeseries",
                        "title": "inside",
                        "targets": [{"refId": "A", "expr": "a"}, {"refId": "B", "expr": "b"}],
                    }
                ],
            },
        ],
        "templating": {"list": [{"type": "query", "name": "v", "query": {"query": "q"}}]},
    }
    assert panel_queries(document) == [("top", "up"), ("inside", "a"), ("inside", "b")]
    assert variable_queries(document) == [("v", "q")]


def test_every_panel_and_query_reads_the_datasource_variable_asked_for_on_import(
    document: Document,
) -> None:
    assert [(i["name"], i["type"], i["pluginId"]) for i in document["__inputs"]] == [
        (DS_INPUT, "datasource", "prometheus")
    ]
    required = {(r["type"], r["id"]) for r in document["__requires"]}
    assert {("grafana", "grafana"), ("datasource", "prometheus")} <= required
    assert {("panel", panel["type"]) for panel in panels(document)} == {
        r for r in required if r[0] == "panel"
    }
    variable = document["templating"]["list"][0]
    assert (variable["type"], variable["name"], variable["query"]) == (
        "datasource",
        DATASOURCE_VARIABLE,
        "prometheus",
    )
    assert variable["current"]["value"] == f"${{{DS_INPUT}}}"
    reference = {"type": "prometheus", "uid": f"${{{DATASOURCE_VARIABLE}}}"}
    for panel in panels(document):
        assert panel["datasource"] == reference, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == reference, panel["title"]
    for other in document["templating"]["list"][1:]:
        assert other["datasource"] == reference


def test_dashboards_link_to_each_other_keeping_time_and_variables() -> None:
    pairs = (
        (dashboards.overview(Config()), rules.HEALTH_UID, rules.HEALTH_SLUG),
        (dashboards.health(Config()), rules.OVERVIEW_UID, rules.OVERVIEW_SLUG),
    )
    for document, uid, slug in pairs:
        (link,) = document["links"]
        assert link["url"] == f"/d/{uid}/{slug}"
        assert link["keepTime"] is True
        assert link["includeVars"] is True
        assert set(document["tags"]) >= {"smtpeter", "email"}


def test_ratio_panels_are_percentages_and_every_panel_but_tables_has_a_unit(
    document: Document,
) -> None:
    for panel in panels(document):
        if panel["type"] == "table":
            continue
        unit = panel["fieldConfig"]["defaults"].get("unit")
        assert unit, panel["title"]
        if any("\n/\n" in target["expr"] for target in panel["targets"]):
            assert unit == "percentunit", panel["title"]


def test_thresholds_come_from_the_alerting_configuration() -> None:
    config = replace(
        Config(),
        failure_rate=RatioThreshold(
            warning=0.03, critical=0.08, window="1h", min_volume=200, for_="15m"
        ),
        rejected_ratio=0.2,
    )

    def steps(document: Document, title: str) -> list[float]:
        panel = next(p for p in panels(document) if p["title"] == title)
        return [step["value"] for step in panel["fieldConfig"]["defaults"]["thresholds"]["steps"]]

    assert steps(dashboards.overview(config), "Failure rate")[1:] == [0.03, 0.08]
    assert steps(dashboards.health(config), "Refused requests by kind")[1:] == [0.2]


def test_the_active_alerts_table_lists_only_firing_alerts_of_this_exporter() -> None:
    (expr,) = [e for t, e in panel_queries(dashboards.overview(Config())) if "ALERTS" in e]
    assert f'alertname=~"{rules.ALERT_PREFIX}.*"' in expr
    assert 'alertstate="firing"' in expr


def test_generated_dashboards_are_deterministic_two_space_json_with_a_final_newline() -> None:
    first, second = generated_files(Config()), generated_files(Config())
    for relative in (OVERVIEW_FILE, HEALTH_FILE):
        text = first[relative]
        assert text == second[relative]
        assert text.endswith("}\n")
        assert text == json.dumps(json.loads(text), indent=2) + "\n"
        assert list(json.loads(text))[:2] == ["__inputs", "__requires"]


def test_provisioning_files_load_the_dashboards_and_a_prometheus_datasource() -> None:
    providers = yaml.safe_load(
        (PROVISIONING / "dashboards" / "smtpeter-exporter.yml").read_text(encoding="utf-8")
    )
    assert providers["apiVersion"] == 1
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    assert Path(provider["options"]["path"]).is_absolute()
    assert provider["folder"]
    sources = yaml.safe_load(
        (PROVISIONING / "datasources" / "prometheus.yml").read_text(encoding="utf-8")
    )
    assert sources["apiVersion"] == 1
    (source,) = sources["datasources"]
    assert (source["type"], source["access"]) == ("prometheus", "proxy")
    assert source["url"].startswith("http")
