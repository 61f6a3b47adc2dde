"""``python -m benchmarks`` (``make bench``): every figure the README quotes, in one run."""

from __future__ import annotations

import sys

from benchmarks import bounces, corpus_dir, failures, series
from exporter.metrics import disable_created_series


def main() -> int:
    disable_created_series()
    print(series.report(series.measure()))
    corpus = corpus_dir()
    if corpus is None:
        print("bounce corpus not found (set SMTPETER_CORPUS): no accuracy or speed figures")
        return 0
    print(failures.report(failures.measure(corpus)))
    print(bounces.report(bounces.measure(corpus)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
