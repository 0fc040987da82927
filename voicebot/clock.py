"""The call's timeline: seconds since call start, the same in live and fast runs.

``RealtimeClock`` is wall time. ``FastClock`` is wall time plus the idle time it
skipped: when every stage is waiting for the clock (nothing queued, no model
work in flight), it jumps straight to the earliest deadline instead of
sleeping. Model work still takes its real time, so a ``--fast`` run produces
the same event times as a real-time run, only sooner. ``VirtualClock`` skips
the same way but stands still while work is in flight: model work takes no
time, and a simulation's outcome no longer depends on the machine's load.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time
from collections.abc import Callable


class Clock:
    """Real-time call clock."""

    fast = False

    def __init__(self) -> None:
        self._t0 = time.monotonic()
        self._busy = 0

    def now(self) -> float:
        return time.monotonic() - self._t0

    async def sleep_until(self, t: float) -> None:
        delay = t - self.now()
        if delay > 0:
            await asyncio.sleep(delay)

    def busy(self) -> _Busy:
        """Context manager marking off-loop work (model inference) in flight."""
        return _Busy(self)

    @property
    def is_busy(self) -> bool:
        return self._busy > 0

    def start(self, idle: Callable[[], bool]) -> None:
        """The call begins. ``idle`` tells whether no queued frame is waiting for its
        consumer (``Pipeline.idle``); only the fast clock asks, to know when it may
        skip ahead."""

    async def close(self) -> None:
        """Stop the scheduler."""


class _Busy:
    __slots__ = ("_clock",)

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def __enter__(self) -> None:
        self._clock._busy += 1

    def __exit__(self, *exc: object) -> None:
        self._clock._busy -= 1


class FastClock(Clock):
    """Skips idle time: ``start``'s ``idle`` reports whether queued frames are still pending."""

    fast = True

    def __init__(self) -> None:
        super().__init__()
        self._skipped = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._idle: Callable[[], bool] = lambda: True

    def now(self) -> float:
        return time.monotonic() - self._t0 + self._skipped

    async def sleep_until(self, t: float) -> None:
        if t <= self.now():
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (t, next(self._seq), fut))
        self._wake.set()
        await fut

    def start(self, idle: Callable[[], bool]) -> None:
        self._idle = idle
        self._task = asyncio.get_running_loop().create_task(self._run(), name="fast-clock")

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for _, _, fut in self._sleepers:
            fut.cancel()
        self._sleepers.clear()

    async def _settled(self) -> bool:
        # Let every runnable task take its turn; only then is the graph idle.
        for _ in range(8):
            await asyncio.sleep(0)
            if self._busy or not self._idle():
                return False
        return True

    async def _run(self) -> None:
        while True:
            while self._sleepers and self._sleepers[0][2].done():
                heapq.heappop(self._sleepers)
            if not self._sleepers:
                self._wake.clear()
                await self._wake.wait()
                continue
            deadline = self._sleepers[0][0]
            now = self.now()
            if deadline <= now:
                _, _, fut = heapq.heappop(self._sleepers)
                fut.set_result(None)
                continue
            if await self._settled():
                # A sleeper may have arrived while settling: jump only to the earliest.
                if self._sleepers and self._sleepers[0][0] == deadline:
                    self._skipped += max(0.0, deadline - self.now())
                continue
            # Work is in flight: wait a little real time (or until a new sleeper).
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=min(0.002, deadline - now))


class VirtualClock(FastClock):
    """A fast clock on which model work takes no time: the timeline is the frames' and
    the deadlines' alone, the same on a busy machine as on an idle one.

    For simulations whose outcome must not depend on the machine's load (a test of the
    barge-in logic); a bench that measures what inference costs uses ``FastClock``.
    """

    def now(self) -> float:
        return self._skipped
