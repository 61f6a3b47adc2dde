"""The exporter with its series already at the worst case the budget allows, for measuring
scrapes at the cap (``benchmarks/ingest.py``).

``python -m benchmarks.ingest_server [FLAGS]`` is ``smtpeter-exporter [FLAGS]`` whose metrics,
before it starts listening, have recorded one event per label combination the series budget
counts (:mod:`benchmarks.series`: every state, code class, reason, bounce kind and feedback
type at more recipient domains than the cap, every kind and outcome). Reaching the cap over
HTTP would need raw messages and descriptions for every reason at 137 domains; recording
the same events through the same API gives the same series, and everything after start is
the service as it ships.
"""

from __future__ import annotations

import sys

from aiohttp import web

from benchmarks.series import _recorded
from exporter import cli
from exporter.app import create_app
from exporter.appkeys import METRICS
from exporter.domains import PROVIDER_DOMAINS
from exporter.errors import Outcome
from exporter.metrics import REQUEST_KINDS, Metrics
from exporter.settings import Settings


def fill_to_cap(metrics: Metrics, domain_limit: int) -> None:
    """Record every label combination the series budget counts, at time 0."""
    domains = [*PROVIDER_DOMAINS, *(f"d{i}.example" for i in range(2 * domain_limit + 10))]
    for event, diagnosis in _recorded(domains):
        metrics.count_event(event, diagnosis, 0.0)
    for kind in REQUEST_KINDS:
        for outcome in Outcome:
            metrics.count_request(kind, outcome, 0.001)


def create_app_at_cap(settings: Settings) -> web.Application:
    """The service's app, its metrics filled to the cap."""
    app = create_app(settings)
    fill_to_cap(app[METRICS], settings.domain_limit)
    return app


def main(argv: list[str]) -> int:
    return cli.main(argv, build_app=create_app_at_cap)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
