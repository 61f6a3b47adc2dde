"""The HTTP surface: every webhook path and encoding, every rejection, exact metric values."""

from __future__ import annotations

import json
import platform
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog

from exporter.app import create_app
from exporter.domains import PROVIDERS
from exporter.logs import RecipientMode
from exporter.mail.smtp import CODE_CLASSES, STATES
from exporter.settings import Settings
from tests.conftest import Exporter, MakeClient

FAILURE = {
    "id": "5f1b0c2e",
    "type": "failure",
    "timestamp": "2024-03-01 12:00:00",
    "time": "1709294400",
    "recipient": "john@gmail.com",
    "action": "failed",
    "state": "RCPT TO",
    "code": "550",
    "extended": "5.1.1",
    "description": "5.1.1 The email account that you tried to reach does not exist.",
    "tags": "newsletter;march",
}
OLD_FAILURE = {
    "id": "5f1b0c2f",
    "recipient": "jane@example.org",
    "state": "data",
    "code": "451",
    "extended": "4.7.1",
    "description": "Greylisted, try again later",
}


async def test_form_failure_is_accepted_and_counted(exporter: Exporter) -> None:
    response = await exporter.post("/webhooks/failures", data=FAILURE)
    assert response.status == 200
    assert await response.json() == {"status": "accepted", "kind": "failure"}
    labels = {"state": "rcpt", "code_class": "5xx", "domain": "gmail.com", "provider": "google"}
    assert exporter.value("smtpeter_failures_total", **labels) == 1
    assert exporter.value("smtpeter_failure_status_total", **{"class": "5", "subject": "1"}) == 1
    assert (
        exporter.value("smtpeter_webhook_requests_total", kind="failure", outcome="accepted") == 1
    )
    assert exporter.value("smtpeter_webhook_request_duration_seconds_count", kind="failure") == 1
    last = exporter.value("smtpeter_last_event_timestamp_seconds", kind="failure")
    assert last is not None
    assert last > 1_700_000_000


@pytest.mark.parametrize("fields", [FAILURE, OLD_FAILURE], ids=["current", "old-accounts"])
@pytest.mark.parametrize("encoding", ["form", "json", "multipart"])
async def test_every_encoding_of_both_field_sets_is_accepted(
    exporter: Exporter, fields: dict[str, str], encoding: str
) -> None:
    if encoding == "form":
        response = await exporter.post("/webhooks/failures", data=fields)
    elif encoding == "json":
        response = await exporter.post("/webhooks/failures", json=fields)
    else:
        form = aiohttp.FormData(quote_fields=False)
        for name, value in fields.items():
            form.add_field(name, value, content_type="text/plain")
        response = await exporter.post("/webhooks/failures", data=form)
        assert response.request_info.headers["Content-Type"].startswith("multipart/form-data")
    assert response.status == 200, await response.text()
    domain = fields["recipient"].split("@")[1]
    state = "rcpt" if fields is FAILURE else "data"
    klass = "5xx" if fields is FAILURE else "4xx"
    provider = "google" if fields is FAILURE else "other"
    labels = {"state": state, "code_class": klass, "domain": domain, "provider": provider}
    assert exporter.value("smtpeter_failures_total", **labels) == 1


@pytest.mark.parametrize(
    ("send", "expected"),
    [
        ({"data": "recipient=a%40example.com&tags=x%3By"}, ["x", "y"]),
        ({"data": "recipient=a%40example.com&tags[]=x&tags[]=y"}, ["x", "y"]),
        ({"json": {"recipient": "a@example.com", "tags": ["x", "y"]}}, ["x", "y"]),
    ],
    ids=["semicolons", "repeated-brackets", "json-list"],
)
async def test_all_three_tag_encodings_reach_the_log(
    exporter: Exporter, send: dict[str, Any], expected: list[str]
) -> None:
    headers = {} if "json" in send else {"Content-Type": "application/x-www-form-urlencoded"}
    with structlog.testing.capture_logs() as logs:
        response = await exporter.post("/webhooks/opens", headers=headers, **send)
    assert response.status == 200
    [line] = [entry for entry in logs if entry["event"] == "open"]
    assert line["tags"] == expected


