"""``python -m monitoring`` (``make monitoring``): write the rules, dashboards and alert
routing from :mod:`monitoring.config`; ``--check`` fails instead when a file would change."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from monitoring import generated_files
from monitoring.config import load

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m monitoring",
        description="Generate the Prometheus rules (and their PrometheusRule), Grafana "
        "dashboards and Alertmanager example from monitoring/config.py (and a TOML file of "
        "overrides).",
    )
    parser.add_argument("--config", type=Path, help="TOML file naming the settings to change")
    parser.add_argument(
        "--output", type=Path, default=PROJECT_ROOT, help="write under this directory"
    )
    parser.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 if a file is out of date"
    )
    args = parser.parse_args(argv)
    stale = []
    for relative, content in generated_files(load(args.config)).items():
        path = args.output / relative
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        if current == content:
            continue
        stale.append(relative)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8")
    verb = "out of date" if args.check else "written"
    for relative in stale:
        print(f"{verb}: {relative}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
