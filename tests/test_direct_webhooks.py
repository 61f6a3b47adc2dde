"""The webhook paths served without aiohttp's router and middleware chain (the real listener)
answer, count and log every request exactly as the app's routes do (aiohttp's test client)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
import pytest
import structlog
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry

from exporter.app import create_app, direct_webhooks
from exporter.server import start_service
from exporter.settings import AuthMode, ListenAddress, Settings
from tests.conftest import MakeClient
from tests.test_process import FAILURE

LOOPBACK: Final = "127.0.0.1"
MAX_BYTES: Final = 4096


@dataclass(frozen=True)
class Sent:
    method: str
    path: str
    data: Any = None
    headers: dict[str, str] | None = None


def _failure(**changes: str) -> dict[str, str]:
    return {**FAILURE, **changes}


#: Every way a request to a webhook path can end, in one sequence (later ones see earlier).
REQUESTS: Final = (
    Sent("POST", "/webhooks/failures", _failure()),
    Sent("POST", "/webhooks/failures", _failure()),  # a retry: duplicate
    Sent("POST", "/webhooks", _failure(id="dispatched")),
    Sent("POST", "/webhooks/failures?source=smtpeter", _failure(id="with-query")),
    Sent("POST", "/webhooks/deliveries", _failure(id="wrong-type")),
    Sent("POST", "/webhooks/failures", _failure(recipient="no-domain")),
    Sent("POST", "/webhooks", {"id": "untyped", "recipient": "a@example.org"}),
    Sent("POST", "/webhooks/failures", "x", {"Content-Type": "text/plain"}),
    Sent("POST", "/webhooks/failures", _failure(description="x" * MAX_BYTES)),
    Sent("POST", "/webhooks/failures", _failure(id="expect"), {"Expect": "100-continue"}),
    Sent("POST", "/webhooks/failures", _failure(id="given-id"), {"X-Request-Id": "abc-123"}),
    Sent("GET", "/webhooks/failures"),
    Sent("PUT", "/webhooks", _failure(id="put")),
    Sent("POST", "/webhooks/nowhere", _failure(id="nowhere")),
    Sent("POST", "/webhooks/failures/", _failure(id="slash")),
    Sent("POST", "/%77ebhooks/failures", _failure(id="encoded")),
    Sent("GET", "/healthz"),
)

Post = Callable[[Sent], Awaitable[tuple[int, bytes, dict[str, str]]]]


@dataclass(frozen=True)
class Served:
    """What came back for each request, what was counted and what was logged."""

    answers: list[tuple[int, bytes, tuple[tuple[str, str], ...], bool]]
    counted: dict[tuple[str, ...], float]
    logged: list[dict[str, Any]]


async def _serve(post: Post, registry: CollectorRegistry) -> Served:
    answers = []
    with structlog.testing.capture_logs() as logs:
        for sent in REQUESTS:
            status, body, headers = await post(sent)
            kept = tuple(
                (name, value)
                for name, value in sorted(headers.items())
                if name in {"Allow", "WWW-Authenticate", "Retry-After", "Content-Type"}
            )
            request_id = headers.get("X-Request-Id", "")
            given = (sent.headers or {}).get("X-Request-Id")
            answers.append((status, body, kept, request_id == given if given else bool(request_id)))
    counted = {
        (sample.name, *(f"{name}={value}" for name, value in sorted(sample.labels.items()))): (
            sample.value
        )
        for family in registry.collect()
        if family.name.startswith("smtpeter_webhook_request")
        for sample in family.samples
        if not sample.name.endswith(("_sum", "_bucket", "_created"))
    }
    unstable = {"request_id", "remote", "content_length", "uptime_seconds"}
    logged = [
        {key: value for key, value in entry.items() if key not in unstable}
        for entry in logs
        if entry["event"] not in {"listening", "open_files_limit", "draining"}
    ]
    return Served(answers, counted, logged)


@contextlib.asynccontextmanager
async def _listening(settings: Settings, registry: CollectorRegistry) -> AsyncIterator[Post]:
    service = await start_service(create_app(settings, registry), settings)
    base = f"http://{LOOPBACK}:{service.webhooks.site.port}"
    try:
        async with aiohttp.ClientSession() as session:

            async def post(sent: Sent) -> tuple[int, bytes, dict[str, str]]:
                async with session.request(
                    sent.method, base + sent.path, data=sent.data, headers=sent.headers
                ) as response:
                    return response.status, await response.read(), dict(response.headers)

            yield post
    finally:
        await service.shut_down()


def _settings(**changes: Any) -> Settings:  # noqa: ANN401 - any setting
    return Settings(
        listen_address=ListenAddress(LOOPBACK, 0),
        max_request_bytes=MAX_BYTES,
        shutdown_timeout=0.5,
        **changes,
    )


@pytest.mark.parametrize(
    "changes",
    [{}, {"auth_mode": AuthMode.TOKEN, "auth_token": "s3cret"}],
    ids=["unauthenticated", "token"],
)
async def test_the_direct_webhook_paths_answer_count_and_log_as_the_app_routes_do(
    aiohttp_client: MakeClient, changes: dict[str, Any]
) -> None:
    settings = _settings(**changes)
    via_app_registry = CollectorRegistry()
    client: TestClient[Any, Any] = await aiohttp_client(create_app(settings, via_app_registry))

    async def via_app(sent: Sent) -> tuple[int, bytes, dict[str, str]]:
        async with client.request(
            sent.method, sent.path, data=sent.data, headers=sent.headers
        ) as response:
            return response.status, await response.read(), dict(response.headers)

    through_app = await _serve(via_app, via_app_registry)
    direct_registry = CollectorRegistry()
    async with _listening(settings, direct_registry) as direct:
        through_listener = await _serve(direct, direct_registry)
    assert through_listener.answers == through_app.answers
    assert through_listener.counted == through_app.counted
    assert through_listener.logged == through_app.logged
    statuses = {status for status, *_ in through_app.answers}
    expected = {200, 400, 404, 405, 413, 415} if not changes else {200, 401, 404, 405}
    assert expected <= statuses


async def test_only_plain_posts_to_the_webhook_paths_skip_the_app() -> None:
    """Everything else (another method, another path, ``Expect``) reaches the app's handler."""
    settings = _settings()
    app = create_app(settings, CollectorRegistry())
    reached: list[str] = []

    async def fallback(request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        reached.append(f"{request.method} {request.path}")
        return aiohttp.web.Response(status=204)

    dispatch = direct_webhooks(app, fallback)
    async with _listening_with(dispatch) as post:
        for sent in REQUESTS[9:]:
            await post(sent)
    assert reached == [
        "POST /webhooks/failures",  # with Expect: 100-continue
        "GET /webhooks/failures",
        "PUT /webhooks",
        "POST /webhooks/nowhere",
        "POST /webhooks/failures/",
        "GET /healthz",
    ]


@contextlib.asynccontextmanager
async def _listening_with(
    handler: Callable[[aiohttp.web.BaseRequest], Awaitable[aiohttp.web.StreamResponse]],
) -> AsyncIterator[Post]:
    server = aiohttp.web.Server(handler)
    runner = aiohttp.web.ServerRunner(server)
    await runner.setup()
    site = aiohttp.web.TCPSite(runner, LOOPBACK, 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as session:

            async def post(sent: Sent) -> tuple[int, bytes, dict[str, str]]:
                async with session.request(
                    sent.method, f"http://{LOOPBACK}:{port}{sent.path}", data=sent.data,
                    headers=sent.headers,
                ) as response:  # fmt: skip
                    return response.status, await response.read(), dict(response.headers)

            yield post
    finally:
        await runner.cleanup()
