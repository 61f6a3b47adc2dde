"""Ingest: the exporter against a bare aiohttp server, under the same varied failure posts.

``python -m benchmarks.ingest [--short]`` (``make bench-ingest``) runs on loopback only and
stops by itself:

1. **Throughput and latency, A B A B A B.** It starts the exporter as it ships
   (``python -m exporter``, duplicate detection in memory) and :mod:`benchmarks.bare` (reads
   the body, answers 204), each with its stdout read through a pipe by ``wc -l`` as a log
   shipper would, and drives them in turn with Debian's ``wrk`` (``benchmarks/ingest.lua``,
   32 connections) posting the same :data:`TEMPLATES` varied, realistic SMTPeter failure
   posts (many recipients, domains, codes and provider descriptions), each with its own id
   so that none is a duplicate. It prints requests/s, p50 and p99 of every round, their
   medians, and the exporter's throughput as a share of the bare server's, per round and
   overall: rounds alternate so both see the same machine.
2. **Scrapes at the series cap.** It starts the exporter with its series at the worst case
   of the budget (:mod:`benchmarks.ingest_server`) and times ``/metrics``; then runs ``wrk``
   twice more against it, without scrapes and with a scrape every second, and prints both
   p99s.
3. **Memory.** The soak (:mod:`benchmarks.soak`) posts 1,000,000 distinct events of every
   kind and prints the resident memory after them.

Where the machine has two cores, every server runs on the first (``taskset``) and ``wrk``,
the pipe readers and the scraper on the second. ``--short`` (the CI smoke) runs shorter
rounds and a 10,000-event soak; its figures are printed, not judged.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import urlencode

from benchmarks import PROJECT_ROOT, soak
from benchmarks.series import measure
from benchmarks.traffic import Traffic
from exporter.server import event_loop_factory

LUA_SCRIPT: Final = Path(__file__).with_name("ingest.lua")
#: Different failure posts the load cycles through.
TEMPLATES: Final = 1_000
CONNECTIONS: Final = 32
#: The placeholder of each post's id, replaced per request by ingest.lua.
EVENT_NUMBER: Final = "XIDX"
#: Company domains for the long tail of recipient domains (numbered, past the domain cap).
_COMPANIES: Final = ("acme", "northwind", "contoso", "fabrikam", "tailspin", "wingtip", "adatum")


@dataclass(frozen=True, slots=True)
class Durations:
    """How long each part runs, in seconds, and how many events the soak posts."""

    warm_up: float
    round: float
    scraped: float
    scrapes_timed: int
    soak_events: int


FULL: Final = Durations(warm_up=2, round=5, scraped=10, scrapes_timed=10, soak_events=1_000_000)
SHORT: Final = Durations(warm_up=0.5, round=1, scraped=2, scrapes_timed=3, soak_events=10_000)
ROUNDS: Final = 3


@dataclass(frozen=True, slots=True)
class Run:
    """What ``wrk`` reported for one run against one server."""

    server: str
    requests: int
    ok: int
    not_ok: int
    errors: int
    seconds: float
    p50: float
    p99: float
    p999: float
    max: float

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


@dataclass(frozen=True, slots=True)
class Scrapes:
    """``/metrics`` of the exporter at the series cap."""

    series: int
    bytes: int
    #: Seconds of each timed scrape, as the scraper saw them.
    seconds: tuple[float, ...]
    quiet: Run
    scraped: Run
    #: Scrapes made while ``scraped`` ran.
    during: int


@dataclass(frozen=True, slots=True)
class IngestResult:
    rounds: tuple[Run, ...]
    scrapes: Scrapes
    soak: soak.SoakResult
    #: Lines the exporter wrote to its stdout pipe (warm-up and rounds).
    log_lines: int
    #: The exporter's event loop: "uvloop" or "asyncio".
    event_loop: str
    cores: tuple[int, int] | None
    durations: Durations
    #: The most smtpeter_* series the budget allows (benchmarks/series.py).
    series_cap: int

    def of(self, server: str) -> list[Run]:
        return [run for run in self.rounds if run.server == server]

    @property
    def ratios(self) -> list[float]:
        """The exporter's requests/s over the bare server's, round by round."""
        return [
            ours.per_second / bare.per_second
            for ours, bare in zip(self.of(EXPORTER), self.of(BARE), strict=True)
            if bare.per_second
        ]


EXPORTER: Final = "exporter"
BARE: Final = "bare aiohttp"


def templates(count: int = TEMPLATES, seed: int = 9) -> list[tuple[str, str]]:
    """``(path, form body)`` of ``count`` varied failure posts, the id a placeholder.

    Mostly ordinary failures at the usual mix of providers and company domains, a tenth of
    them Microsoft blocking the sender, one in twenty a DMARC refusal, and a fifth at a long
    tail of numbered company domains (most past the domain cap).
    """
    traffic = Traffic(seed)
    rng = random.Random(seed)
    posts = []
    for _ in range(count):
        draw = rng.random()
        if draw < 0.10:
            path, fields = traffic.blocked("microsoft")
        elif draw < 0.15:
            path, fields = traffic.auth_failure(rng.choice(("gmail.com", "yahoo.com", "aol.com")))
        elif draw < 0.35:
            domain = f"{rng.choice(_COMPANIES)}{rng.randrange(400)}.example"
            path, fields = traffic.failure(domain=domain)
        else:
            path, fields = traffic.failure()
        fields["id"] = f"ingest{EVENT_NUMBER}"
        posts.append((path, urlencode(fields)))
    return posts


def write_templates(directory: Path) -> Path:
    """:func:`templates` as ingest.lua reads them: ``PATH<TAB>BODY`` lines."""
    path = directory / "templates.tsv"
    path.write_text("".join(f"{url}\t{body}\n" for url, body in templates()))
    return path


def pinned_cores() -> tuple[int, int] | None:
    cores = sorted(os.sched_getaffinity(0))
    return (cores[0], cores[1]) if len(cores) >= 2 else None


def on_core(command: list[str], core: int | None) -> list[str]:
    taskset = shutil.which("taskset")
    if core is None or taskset is None:
        return command
    return [taskset, "--cpu-list", str(core), *command]


@dataclass
class _Server:
    name: str
    process: subprocess.Popen[bytes]
    reader: subprocess.Popen[bytes]
    url: str
    #: Where /metrics and /readyz are, for the exporter.
    monitoring: str | None

    def stop(self) -> int:
        """SIGTERM, then the lines the pipe's reader counted."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        out, _ = self.reader.communicate(timeout=30)
        return int(out.split()[0]) if out.strip() else 0


