"""Where the exporter's time goes under the ingest benchmark's load, sampled with py-spy.

``python -m benchmarks.ingest_profile [SECONDS]`` (``make profile``) starts the exporter under
``py-spy record`` on loopback (the server on one core, ``wrk`` and the stdout reader on the
other), posts the ingest benchmark's varied failure posts for SECONDS (default 10), and
prints the share of the samples each step of the request path takes (inclusive) and the
share spent in each package's own code (exclusive). The raw stacks are kept in
``profile.txt`` (py-spy's collapsed format, for a flame graph tool) when ``--keep`` is given.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Final

from benchmarks.ingest import EXPORTER, on_core, pinned_cores, run_wrk, running, write_templates

#: The function of the pipeline whose callees are the request path's steps.
PIPELINE: Final = ("handle", "exporter/pipeline.py")
#: Frames of ours that only pass control on to aiohttp or asyncio (or start everything):
#: a sample under them and under no other frame of ours is aiohttp's or the loop's.
PASS_THROUGH: Final = frozenset(
    {
        ("<module>", "exporter/__main__.py"),
        ("main", "exporter/cli.py"),
        ("run", "exporter/cli.py"),
        ("serve", "exporter/server.py"),
        ("serve_forever", "exporter/server.py"),
        ("data_received", "exporter/connections.py"),
        ("connection_made", "exporter/connections.py"),
        ("connection_lost", "exporter/connections.py"),
        ("finish_response", "exporter/connections.py"),
        ("request_started", "exporter/connections.py"),
    }
)
#: What a sample outside the pipeline is charged to: the first of these that a frame of ours
#: in its stack is (function, file; empty matches any).
OUTSIDE: Final = (
    ("count_request", "exporter/metrics.py", "count and time the request"),
    ("", "exporter/exposition.py", "scrape (rendering /metrics)"),
    ("flush", "exporter/logs.py", "record, after the turn: lines written, events counted"),
    ("", "exporter/middlewares.py", "middlewares"),
    ("", "exporter/app.py", "direct webhook routes (request id, in flight)"),
    ("", "exporter/connections.py", "connection tracking"),
    ("", "exporter/server.py", "connection tracking"),
    ("", "exporter/", "other code of ours"),
)
MACHINERY: Final = "aiohttp and the event loop (no frame of ours)"
#: Packages whose own code (the innermost frame) the samples are grouped by.
PACKAGES: Final = (
    "exporter/mail/",
    "exporter/",
    "aiohttp/",
    "asyncio/",
    "uvloop/",
    "structlog/",
    "prometheus_client/",
    "multidict/",
    "yarl/",
    "json/",
)


def _is(frame: tuple[str, str], wanted: tuple[str, str]) -> bool:
    """Whether a frame is function ``wanted[0]`` (py-spy prefixes methods with their
    class) of a file ending in ``wanted[1]``."""
    name, file = frame
    return (name == wanted[0] or name.endswith("." + wanted[0])) and file.endswith(wanted[1])


def _step(frames: list[tuple[str, str]]) -> str:
    """The step of the request path (or the part outside it) one sample is spent in."""
    if any(name.endswith("generate_latest") for name, _ in frames):
        return "scrape (rendering /metrics)"
    for index, frame in enumerate(frames):
        if _is(frame, PIPELINE):
            callees = frames[index + 1 :]
            if not callees or "exporter/" not in callees[0][1]:
                return "pipeline: its own code"
            step = callees[0][0].rpartition(".")[2]
            if step == "record":
                counted = any("count" in name for name, _ in callees[1:2])
                return "pipeline: record (metrics)" if counted else "pipeline: record (log line)"
            return f"pipeline: {step}"
    ours = [
        frame
        for frame in frames
        if "exporter/" in frame[1] and not any(_is(frame, skip) for skip in PASS_THROUGH)
    ]
    for name, file, step in OUTSIDE:
        if any(_is(frame, (name, file)) if name else file in frame[1] for frame in ours):
            return step
    return MACHINERY


def _frames(stack: str) -> list[tuple[str, str]]:
    """(function, file) of each frame of one py-spy collapsed stack, outermost first."""
    frames = []
    for frame in stack.split(";"):
        name, _, where = frame.partition(" (")
        frames.append((name.strip(), where.rstrip(")").rpartition(":")[0]))
    return frames


def _package(file: str) -> str:
    for package in PACKAGES:
        if package in file:
            return package.rstrip("/")
    return "other (stdlib, C)"


def summarize(collapsed: str) -> str:
    """The shares of each step (inclusive) and package (exclusive) in py-spy's stacks."""
    steps: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = _frames(stack)
        steps[_step(frames)] += count
        packages[_package(frames[-1][1])] += count
    if not total:
        return "no samples"
    lines = [f"py-spy: {total:,} samples of the exporter's threads while under load"]
    lines.append("  where (each sample once: the pipeline step, or what runs outside it):")
    lines += [f"    {count / total:6.1%}  {name}" for name, count in steps.most_common()]
    lines.append("  whose code (the innermost frame):")
    lines += [f"    {count / total:6.1%}  {name}" for name, count in packages.most_common()]
    return "\n".join(lines)


def profile(seconds: float = 10, keep: Path | None = None) -> str:
    """Sample the running exporter for ``seconds`` while ``wrk`` posts to it; its start
    (imports, rule loading) is not sampled."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        raise FileNotFoundError("py-spy is not installed (pip install py-spy)")
    cores = pinned_cores()
    wrk_core = cores[1] if cores else None
    with tempfile.TemporaryDirectory(prefix="profile-") as tmp:
        directory = Path(tmp)
        template_file = write_templates(directory)
        out = directory / "profile.txt"
        with running(EXPORTER, "exporter", cores, directory) as server:
            run_wrk(server, template_file, 0, 1, wrk_core)  # warm up
            command = [
                py_spy, "record", "--format", "raw", "--rate", "1000", "--output", str(out),
                "--duration", str(round(seconds)), "--pid", str(server.process.pid),
            ]  # fmt: skip
            sampler = subprocess.Popen(  # noqa: S603 - py-spy, fixed arguments
                on_core(command, wrk_core), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            try:
                run = run_wrk(server, template_file, 1_000_000, seconds, wrk_core)
            finally:
                sampler.wait(timeout=seconds + 60)
        collapsed = out.read_text() if out.exists() else ""
        if keep is not None:
            keep.write_text(collapsed)
    return f"{run.per_second:,.0f} req/s while sampled\n" + summarize(collapsed)


def main(argv: list[str]) -> int:
    keep = Path("profile.txt") if "--keep" in argv else None
    numbers = [arg for arg in argv if not arg.startswith("--")]
    print(profile(float(numbers[0]) if numbers else 10, keep))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