async def test_dispatch_path_routes_each_type(exporter: Exporter) -> None:
    posts = [
        {"type": "failure", "recipient": "a@gmail.com", "state": "bounce", "code": "550"},
        {"type": "delivery", "recipient": "a@gmail.com", "code": "250"},
        {"type": "open", "recipient": "a@gmail.com", "ip": "192.0.2.1"},
        {"type": "click", "recipient": "a@gmail.com", "original": "https://example.org/"},
    ]
    for fields in posts:
        response = await exporter.post("/webhooks", data=fields)
        assert response.status == 200
        assert (await response.json())["kind"] == fields["type"]
    assert (
        exporter.value(
            "smtpeter_failures_total",
            state="bounce",
            code_class="5xx",
            domain="gmail.com",
            provider="google",
        )
        == 1
    )
    for metric in ("deliveries", "opens", "clicks"):
        assert (
            exporter.value(f"smtpeter_{metric}_total", domain="gmail.com", provider="google") == 1
        )
    for kind in ("failure", "delivery", "open", "click"):
        assert exporter.value("smtpeter_webhook_requests_total", kind=kind, outcome="accepted") == 1


async def test_exact_metric_values_after_a_sequence_of_posts(exporter: Exporter) -> None:
    sequence = [
        ("/webhooks/failures", {"recipient": "a@gmail.com", "state": "RCPT", "code": "550"}),
        ("/webhooks/failures", {"recipient": "b@gmail.com", "state": "rcpt to", "code": "550"}),
        ("/webhooks/failures", {"recipient": "c@gmail.com", "state": "DATA", "code": "421"}),
        ("/webhooks/failures", {"recipient": "d@example.com", "state": "bounce"}),
        (
            "/webhooks/failures",
            {"recipient": "e@example.com", "state": "weird", "extended": "5.7.1"},
        ),
        ("/webhooks/failures", {"recipient": "broken"}),
        ("/webhooks/deliveries", {"recipient": "a@gmail.com"}),
        ("/webhooks/deliveries", {"recipient": "a@Example.COM."}),
    ]
    statuses = [(await exporter.post(path, data=fields)).status for path, fields in sequence]
    assert statuses == [200, 200, 200, 200, 200, 400, 200, 200]
    failures = {
        ("rcpt", "5xx", "gmail.com", "google"): 2,
        ("data", "4xx", "gmail.com", "google"): 1,
        ("bounce", "none", "example.com", "other"): 1,
        ("other", "none", "example.com", "other"): 1,
        ("rcpt", "4xx", "gmail.com", "google"): 0,
    }
    for (state, klass, domain, provider), count in failures.items():
        labels = {"state": state, "code_class": klass, "domain": domain, "provider": provider}
        assert exporter.value("smtpeter_failures_total", **labels) == count
    assert (
        exporter.value("smtpeter_failure_status_total", **{"class": "none", "subject": "none"}) == 4
    )
    assert exporter.value("smtpeter_failure_status_total", **{"class": "5", "subject": "7"}) == 1
    assert exporter.value("smtpeter_deliveries_total", domain="gmail.com", provider="google") == 1
    assert exporter.value("smtpeter_deliveries_total", domain="example.com", provider="other") == 1
    assert (
        exporter.value("smtpeter_webhook_requests_total", kind="failure", outcome="accepted") == 5
    )
    assert exporter.value("smtpeter_webhook_requests_total", kind="failure", outcome="invalid") == 1
    assert (
        exporter.value("smtpeter_webhook_requests_total", kind="delivery", outcome="accepted") == 2
    )


