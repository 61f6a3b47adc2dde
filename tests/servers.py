"""Real servers for end-to-end tests: started on loopback, on free ports, always stopped.

Each process writes its output to a file (never an unread pipe, which would stall a busy
server once the pipe buffer fills), and :class:`Servers` stops every process it started
when the test ends, however it ends.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import pytest

T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, every: float = 0.25) -> T:
    """Call ``probe`` until it returns something other than ``None``; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError, ValueError):
            found = probe()
            if found is not None:
                return found
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def get_json(url: str, params: dict[str, str] | None = None) -> Any:  # noqa: ANN401 - JSON
    if params:
        url = f"{url}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback URL
        return json.load(response)


def answers(url: str) -> bool | None:
    """``True`` when ``url`` answers 200, ``None`` otherwise (for :func:`wait_for`)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback URL
            return True if response.status == 200 else None
    except urllib.error.URLError:
        return None


class Receiver:
    """An HTTP server that keeps every JSON document posted to it (Alertmanager's webhook)."""

    def __init__(self, port: int) -> None:
        self.posts: list[tuple[str, Any]] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                document = json.loads(self.rfile.read(length))
                with outer._lock:
                    outer.posts.append((self.path, document))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                """Quiet: the test asserts on what arrived."""

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def received(self) -> list[tuple[str, Any]]:
        with self._lock:
            return list(self.posts)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class Servers:
    """Processes started for one test, each logging to its own file under ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._processes: list[tuple[str, subprocess.Popen[bytes]]] = []
        self._receivers: list[Receiver] = []

    def start(self, name: str, command: list[str], env: dict[str, str] | None = None) -> Path:
        """Start ``command``; its output goes to the returned file."""
        log = self.directory / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=self.directory
            )
        self._processes.append((name, process))
        return log

    def signal(self, name: str, signum: signal.Signals) -> None:
        """Send ``signum`` to the process started as ``name`` (SIGHUP: reload)."""
        [process] = [process for started, process in self._processes if started == name]
        process.send_signal(signum)

    def check_running(self) -> None:
        for name, process in self._processes:
            if process.poll() is not None:
                log = (self.directory / f"{name}.log").read_text(errors="replace")
                pytest.fail(f"{name} exited with {process.returncode}:\n{log[-3000:]}")

    def receiver(self, port: int) -> Receiver:
        receiver = Receiver(port)
        self._receivers.append(receiver)
        return receiver

    def stop_all(self) -> None:
        for _, process in reversed(self._processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for _, process in reversed(self._processes):
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        for receiver in self._receivers:
            receiver.close()


@contextlib.contextmanager
def servers(directory: Path) -> Iterator[Servers]:
    running = Servers(directory)
    try:
        yield running
    finally:
        running.stop_all()
