"""Event-loop setup and the loop-lag monitor."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` under uvloop when it is installed, else asyncio's default loop."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a default dependency on POSIX
        return asyncio.run(main)
    return uvloop.run(main)


def loop_name() -> str:
    return type(asyncio.get_running_loop()).__module__.split(".")[0]


class LoopLagMonitor:
    """Measures how late a periodic timer fires: the loop's responsiveness.

    A callback blocking the loop for 30 ms shows up as ~30 ms of lag. Always on
    wall time (never the fast clock), so it measures the real loop.
    """

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.worst = 0.0
        self.samples = 0
        self._total = 0.0
        self._task: asyncio.Task[None] | None = None

    @property
    def mean(self) -> float:
        return self._total / self.samples if self.samples else 0.0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="loop-lag")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            start = time.perf_counter()
            await asyncio.sleep(self.interval)
            lag = max(0.0, time.perf_counter() - start - self.interval)
            self.worst = max(self.worst, lag)
            self._total += lag
            self.samples += 1
