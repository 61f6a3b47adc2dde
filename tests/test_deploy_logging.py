"""deploy/logging/: the log shippers' configurations parse, read the exporter's JSON keys,
and keep kind, reason, provider and level as Loki labels, never the recipient.

Neither Alloy, Promtail, Vector nor Fluent Bit can be installed here, so each file is checked
for what it says: YAML parsed with PyYAML, Alloy's syntax by a tokenizer of its block
structure. The keys they read are the exporter's own: a log line the service writes is
parsed and must carry every one of them.
"""

from __future__ import annotations

import io
import json
import re
from typing import Any

import yaml

from exporter.logs import LogFormat, configure_logging
from tests.conftest import PROJECT_ROOT, Exporter

LOGGING = PROJECT_ROOT / "deploy" / "logging"
LABELS = {"kind", "reason", "provider", "level"}
NEVER_LABELS = {"recipient", "id", "request_id", "domain", "description"}


def _yaml(relative: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((LOGGING / relative).read_text(encoding="utf-8"))
    return document


async def test_a_failure_line_carries_every_key_the_shippers_read(exporter: Exporter) -> None:
    """The shippers read these keys; the exporter's own recorder writes them."""
    stream = io.StringIO()
    sink = configure_logging("info", LogFormat.JSON, stream)
    response = await exporter.post(
        "/webhooks/failures",
        data={"recipient": "john@gmail.com", "code": "550", "extended": "5.1.1"},
    )
    assert response.status == 200
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    sink.close()
    [record] = [line for line in lines if line.get("event") == "failure"]
    assert LABELS | {"timestamp"} <= set(record)
    assert (record["kind"], record["reason"], record["provider"]) == (
        "failure",
        "userunknown",
        "google",
    )
    # What the shippers' timestamp formats (RFC 3339, UTC with a Z) expect.
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z", record["timestamp"])


def test_promtail_keeps_the_labels_in_both_scrape_jobs() -> None:
    config = _yaml("promtail/promtail.yaml")
    jobs = config["scrape_configs"]
    assert {job["job_name"] for job in jobs} == {
        "smtpeter-exporter-journal",
        "smtpeter-exporter-kubernetes",
    }
    for job in jobs:
        stages = job["pipeline_stages"]
        [json_stage] = [s["json"] for s in stages if "json" in s]
        [labels] = [s["labels"] for s in stages if "labels" in s]
        assert set(labels) == LABELS
        assert {json_stage["expressions"][label] for label in LABELS} == LABELS
        assert not NEVER_LABELS & set(labels)
        [timestamp] = [s["timestamp"] for s in stages if "timestamp" in s]
        assert timestamp["source"] == "timestamp"
    assert config["clients"][0]["url"].endswith("/loki/api/v1/push")


def test_vector_labels_and_fields() -> None:
    config = _yaml("vector/vector.yaml")
    loki = config["sinks"]["loki"]
    assert loki["type"] == "loki"
    templated = {
        name: re.fullmatch(r"\{\{ (\w+) \}\}", value) for name, value in loki["labels"].items()
    }
    assert {name for name, match in templated.items() if match} == LABELS
    assert all(match[1] == name for name, match in templated.items() if match)
    assert not NEVER_LABELS & set(loki["labels"])
    transform = config["transforms"]["exporter_lines"]
    assert set(transform["inputs"]) == set(config["sources"])
    for label in LABELS:
        assert f".{label} = string(.{label}) ??" in transform["source"]
    assert config["sinks"]["elasticsearch"]["inputs"] == ["exporter_lines"]
    assert config["sources"]["exporter_journal"]["include_units"] == ["smtpeter-exporter.service"]


def test_fluent_bit_labels_and_parser() -> None:
    config = _yaml("fluent-bit/fluent-bit.yaml")
    [parser] = config["parsers"]
    assert (parser["format"], parser["time_key"]) == ("json", "timestamp")
    pipeline = config["pipeline"]
    assert {f["parser"] for f in pipeline["filters"]} == {parser["name"]}
    [loki] = [o for o in pipeline["outputs"] if o["name"] == "loki"]
    label_keys = {key.strip().removeprefix("$") for key in loki["label_keys"].split(",")}
    assert label_keys == LABELS
    assert not NEVER_LABELS & label_keys
    assert "recipient" not in loki["labels"]
    tags = {i["tag"] for i in pipeline["inputs"]}
    assert all(
        re.fullmatch(o["match"].replace("*", ".*"), tag)
        for o in pipeline["outputs"]
        for tag in tags
    )


#: Alloy's syntax as far as the checks need it: comments, strings, identifiers, punctuation.
_ALLOY_TOKEN = re.compile(
    r'(?P<comment>//[^\n]*)|(?P<string>"(?:[^"\\\n]|\\.)*")|(?P<word>[A-Za-z_][\w.]*)'
    r"|(?P<number>\d+)|(?P<punct>[{}\[\]=,()])|(?P<space>\s+)|(?P<bad>.)"
)


def _alloy_blocks(text: str) -> dict[str, str]:
    """Top-level blocks (``component.name "label"``) and their bodies; fails on anything
    Alloy would not tokenize or on unbalanced braces."""
    tokens = [
        (m.lastgroup, m.group())
        for m in _ALLOY_TOKEN.finditer(text)
        if m.lastgroup not in ("comment", "space")
    ]
    assert not [t for kind, t in tokens if kind == "bad"], "characters Alloy does not accept"
    blocks: dict[str, str] = {}
    depth = 0
    header: list[str] = []
    body: list[str] = []
    for kind, token in tokens:
        if token in "{[(" and kind == "punct":
            depth += 1
            if depth == 1:
                name = " ".join(header)
                header = []
                continue
        elif token in "}])" and kind == "punct":
            depth -= 1
            assert depth >= 0, "unbalanced braces"
            if depth == 0:
                blocks[name] = " ".join(body)
                body = []
                continue
        (header if depth == 0 else body).append(token)
    assert depth == 0, "unbalanced braces"
    assert not header, f"text after the last block: {header}"
    return blocks


def test_alloy_pipeline_reads_docker_and_labels_the_stream() -> None:
    text = (LOGGING / "alloy" / "docker.alloy").read_text(encoding="utf-8")
    blocks = _alloy_blocks(text)
    assert set(blocks) == {
        'discovery.docker "containers"',
        'discovery.relabel "exporter"',
        'loki.source.docker "exporter"',
        'loki.process "exporter"',
        'loki.write "loki"',
    }
    process = blocks['loki.process "exporter"']
    # Each stage's map, as `name = "..."` pairs, between its braces.
    labels = re.search(r"stage.labels \{ values = \{ (.*?) \} \}", process)
    assert labels, process
    assert set(re.findall(r"(\w+) = \"\"", labels[1])) == LABELS
    extracted = re.search(r"stage.json \{ expressions = \{ (.*?) \} \}", process)
    assert extracted, process
    assert set(re.findall(r"(\w+) = \"\"", extracted[1])) == LABELS | {"timestamp"}
    assert not any(f"{never} =" in process for never in NEVER_LABELS)
    # The components are wired in order: discovery -> relabel -> source -> process -> write.
    assert "targets = discovery.relabel.exporter.output" in blocks['loki.source.docker "exporter"']
    assert (
        "forward_to = [ loki.process.exporter.receiver ]" in blocks['loki.source.docker "exporter"']
    )
    assert "forward_to = [ loki.write.loki.receiver ]" in process


def test_the_readme_documents_the_recent_failures_query() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    assert '{service_name="smtpeter-exporter", kind="failure"}' in readme
