"""``python -m benchmarks`` (``make bench``): every figure the README quotes, in one run.

About seven minutes: the ingest benchmark (``benchmarks.ingest``, with its 1,000,000-event
soak) takes most of it; ``--short`` runs its smoke instead, as CI does.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Sequence

from benchmarks import bounces, corpus_dir, failures, ingest, rules, series
from benchmarks.agreement import held_out
from exporter.metrics import disable_created_series


def main(argv: Sequence[str]) -> int:
    disable_created_series()
    print(series.report(series.measure()))
    if shutil.which("wrk") is None:
        print("wrk not installed (scripts/install-test-tools.sh): no ingest or soak figures")
    else:
        print(ingest.report(ingest.run_ingest(short="--short" in argv)))
    corpus = corpus_dir()
    if corpus is None:
        print("bounce corpus not found (set SMTPETER_CORPUS): no accuracy or speed figures")
        return 0
    print(failures.report(failures.measure(corpus)))
    print(bounces.report(bounces.measure(corpus)))
    print(rules.report(rules.measure(corpus)))
    extra = held_out(corpus)
    if extra is None:
        print(f"no held-out set at {corpus / 'extra'}: no extra-set figures")
        return 0
    # Measured, never studied: the held-out set's report stops at totals per family.
    extra_failures = failures.measure(extra, max_rounds=1, name="held-out extra/")
    print(failures.report(extra_failures, misses=False))
    print(bounces.report(bounces.measure(extra, max_passes=1, name="held-out extra/")))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
