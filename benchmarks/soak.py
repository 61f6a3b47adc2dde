"""Soak: a million distinct events through HTTP, and what the service holds afterwards.

``python -m benchmarks.soak [EVENTS]`` (default 1,000,000) starts the real service on
loopback with its defaults (duplicate detection in memory, 100 recipient domains with their
own label), posts EVENTS events with ``wrk`` and ``benchmarks/soak.lua``, and prints events
per second, the service's resident memory at start, after every 100,000 events and at the
end, the series on /metrics against the worst case the budget allows, the duplicate store's
entries and the wall time. Every event has its own id, recipient and recipient domain, so the
domain cap is reached early and everything after it is counted as ``other``.

The bodies are SMTPeter's form posts from :mod:`benchmarks.traffic` (failures, deliveries,
opens, clicks, raw bounces and complaints), with the id and recipient replaced per event by
the Lua script. Where the machine has two cores the service runs on one and ``wrk`` on the
other. The run stops by itself: ``wrk`` stops once each event is answered, and each batch
of 100,000 has a time limit.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final
from urllib.parse import urlencode

from prometheus_client.parser import text_string_to_metric_families

from benchmarks import PROJECT_ROOT
from benchmarks.series import measure
from benchmarks.traffic import Traffic
from exporter.metrics import disable_created_series

LUA_SCRIPT: Final = Path(__file__).with_name("soak.lua")
DEFAULT_EVENTS: Final = 1_000_000
#: Resident memory at every this many events.
CHECKPOINT_EVERY: Final = 100_000
#: The bound the README promises for the service's resident memory.
RSS_LIMIT_BYTES: Final = 200 * 1024 * 1024
#: wrk's connections: enough to keep the one-threaded service busy, far below its cap.
CONNECTIONS: Final = 16
#: Different request bodies the events cycle through.
TEMPLATES: Final = 400
#: A batch of events that has not been answered at this rate is cut off (a hung service).
SLOWEST_EVENTS_PER_SECOND: Final = 200
#: Placeholders soak.lua replaces per event.
EVENT_NUMBER: Final = "XIDX"
EVENT_DOMAIN: Final = "XDOMX"
_ARF_RECIPIENT: Final = re.compile(r"Original-Rcpt-To: <([^>]+)>")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The service after ``events`` events."""

    events: int
    rss_bytes: int


@dataclass(frozen=True, slots=True)
class Batch:
    """What ``wrk`` reported for one batch of events."""

    sent: int
    answered: int
    ok: int
    refused: int
    errors: int
    seconds: float
    latency_p50: float
    latency_p99: float


@dataclass(frozen=True, slots=True)
class SoakResult:
    events: int
    batches: tuple[Batch, ...]
    checkpoints: tuple[Checkpoint, ...]
    #: smtpeter_* samples on /metrics at the end, and the most the series budget allows.
    series: int
    series_cap: int
    #: Events counted as domain="other" because the domain cap was reached.
    domain_overflow: int
    dedup_entries: int
    #: Events /metrics counts as accepted, and event lines in the service's log.
    accepted: int
    logged: int
    exit_code: int
    wall_seconds: float
    #: Cores the service and wrk were pinned to (None: not pinned, a one-core machine).
    cores: tuple[int, int] | None

    @property
    def ok(self) -> int:
        return sum(batch.ok for batch in self.batches)

    @property
    def not_ok(self) -> int:
        """Events answered with something other than 2xx, or not answered at all."""
        return self.events - self.ok

    @property
    def load_seconds(self) -> float:
        return sum(batch.seconds for batch in self.batches)

    @property
    def events_per_second(self) -> float:
        return self.ok / self.load_seconds if self.load_seconds else 0.0

    @property
    def max_rss_bytes(self) -> int:
        return max(checkpoint.rss_bytes for checkpoint in self.checkpoints)


def templates(count: int = TEMPLATES, seed: int = 11) -> list[tuple[str, str]]:
    """``(path, form body)`` of ``count`` varied posts, with each event's id and recipient
    replaced by :data:`EVENT_NUMBER` and :data:`EVENT_DOMAIN` placeholders."""
    recipient = f"rcpt{EVENT_NUMBER}@{EVENT_DOMAIN}"
    out = []
    for path, fields in Traffic(seed).mix(count, failure_share=0.1):
        original = fields.get("recipient")
        if original is None:  # a complaint: the recipient is inside the ARF report
            found = _ARF_RECIPIENT.search(fields["mime"])
            assert found is not None
            original = found[1]
        replaced = {name: value.replace(original, recipient) for name, value in fields.items()}
        replaced["id"] = f"soak{EVENT_NUMBER}"
        out.append((path, urlencode(replaced)))
    return out


