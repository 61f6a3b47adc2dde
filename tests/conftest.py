"""Fixtures shared by every test module."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog
from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry

from exporter.app import create_app
from exporter.metrics import disable_created_series
from exporter.settings import Settings

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    """Process start for the test session: what the command line does before serving."""
    disable_created_series()


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """The shared bounce corpus (``../shared/corpus``), or a skip when this checkout has none."""
    path = Path(os.environ.get("SMTPETER_CORPUS", PROJECT_ROOT.parent / "shared" / "corpus"))
    if not (path / "failures.jsonl").is_file():
        pytest.skip(f"bounce corpus not found at {path} (set SMTPETER_CORPUS to point at it)")
    return path


def require_tool(name: str) -> str:
    """The path of program ``name``; skip without it, but fail under CI, which must have it."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (make tools installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    [port] = free_ports(1)
    return port


def free_ports(count: int) -> list[int]:
    """``count`` different TCP ports on 127.0.0.1 that nothing listens on right now (bound
    all at once: asked for one at a time, the kernel may hand out the same one twice)."""
    with contextlib.ExitStack() as stack:
        sockets = [
            stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            for _ in range(count)
        ]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    """Each test starts from structlog's defaults, whatever the last one configured."""
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    yield
    structlog.reset_defaults()


Client = TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[Client]]


class Exporter:
    """A running app with its own registry, for exact metric assertions."""

    def __init__(self, client: Client, registry: CollectorRegistry) -> None:
        self.client = client
        self.registry = registry

    def value(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, labels)

    async def post(self, path: str, **kwargs: Any) -> aiohttp.ClientResponse:  # noqa: ANN401
        return await self.client.post(path, **kwargs)


@pytest.fixture
def settings() -> Settings:
    """The app's settings; a test or module overrides this fixture to change them."""
    return Settings()


@pytest.fixture
async def exporter(aiohttp_client: MakeClient, settings: Settings) -> Exporter:
    registry = CollectorRegistry()
    client = await aiohttp_client(create_app(settings, registry))
    return Exporter(client, registry)