def _env(port: int, metrics_port: int) -> dict[str, str]:
    return {
        **os.environ,
        "SMTPETER_EXPORTER_WEB_LISTEN_ADDRESS": f"127.0.0.1:{port}",
        "SMTPETER_EXPORTER_WEB_METRICS_LISTEN_ADDRESS": f"127.0.0.1:{metrics_port}",
        "SMTPETER_EXPORTER_LOG_FORMAT": "json",
        "SMTPETER_EXPORTER_WEB_SHUTDOWN_TIMEOUT": "2",
        "PYTHONPATH": os.pathsep.join(
            path for path in (os.environ.get("PYTHONPATH"), str(PROJECT_ROOT)) if path
        ),
    }


@contextlib.contextmanager
def running(
    name: str, module: str, cores: tuple[int, int] | None, directory: Path
) -> Iterator[_Server]:
    """``python -m module`` on the server core, its stdout read by ``wc -l`` on the other."""
    port, metrics_port = soak.free_ports(2)
    server_core, reader_core = cores or (None, None)
    exporter = module != "benchmarks.bare"
    command = [sys.executable, "-m", module, *([] if exporter else [str(port)])]
    with (directory / f"{module}.stderr").open("wb") as stderr:
        process = subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
            on_core(command, server_core),
            env=_env(port, metrics_port),
            cwd=directory,
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
    assert process.stdout is not None
    reader = subprocess.Popen(  # noqa: S603 - wc from PATH
        on_core(["wc", "--lines"], reader_core),
        stdin=process.stdout,
        stdout=subprocess.PIPE,
    )
    process.stdout.close()  # the reader holds the pipe now
    server = _Server(
        name,
        process,
        reader,
        f"http://127.0.0.1:{port}",
        f"http://127.0.0.1:{metrics_port}" if exporter else None,
    )
    try:
        _wait_ready(server)
        yield server
    finally:
        server.stop()


def _wait_ready(server: _Server, within: float = 30) -> None:
    url = f"{server.monitoring}/readyz" if server.monitoring else f"{server.url}/"
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited with {server.process.returncode}")
        with contextlib.suppress(OSError):
            _get(url, timeout=2)
            return
        time.sleep(0.05)
    raise RuntimeError(f"{server.name} was not ready within {within:g} s")