async def test_known_series_exist_at_zero_before_the_first_event(exporter: Exporter) -> None:
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for metric in exporter.registry.collect()
        for sample in metric.samples
    }
    for domain, provider in (*PROVIDERS.items(), ("other", "other")):
        for state in STATES:
            for klass in CODE_CLASSES:
                labels = (
                    ("code_class", klass),
                    ("domain", domain),
                    ("provider", provider),
                    ("state", state),
                )
                assert samples[("smtpeter_failures_total", labels)] == 0
        recipient = (("domain", domain), ("provider", provider))
        assert samples[("smtpeter_deliveries_total", recipient)] == 0
    for kind in ("failure", "delivery", "open", "click", "unknown"):
        for outcome in ("accepted", "invalid", "unsupported_media", "too_large"):
            assert (
                exporter.value("smtpeter_webhook_requests_total", kind=kind, outcome=outcome) == 0
            )
    assert exporter.value("smtpeter_failure_status_total", **{"class": "4", "subject": "7"}) == 0
    assert exporter.value("smtpeter_last_event_timestamp_seconds", kind="click") == 0
    assert exporter.value("smtpeter_domain_label_overflow_total") == 0
    assert exporter.value("smtpeter_build_info", version="0.1.0", python_version=_python()) == 1


def _python() -> str:
    return platform.python_version()


@pytest.mark.parametrize("settings", [Settings(domain_limit=2)])
async def test_domain_cap_folds_later_domains_into_other_and_counts_them(
    exporter: Exporter,
) -> None:
    for recipient in [
        "a@one.example",
        "a@two.example",
        "a@three.example",
        "a@gmail.com",
        "b@one.example",
        "a@four.example",
    ]:
        response = await exporter.post("/webhooks/deliveries", data={"recipient": recipient})
        assert response.status == 200

    def deliveries(domain: str, provider: str = "other") -> float | None:
        return exporter.value("smtpeter_deliveries_total", domain=domain, provider=provider)

    assert deliveries("one.example") == 2
    assert deliveries("two.example") == 1
    assert deliveries("three.example") is None
    assert deliveries("gmail.com", "google") == 1
    assert deliveries("other") == 2
    assert exporter.value("smtpeter_domain_label_overflow_total") == 2


@pytest.mark.parametrize(
    ("path", "send", "status", "body", "outcome", "kind"),
    [
        (
            "/webhooks/failures",
            {"data": {"state": "rcpt"}},
            400,
            {"error": "recipient is required", "field": "recipient"},
            "invalid",
            "failure",
        ),
        (
            "/webhooks/failures",
            {"data": {"recipient": "nobody"}},
            400,
            {"error": "recipient has no domain", "field": "recipient"},
            "invalid",
            "failure",
        ),
        (
            "/webhooks/failures",
            {"data": {"recipient": "a@b.example", "code": "5500"}},
            400,
            {
                "error": "code must be a three-digit SMTP reply code from 200 to 599",
                "field": "code",
            },
            "invalid",
            "failure",
        ),
        (
            "/webhooks/deliveries",
            {"data": {"recipient": "a@b.example", "type": "click"}},
            400,
            {"error": "type 'click' does not match this endpoint (delivery)", "field": "type"},
            "invalid",
            "delivery",
        ),
        (
            "/webhooks",
            {"data": {"recipient": "a@b.example"}},
            400,
            {"error": "type is required when posting to /webhooks", "field": "type"},
            "invalid",
            "unknown",
        ),
        (
            "/webhooks/clicks",
            {"data": b"<xml/>", "headers": {"Content-Type": "application/xml"}},
            415,
            {
                "error": "content type 'application/xml' is not supported; send one of "
                "application/x-www-form-urlencoded, application/json, multipart/form-data"
            },
            "unsupported_media",
            "click",
        ),
        (
            "/webhooks/opens",
            {"data": b"{oops", "headers": {"Content-Type": "application/json"}},
            400,
            {"error": "body is not valid JSON"},
            "invalid",
            "open",
        ),
    ],
)
async def test_rejections_have_a_status_a_json_body_and_are_counted(  # noqa: PLR0917
    exporter: Exporter,
    path: str,
    send: dict[str, Any],
    status: int,
    body: dict[str, str],
    outcome: str,
    kind: str,
) -> None:
    with structlog.testing.capture_logs() as logs:
        response = await exporter.post(path, **send)
    assert response.status == status
    assert await response.json() == body
    assert exporter.value("smtpeter_webhook_requests_total", kind=kind, outcome=outcome) == 1
    [warning] = [entry for entry in logs if entry["event"] == "webhook_rejected"]
    assert warning["log_level"] == "warning"
    assert warning["error"] == body["error"]
    assert warning["outcome"] == outcome


