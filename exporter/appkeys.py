"""The typed keys under which the application keeps its parts."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from exporter.lifecycle import Lifecycle
from exporter.metrics import Metrics
from exporter.pipeline import Deduplicator, Ingest
from exporter.settings import Settings

SETTINGS: Final = web.AppKey("settings", Settings)
METRICS: Final = web.AppKey("metrics", Metrics)
LIFECYCLE: Final = web.AppKey("lifecycle", Lifecycle)
INGEST: Final = web.AppKey("ingest", Ingest)
DEDUPLICATOR: Final = web.AppKey("deduplicator", Deduplicator)
