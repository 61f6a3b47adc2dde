"""A throwaway redis-server on loopback for the shared duplicate-store tests.

Debian's ``redis-server`` on a free port, bound to 127.0.0.1, with nothing persisted and its
own directory; the tests stop, freeze (SIGSTOP) and restart it to play an outage, and
:func:`running_redis` always stops it, however the test ends.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.conftest import free_port

_START_TIMEOUT = 10.0


class RedisServer:
    """One redis-server process that can be stopped, frozen and started again on its port."""

    def __init__(self, executable: str, directory: Path) -> None:
        self.executable = executable
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen[bytes] | None = None
        self._frozen = False

    def start(self) -> None:
        command = [
            self.executable,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.directory),
        ]
        with (self.directory / "redis.log").open("ab") as out:
            self._process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + _START_TIMEOUT
        while not self._answers():
            if self._process.poll() is not None or time.monotonic() > deadline:
                log = (self.directory / "redis.log").read_text(errors="replace")
                pytest.fail(f"redis-server did not start on port {self.port}:\n{log[-2000:]}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop the server (a frozen one is woken first, or it would not see SIGTERM)."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        if self._frozen:
            self.thaw()
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def freeze(self) -> None:
        """SIGSTOP: connections stay open and commands are never answered (a hung Redis)."""
        assert self._process is not None
        self._process.send_signal(signal.SIGSTOP)
        self._frozen = True

    def thaw(self) -> None:
        assert self._process is not None
        self._process.send_signal(signal.SIGCONT)
        self._frozen = False

    def client(self) -> redis.Redis:
        """A client of our own, to look at what the exporter stored."""
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def _answers(self) -> bool:
        with contextlib.closing(self.client()) as client:
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False


@contextlib.contextmanager
def running_redis(executable: str, directory: Path) -> Iterator[RedisServer]:
    server = RedisServer(executable, directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()