async def test_wrong_method_is_a_405_with_allow_and_a_json_body(exporter: Exporter) -> None:
    response = await exporter.client.get("/webhooks/failures")
    assert response.status == 405
    assert response.headers["Allow"] == "POST"
    assert await response.json() == {"error": "method GET is not allowed here; use POST"}
    assert (
        exporter.value(
            "smtpeter_webhook_requests_total", kind="failure", outcome="method_not_allowed"
        )
        == 1
    )


async def test_unknown_webhook_path_is_a_404_counted_as_unknown(exporter: Exporter) -> None:
    response = await exporter.post("/webhooks/newsletters", data={"recipient": "a@b.example"})
    assert response.status == 404
    assert await response.json() == {"error": "nothing is served at this path"}
    assert (
        exporter.value("smtpeter_webhook_requests_total", kind="unknown", outcome="not_found") == 1
    )


@pytest.mark.parametrize("settings", [Settings(max_request_bytes=1000)])
async def test_oversized_body_is_rejected_with_413_by_declared_length(exporter: Exporter) -> None:
    response = await exporter.post(
        "/webhooks/failures", data={"recipient": "a@b.example", "description": "x" * 2000}
    )
    assert response.status == 413
    assert await response.json() == {"error": "body is larger than 1000 bytes"}
    assert (
        exporter.value("smtpeter_webhook_requests_total", kind="failure", outcome="too_large") == 1
    )


