"""Readiness and the requests in flight, for draining at shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field


@dataclass(slots=True)
class Lifecycle:
    """Readiness (``/readyz``) and the requests in flight, for draining at shutdown."""

    ready: bool = False
    started_at: float = field(default_factory=time.time)
    in_flight: int = 0
    _drained: asyncio.Event | None = None

    @property
    def uptime(self) -> float:
        return time.time() - self.started_at

    def enter(self) -> None:
        self.in_flight += 1

    def leave(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0 and self._drained is not None:
            self._drained.set()

    async def drain(self, within: float) -> int:
        """Wait until no request is in flight, or ``within`` seconds; return how many are left."""
        if self.in_flight:
            self._drained = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(within):
                    await self._drained.wait()
        return self.in_flight
