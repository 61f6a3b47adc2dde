"""A short soak of the real service (benchmarks/soak.py): 20,000 distinct events over HTTP.

The figures are printed; only what is not a timing is asserted: every event answered 2xx,
counted and logged once, remembered by the duplicate store, the series within the budget's
worst case, resident memory under the bound the README gives, and a clean exit.
"""

from __future__ import annotations

from typing import Final

import pytest

from benchmarks.soak import RSS_LIMIT_BYTES, report, run_soak
from tests.conftest import require_tool

pytestmark = pytest.mark.slow

EVENTS: Final = 20_000


def test_twenty_thousand_distinct_events_are_accepted_counted_remembered_within_bounds() -> None:
    require_tool("wrk")
    result = run_soak(EVENTS, checkpoint_every=EVENTS // 2)
    print("\n" + report(result))
    assert result.not_ok == 0
    assert sum(batch.errors for batch in result.batches) == 0
    assert (result.accepted, result.logged) == (EVENTS, EVENTS)
    assert result.dedup_entries == EVENTS
    assert result.domain_overflow > 0, "the domain cap was never reached"
    assert result.series <= result.series_cap
    assert result.max_rss_bytes < RSS_LIMIT_BYTES
    assert result.exit_code == 0
