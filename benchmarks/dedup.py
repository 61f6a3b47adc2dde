"""What the in-memory duplicate store costs: bytes per remembered event, and claims a second.

``python -m benchmarks.dedup [ENTRIES]`` fills a store of ENTRIES (default 500,000, the
``--dedup.max-entries`` default) with distinct 16-byte digests, then as many more, so that
every claim past the cap also evicts the oldest. Memory is measured with tracemalloc
(everything the store allocates, from its construction); speed without it, on one core.
"""

from __future__ import annotations

import hashlib
import sys
import time
import tracemalloc
from dataclasses import dataclass

from exporter.dedup import MemoryDeduplicator

WINDOW = 86_400.0


@dataclass(frozen=True, slots=True)
class DedupFigures:
    entries: int
    bytes_per_entry: float
    claims_per_second: float


def _digests(count: int) -> list[bytes]:
    return [hashlib.blake2b(n.to_bytes(8, "big"), digest_size=16).digest() for n in range(count)]


def measure(entries: int = 500_000) -> DedupFigures:
    digests = _digests(2 * entries)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        store = MemoryDeduplicator(WINDOW, entries)
        for digest in digests[:entries]:
            store.claim_key(digest)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    del store
    store = MemoryDeduplicator(WINDOW, entries)
    claim = store.claim_key
    started = time.perf_counter()
    for digest in digests:
        claim(digest)
    elapsed = time.perf_counter() - started
    return DedupFigures(entries, held / entries, len(digests) / elapsed)


def report(figures: DedupFigures) -> str:
    return (
        f"in-memory duplicate store at {figures.entries:,} entries (tracemalloc):\n"
        f"  bytes per remembered event: {figures.bytes_per_entry:.1f}\n"
        f"  claims per second (half of them evicting the oldest): "
        f"{figures.claims_per_second:,.0f}"
    )


def main(argv: list[str]) -> int:
    print(report(measure(int(argv[0]) if argv else 500_000)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