def run_wrk(
    server: _Server, template_file: Path, first: int, seconds: float, core: int | None
) -> Run:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise FileNotFoundError("wrk is not installed (scripts/install-test-tools.sh)")
    command = [
        wrk,
        "--threads=1",
        f"--connections={CONNECTIONS}",
        f"--duration={max(1, round(seconds))}s",
        "--timeout=10s",
        f"--script={LUA_SCRIPT}",
        server.url,
        "--",
        str(template_file),
        str(first),
    ]
    result = subprocess.run(  # noqa: S603 - wrk from PATH, fixed arguments
        on_core(command, core),
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=False,
    )
    line = next((ln for ln in result.stdout.splitlines() if ln.startswith("INGEST ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed ({result.returncode}): {result.stdout}{result.stderr}")
    figures = json.loads(line.removeprefix("INGEST "))
    return Run(
        server=server.name,
        requests=figures["requests"],
        ok=figures["ok"],
        not_ok=figures["not_ok"],
        errors=figures["errors"],
        seconds=figures["duration_us"] / 1e6,
        p50=figures["latency_p50_us"] / 1e6,
        p99=figures["latency_p99_us"] / 1e6,
        p999=figures["latency_p999_us"] / 1e6,
        max=figures["latency_max_us"] / 1e6,
    )


class _Scraper:
    """GETs ``/metrics`` every ``interval`` seconds (``count`` times at most) on a thread of
    its own, pinned to ``core`` so that it never takes the server's."""

    def __init__(self, url: str, interval: float, core: int | None, count: int = 1_000) -> None:
        self._url = url
        self._interval = interval
        self._core = core
        self._count = count
        self._stop = threading.Event()
        self.seconds: list[float] = []
        self.exposition = b""
        self._thread = threading.Thread(target=self._run, name="scraper", daemon=True)

    def __enter__(self) -> _Scraper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def wait(self) -> None:
        self._thread.join(timeout=60)

    def _run(self) -> None:
        if self._core is not None:
            os.sched_setaffinity(0, {self._core})  # 0: this thread alone
        while not self._stop.is_set() and len(self.seconds) < self._count:
            seconds, self.exposition = _scrape(self._url)
            self.seconds.append(seconds)
            self._stop.wait(self._interval)


def _get(url: str, timeout: float = 30) -> bytes:
    """The body of a GET of ``url`` (always http://127.0.0.1:...)."""
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback
        body: bytes = response.read()
    return body


#: What Prometheus sends when it scrapes (it prefers OpenMetrics, compressed).
SCRAPE_HEADERS: Final = {
    "Accept": "application/openmetrics-text;version=1.0.0;q=0.5,"
    "application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,"
    "*/*;q=0.2",
    "Accept-Encoding": "gzip",
}


def _scrape(url: str) -> tuple[float, bytes]:
    """Seconds a Prometheus-style scrape took (asked, rendered, sent, unzipped), and the
    exposition."""
    started = time.perf_counter()
    request = urllib.request.Request(url, headers=SCRAPE_HEADERS)  # noqa: S310 - loopback
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
        body: bytes = response.read()
        if response.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
    return time.perf_counter() - started, body


def _series(exposition: bytes) -> int:
    return sum(
        1
        for line in exposition.splitlines()
        if line.startswith(b"smtpeter_") and not line.startswith(b"#")
    )


def run_ingest(*, short: bool = False) -> IngestResult:
    """Run every part of the benchmark and return its figures (needs ``wrk``)."""
    if shutil.which("wrk") is None:
        raise FileNotFoundError("wrk is not installed (scripts/install-test-tools.sh)")
    durations = SHORT if short else FULL
    cores = pinned_cores()
    wrk_core = cores[1] if cores else None
    with tempfile.TemporaryDirectory(prefix="ingest-") as tmp:
        directory = Path(tmp)
        template_file = write_templates(directory)
        first = 0
        rounds: list[Run] = []
        with (
            running(EXPORTER, "exporter", cores, directory) as ours,
            running(BARE, "benchmarks.bare", cores, directory) as bare,
        ):
            event_loop = _event_loop()
            for server in (ours, bare):  # warm up: imports, caches, the allocator
                first += run_wrk(server, template_file, first, durations.warm_up, wrk_core).requests
            for _ in range(ROUNDS):
                for server in (ours, bare):
                    run = run_wrk(server, template_file, first, durations.round, wrk_core)
                    first += run.requests
                    rounds.append(run)
            log_lines = ours.stop()
        scrapes = _measure_scrapes(template_file, durations, cores, directory)
    soaked = soak.run_soak(
        durations.soak_events, checkpoint_every=max(durations.soak_events // 10, 1_000)
    )
    return IngestResult(
        rounds=tuple(rounds),
        scrapes=scrapes,
        soak=soaked,
        log_lines=log_lines,
        event_loop=event_loop,
        cores=cores,
        durations=durations,
        series_cap=measure().worst_case,
    )


def _event_loop() -> str:
    """The event loop the exporter runs on: uvloop when this interpreter has it."""
    return "uvloop" if event_loop_factory() is not None else "asyncio"


def _measure_scrapes(
    template_file: Path, durations: Durations, cores: tuple[int, int] | None, directory: Path
) -> Scrapes:
    wrk_core = cores[1] if cores else None
    with running(EXPORTER, "benchmarks.ingest_server", cores, directory) as capped:
        assert capped.monitoring is not None
        metrics_url = f"{capped.monitoring}/metrics"
        run_wrk(capped, template_file, 0, durations.warm_up, wrk_core)
        # One untimed scrape first (the first makes each family's header), then timed ones.
        with _Scraper(metrics_url, 0.2, wrk_core, durations.scrapes_timed + 1) as timed:
            timed.wait()
        quiet = run_wrk(capped, template_file, 10_000_000, durations.scraped, wrk_core)
        with _Scraper(metrics_url, 1.0, wrk_core) as scraper:
            scraped = run_wrk(capped, template_file, 20_000_000, durations.scraped, wrk_core)
    return Scrapes(
        series=_series(timed.exposition),
        bytes=len(timed.exposition),
        seconds=tuple(timed.seconds[1:]),
        quiet=quiet,
        scraped=scraped,
        during=len(scraper.seconds),
    )


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def _run_line(label: str, run: Run) -> str:
    return (
        f"  {label:<22} {run.per_second:>9,.0f} req/s   p50 {_ms(run.p50):>9}   "
        f"p99 {_ms(run.p99):>9}   ({run.requests:,} requests, {run.not_ok:,} not 2xx, "
        f"{run.errors:,} errors)"
    )


def _median_run(runs: Sequence[Run]) -> tuple[float, float, float]:
    return (
        statistics.median(run.per_second for run in runs),
        statistics.median(run.p50 for run in runs),
        statistics.median(run.p99 for run in runs),
    )


def report(result: IngestResult) -> str:
    durations = result.durations
    pinned = (
        f"servers on core {result.cores[0]}, wrk and pipe readers on core {result.cores[1]}"
        if result.cores
        else "not pinned (one core)"
    )
    heading = (
        f"ingest ({TEMPLATES:,} varied failure posts, each a new event; {CONNECTIONS} "
        f"connections; {durations.round:g} s rounds; {pinned}; stdout through a pipe; "
        f"exporter on {result.event_loop}):"
    )
    lines = [heading]
    for number, (ours, bare) in enumerate(
        zip(result.of(EXPORTER), result.of(BARE), strict=True), start=1
    ):
        lines.append(_run_line(f"round {number} {EXPORTER}", ours))
        lines.append(_run_line(f"round {number} {BARE}", bare))
    for name in (EXPORTER, BARE):
        rate, p50, p99 = _median_run(result.of(name))
        lines.append(
            f"  median {name:<15} {rate:>9,.0f} req/s   p50 {_ms(p50):>9}   p99 {_ms(p99):>9}"
        )
    ratios = result.ratios
    lines.append(
        f"  exporter / bare aiohttp: {statistics.median(ratios):.2f} "
        f"(rounds: {', '.join(f'{r:.2f}' for r in ratios)})"
    )
    answered = sum(run.ok for run in result.of(EXPORTER))
    lines.append(f"  exporter log lines through the pipe: {result.log_lines:,}")
    lines.append(f"  (the rounds alone answered {answered:,} events 2xx)")
    scrapes = result.scrapes
    lines.append(
        f"scrapes at the series cap ({scrapes.series:,} smtpeter_* series; budget "
        f"{result.series_cap:,}; {scrapes.bytes / 1024:,.0f} KiB):"
    )
    lines.append(
        f"  /metrics scrape time:    median {_ms(statistics.median(scrapes.seconds))}, "
        f"max {_ms(max(scrapes.seconds))} ({len(scrapes.seconds)} scrapes)"
    )
    lines.append(_run_line("ingest, no scrapes", scrapes.quiet))
    lines.append(_run_line("ingest, scrape every 1 s", scrapes.scraped))
    lines.append(
        f"  ingest p99 with a scrape every second: {_ms(scrapes.scraped.p99)} "
        f"({scrapes.during} scrapes; {_ms(scrapes.quiet.p99)} without); p99.9 "
        f"{_ms(scrapes.scraped.p999)} ({_ms(scrapes.quiet.p999)}); max "
        f"{_ms(scrapes.scraped.max)} ({_ms(scrapes.quiet.max)})"
    )
    soaked = result.soak
    lines.append(f"memory ({soaked.events:,} distinct events of every kind, benchmarks/soak.py):")
    lines.append(f"  RSS at start:            {_mib(soaked.checkpoints[0].rss_bytes)}")
    lines.append(
        f"  RSS after {soaked.events:,} events: {_mib(soaked.checkpoints[-1].rss_bytes)} "
        f"(largest {_mib(soaked.max_rss_bytes)}; soak {soaked.events_per_second:,.0f} events/s)"
    )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    short = "--short" in argv
    result = run_ingest(short=short)
    print(report(result))
    failed = any(run.not_ok or run.errors for run in result.of(EXPORTER)) or result.soak.not_ok
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
