"""The private metrics listener: /metrics, /healthz and /readyz on it and only on it."""

from __future__ import annotations

import contextlib
import json
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Final

import aiohttp
import pytest
from prometheus_client import CollectorRegistry

from exporter.app import create_app
from exporter.server import Service, start_service
from exporter.settings import ListenAddress, Settings
from tests.test_connections import Client, clients
from tests.test_process import FAILURE, running

LOOPBACK: Final = "127.0.0.1"
MONITORING_PATHS: Final = ("/metrics", "/healthz", "/readyz")


@dataclass
class Listeners:
    service: Service
    registry: CollectorRegistry
    session: aiohttp.ClientSession

    @property
    def webhooks(self) -> str:
        return f"http://{LOOPBACK}:{self.service.webhooks.site.port}"

    @property
    def metrics(self) -> str:
        assert self.service.monitoring is not None
        return f"http://{LOOPBACK}:{self.service.monitoring.site.port}"

    async def status(self, method: str, url: str, data: dict[str, str] | None = None) -> int:
        async with self.session.request(method, url, data=data) as response:
            await response.read()
            return response.status


@contextlib.asynccontextmanager
async def listening(*, private: bool) -> AsyncIterator[Listeners]:
    settings = Settings(
        listen_address=ListenAddress(LOOPBACK, 0),
        metrics_listen_address=ListenAddress(LOOPBACK, 0) if private else None,
        shutdown_timeout=0.5,
    )
    registry = CollectorRegistry()
    service = await start_service(create_app(settings, registry), settings)
    try:
        async with aiohttp.ClientSession() as session:
            yield Listeners(service, registry, session)
    finally:
        await service.shut_down()


async def test_metrics_health_and_readiness_are_served_only_on_the_metrics_listener() -> None:
    async with listening(private=True) as listeners:
        for path in MONITORING_PATHS:
            assert await listeners.status("GET", listeners.metrics + path) == 200, path
            assert await listeners.status("GET", listeners.webhooks + path) == 404, path


async def test_webhooks_are_served_on_the_webhook_listener_and_not_the_metrics_one() -> None:
    async with listening(private=True) as listeners:
        for base, expected in ((listeners.webhooks, 200), (listeners.metrics, 404)):
            status = await listeners.status("POST", base + "/webhooks/failures", data=FAILURE)
            assert status == expected, base
        counted = listeners.registry.get_sample_value(
            "smtpeter_failures_total",
            {"state": "rcpt", "code_class": "5xx", "domain": "gmail.com", "provider": "google"},
        )
        assert counted == 1


async def test_without_a_metrics_listener_everything_is_on_the_webhook_listener() -> None:
    async with listening(private=False) as listeners:
        assert listeners.service.monitoring is None
        for path in MONITORING_PATHS:
            assert await listeners.status("GET", listeners.webhooks + path) == 200, path
        status = await listeners.status("POST", listeners.webhooks + "/webhooks", data=FAILURE)
        assert status == 200


@pytest.mark.parametrize("private", [True, False], ids=["private", "shared"])
async def test_the_landing_page_links_only_what_its_listener_serves(private: bool) -> None:
    async with listening(private=private) as listeners:
        async with listeners.session.get(listeners.webhooks + "/") as response:
            page = await response.text()
        assert ('href="/metrics"' in page) is not private
        assert "/webhooks" in page
        if private:
            async with listeners.session.get(listeners.metrics + "/") as response:
                page = await response.text()
            assert 'href="/metrics"' in page


async def test_connections_to_the_metrics_listener_are_not_counted_as_webhook_connections() -> None:
    async with listening(private=True) as listeners:
        assert listeners.service.monitoring is not None
        async with clients(listeners.service.monitoring.site.port, 2):
            webhook_client = await Client.open(listeners.service.webhooks.site.port)
            try:
                assert listeners.registry.get_sample_value("smtpeter_http_connections") == 1
            finally:
                await webhook_client.close()


@pytest.mark.slow
def test_console_script_serves_metrics_only_on_the_metrics_listen_address() -> None:
    body = urllib.parse.urlencode(FAILURE).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    with running(metrics_listener=True) as exporter:
        assert exporter.metrics_port is not None
        answer = exporter.request("POST", "/webhooks/failures", body, headers)
        assert (answer[0], json.loads(answer[1])["status"]) == (200, "accepted")
        status, metrics = exporter.request("GET", "/metrics", port=exporter.metrics_port)
        assert status == 200
        assert b"smtpeter_failures_total" in metrics
        assert exporter.request("GET", "/metrics")[0] == 404
        code, lines = exporter.stop()
    assert code == 0
    [listening] = [line for line in lines if line["event"] == "listening"]
    assert listening["metrics_listen_address"] == f"127.0.0.1:{exporter.metrics_port}"