def free_ports(count: int) -> list[int]:
    """``count`` different TCP ports on 127.0.0.1 that nothing listens on right now (bound
    all at once, so none is handed out twice)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]


def _pinned(core: int | None) -> Callable[[], None] | None:
    if core is None:
        return None
    return lambda: os.sched_setaffinity(0, {core})


def _cores() -> tuple[int, int] | None:
    """A core for the service and another for wrk, when there are two."""
    cores = sorted(os.sched_getaffinity(0))
    return (cores[0], cores[1]) if len(cores) >= 2 else None


@dataclass
class _Service:
    process: subprocess.Popen[bytes]
    port: int
    metrics_port: int
    output: IO[bytes]

    def get(self, path: str, timeout: float = 10) -> bytes:
        url = f"http://127.0.0.1:{self.metrics_port}{path}"
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body: bytes = response.read()
            return body

    def rss_bytes(self) -> int:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        kib = next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))
        return int(kib) * 1024


@contextlib.contextmanager
def _service(directory: Path, core: int | None) -> Iterator[_Service]:
    """The exporter on loopback with its defaults; its log goes to ``directory``."""
    port, metrics_port = free_ports(2)
    env = {
        **os.environ,
        "SMTPETER_EXPORTER_WEB_LISTEN_ADDRESS": f"127.0.0.1:{port}",
        "SMTPETER_EXPORTER_WEB_METRICS_LISTEN_ADDRESS": f"127.0.0.1:{metrics_port}",
        "SMTPETER_EXPORTER_LOG_FORMAT": "json",
        # This checkout, after whatever PYTHONPATH names first.
        "PYTHONPATH": os.pathsep.join(
            path for path in (os.environ.get("PYTHONPATH"), str(PROJECT_ROOT)) if path
        ),
    }
    with (directory / "exporter.log").open("w+b") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "exporter"],
            env=env,
            cwd=directory,
            stdout=output,
            stderr=subprocess.STDOUT,
            # This process runs no other thread: setting the child's affinity is safe.
            preexec_fn=_pinned(core),  # noqa: PLW1509
        )
        service = _Service(process, port, metrics_port, output)
        try:
            _wait_ready(service)
            yield service
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)


def _wait_ready(service: _Service, within: float = 20) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            raise RuntimeError(f"the exporter exited with {service.process.returncode}")
        with contextlib.suppress(OSError):
            service.get("/readyz", timeout=2)
            return
        time.sleep(0.05)
    raise RuntimeError(f"the exporter was not ready within {within:g} s")


def _run_wrk(
    *, wrk: str, service: _Service, template_file: Path, first: int, count: int, core: int | None
) -> Batch:
    limit = max(60, count // SLOWEST_EVENTS_PER_SECOND)
    command = [
        wrk,
        "--threads=1",
        f"--connections={CONNECTIONS}",
        f"--duration={limit}s",
        "--timeout=10s",
        f"--script={LUA_SCRIPT}",
        f"http://127.0.0.1:{service.port}",
        "--",
        str(template_file),
        str(first),
        str(count),
    ]
    result = subprocess.run(  # noqa: S603 - wrk from PATH, fixed arguments
        command,
        capture_output=True,
        text=True,
        timeout=limit + 30,
        check=False,
        preexec_fn=_pinned(core),
    )
    line = next((ln for ln in result.stdout.splitlines() if ln.startswith("SOAK ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed ({result.returncode}): {result.stdout}{result.stderr}")
    figures = json.loads(line.removeprefix("SOAK "))
    return Batch(
        sent=figures["sent"],
        answered=figures["answered"],
        ok=figures["ok"],
        refused=figures["refused"],
        errors=sum(
            figures[name] for name in ("connect_errors", "read_errors", "write_errors", "timeouts")
        ),
        seconds=figures["duration_us"] / 1e6,
        latency_p50=figures["latency_p50_us"] / 1e6,
        latency_p99=figures["latency_p99_us"] / 1e6,
    )


def _scrape(service: _Service) -> tuple[int, int, int, int]:
    """(smtpeter_* samples, domain-cap overflows, dedup entries, events counted as accepted)
    from /metrics."""
    series = overflow = dedup = accepted = 0
    for family in text_string_to_metric_families(service.get("/metrics").decode()):
        if not family.name.startswith("smtpeter_"):
            continue
        series += len(family.samples)
        for sample in family.samples:
            if sample.name == "smtpeter_dedup_entries":
                dedup = int(sample.value)
            elif sample.name == "smtpeter_domain_label_overflow_total":
                overflow = int(sample.value)
            elif (
                sample.name == "smtpeter_webhook_requests_total"
                and sample.labels["outcome"] == "accepted"
            ):
                accepted += int(sample.value)
    return series, overflow, dedup, accepted


def count_event_lines(log: IO[bytes]) -> int:
    """Lines of the log that record an event (``event`` is the kind, and ``kind`` is there)."""
    log.seek(0)
    count = 0
    for line in log:
        if b'"kind": ' in line and line.startswith(b"{"):
            fields = json.loads(line)
            count += fields.get("event") == fields.get("kind")
    return count


def run_soak(
    events: int = DEFAULT_EVENTS,
    *,
    checkpoint_every: int = CHECKPOINT_EVERY,
    progress: Callable[[str], None] | None = None,
) -> SoakResult:
    """Post ``events`` distinct events to a fresh service and measure it (needs ``wrk``)."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise FileNotFoundError("wrk is not installed (scripts/install-test-tools.sh)")
    disable_created_series()
    cores = _cores()
    service_core, wrk_core = cores or (None, None)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        directory = Path(tmp)
        template_file = directory / "templates.tsv"
        template_file.write_text("".join(f"{path}\t{body}\n" for path, body in templates()))
        with _service(directory, service_core) as service:
            checkpoints = [Checkpoint(0, service.rss_bytes())]
            batches = []
            for first in range(0, events, checkpoint_every):
                count = min(checkpoint_every, events - first)
                batches.append(
                    _run_wrk(
                        wrk=wrk,
                        service=service,
                        template_file=template_file,
                        first=first,
                        count=count,
                        core=wrk_core,
                    )
                )
                checkpoints.append(Checkpoint(first + count, service.rss_bytes()))
                if progress is not None:
                    progress(_progress_line(checkpoints[-1], batches[-1]))
            series, overflow, dedup, accepted = _scrape(service)
            service.process.send_signal(signal.SIGTERM)
            exit_code = service.process.wait(timeout=60)
            logged = count_event_lines(service.output)
    return SoakResult(
        events=events,
        batches=tuple(batches),
        checkpoints=tuple(checkpoints),
        series=series,
        series_cap=measure().worst_case,
        domain_overflow=overflow,
        dedup_entries=dedup,
        accepted=accepted,
        logged=logged,
        exit_code=exit_code,
        wall_seconds=time.monotonic() - started,
        cores=cores,
    )


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


