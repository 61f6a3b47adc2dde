"""Benchmarks that print figures: ``python -m benchmarks`` (see the README)."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def corpus_dir() -> Path | None:
    """The shared bounce corpus, or ``None`` when this checkout has none beside it."""
    path = Path(os.environ.get("SMTPETER_CORPUS", PROJECT_ROOT.parent / "shared" / "corpus"))
    return path if (path / "failures.jsonl").is_file() else None