@pytest.mark.parametrize("settings", [Settings(max_request_bytes=1000)])
async def test_oversized_chunked_body_is_rejected_with_413_while_reading(
    exporter: Exporter,
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"recipient=a%40b.example&description="
        for _ in range(20):
            yield b"x" * 100

    response = await exporter.post(
        "/webhooks/failures",
        data=chunks(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status == 413
    assert await response.json() == {"error": "body is larger than 1000 bytes"}


async def test_event_log_line_has_every_field_and_the_normalized_ones(exporter: Exporter) -> None:
    with structlog.testing.capture_logs() as logs:
        await exporter.post("/webhooks/failures", data={**FAILURE, "x-custom": "kept"})
    [line] = [entry for entry in logs if entry["event"] == "failure"]
    assert line == {
        "event": "failure",
        "log_level": "info",
        "kind": "failure",
        "id": "5f1b0c2e",
        "recipient": "john@gmail.com",
        "domain": "gmail.com",
        "provider": "google",
        "occurred_at": "2024-03-01T12:00:00+00:00",
        "tags": ["newsletter", "march"],
        "action": "failed",
        "state": "rcpt",
        "state_raw": "RCPT TO",
        "code": "550",
        "code_class": "5xx",
        "extended": "5.1.1",
        "description": FAILURE["description"],
        "reason": "userunknown",
        "bounce_type": "hard",
        "extra": {"x-custom": "kept"},
    }


@pytest.mark.parametrize(
    ("settings", "shown"),
    [
        (Settings(log_recipient=RecipientMode.DOMAIN), "*@gmail.com"),
        (
            Settings(log_recipient=RecipientMode.HASH),
            "sha256:" + __import__("hashlib").sha256(b"john@gmail.com").hexdigest(),
        ),
    ],
)
async def test_recipient_log_modes(exporter: Exporter, shown: str) -> None:
    with structlog.testing.capture_logs() as logs:
        await exporter.post("/webhooks/failures", data=FAILURE)
    [line] = [entry for entry in logs if entry["event"] == "failure"]
    assert line["recipient"] == shown
    assert line["domain"] == "gmail.com"


async def test_rejection_log_never_contains_the_body(exporter: Exporter) -> None:
    secret = "do-not-log-this-description"
    with structlog.testing.capture_logs() as logs:
        await exporter.post("/webhooks/failures", data={"description": secret})
    assert logs
    assert secret not in json.dumps(logs)


async def test_health_and_readiness(exporter: Exporter) -> None:
    assert (await exporter.client.get("/healthz")).status == 200
    ready = await exporter.client.get("/readyz")
    assert (ready.status, await ready.json()) == (200, {"status": "ready"})


async def test_metrics_endpoint_serves_the_injected_registry(exporter: Exporter) -> None:
    await exporter.post("/webhooks/opens", data={"recipient": "a@gmail.com"})
    response = await exporter.client.get("/metrics")
    assert response.status == 200
    text = await response.text()
    assert 'smtpeter_opens_total{domain="gmail.com",provider="google"} 1.0' in text
    assert "smtpeter_opens_created" not in text


async def test_verification_file_is_served_under_its_own_name(
    aiohttp_client: MakeClient, tmp_path: Path
) -> None:
    proof = tmp_path / "smtpeter-a1b2c3.txt"
    proof.write_text("smtpeter-site-verification: a1b2c3\n")
    client = await aiohttp_client(create_app(Settings(verification_file=proof)))
    response = await client.get("/smtpeter-a1b2c3.txt")
    assert response.status == 200
    assert await response.text() == "smtpeter-site-verification: a1b2c3\n"
    assert (await client.get("/smtpeter-other.txt")).status == 404


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"\x00\xff" * 500, "application/x-www-form-urlencoded"),
        (b"recipient=%ff%fe@%ff.example", "application/x-www-form-urlencoded"),
        (b"recipient=a@b.example&time=" + b"9" * 5000, "application/x-www-form-urlencoded"),
        (b'{"recipient": {"nested": [1, 2]}}', "application/json"),
        (b'{"recipient": "a@b.example", "tags": [[["deep"]]]}', "application/json"),
        (b'{"recipient": "a@\\u00e9\\u0301.example"}', "application/json"),
        (b'{"recipient": "a@b.example", "description": "\\ud800 lone"}', "application/json"),
        (b'{"recipient": "a@b.example", "x": "\\udcff"}', "application/json"),
        (b"recipient=a@b.example&description=%ff%fe%80", "application/x-www-form-urlencoded"),
        (b"recipient=a@b.example&description=\xff\x80", "application/x-www-form-urlencoded"),
        (b"recipient=a@b.example\x00", "application/x-www-form-urlencoded; charset=utf-16"),
        (
            b"--b\r\nContent-Disposition: form-data\r\n\r\nx\r\n--b--",
            "multipart/form-data; boundary=b",
        ),
        (b"--b\r\n\r\n", "multipart/form-data; boundary=b"),
        (b"recipient=a@b.example", 'application/x-www-form-urlencoded; charset="x"y"'),
        (b"recipient=a@xn--.example", "application/x-www-form-urlencoded"),
    ],
)
async def test_hostile_bodies_get_a_4xx_or_2xx_never_a_5xx(
    exporter: Exporter, body: bytes, content_type: str
) -> None:
    response = await exporter.post(
        "/webhooks/failures", data=body, headers={"Content-Type": content_type}
    )
    assert response.status < 500, await response.text()
    assert (
        exporter.value("smtpeter_webhook_requests_total", kind="failure", outcome="internal_error")
        == 0
    )