def _progress_line(checkpoint: Checkpoint, batch: Batch) -> str:
    return (
        f"  {checkpoint.events:>9,} events  RSS {_mib(checkpoint.rss_bytes):>10}  "
        f"{batch.ok / batch.seconds if batch.seconds else 0:>7,.0f} events/s  "
        f"p99 {batch.latency_p99 * 1000:.1f} ms"
    )


def report(result: SoakResult) -> str:
    rss = ", ".join(f"{c.events:,}: {_mib(c.rss_bytes)}" for c in result.checkpoints)
    pinned = (
        f"service on core {result.cores[0]}, wrk on core {result.cores[1]}"
        if result.cores
        else "not pinned (one core)"
    )
    verdict = "under" if result.max_rss_bytes < RSS_LIMIT_BYTES else "OVER"
    return "\n".join(
        [
            f"soak ({result.events:,} distinct events over HTTP, {pinned}):",
            f"  events/s:                {result.events_per_second:,.0f}",
            f"  answered 2xx:            {result.ok:,} (not 2xx or unanswered: {result.not_ok:,})",
            f"  counted / logged:        {result.accepted:,} / {result.logged:,}",
            f"  resident memory:         {rss}",
            (
                f"  largest RSS:             {_mib(result.max_rss_bytes)} "
                f"({verdict} the {_mib(RSS_LIMIT_BYTES)} target)"
            ),
            (
                f"  series / cap:            {result.series:,} / {result.series_cap:,} "
                f"({result.domain_overflow:,} events past the domain cap)"
            ),
            f"  smtpeter_dedup_entries:  {result.dedup_entries:,}",
            f"  exit code:               {result.exit_code}",
            (
                f"  wall time:               {result.wall_seconds:.1f} s "
                f"(load {result.load_seconds:.1f} s)"
            ),
        ]
    )


def main(argv: list[str]) -> int:
    events = int(argv[0].replace(",", "").replace("_", "")) if argv else DEFAULT_EVENTS
    result = run_soak(events, progress=print)
    print(report(result))
    healthy = (
        result.not_ok == 0
        and result.max_rss_bytes < RSS_LIMIT_BYTES
        and result.series <= result.series_cap
        and result.exit_code == 0
    )
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
