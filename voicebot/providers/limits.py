"""A token bucket that reserves: waiters are served in order and the rate always holds.

The seed guide's limiter returned "wait this long" without taking the tokens, so
every waiter woke together and the burst overshot the provider's limit. Here a
waiter joins a queue and is granted only when the bucket really holds its tokens:
over any window T at most ``capacity + rate * T`` tokens are granted. Live-call
requests (``Priority.LIVE``) are served before batch work; within a priority,
first come first served.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum

from voicebot.providers.errors import ProviderError


class Priority(IntEnum):
    LIVE = 0  # a caller is waiting
    BATCH = 1  # files, prefetching, benchmarks


@dataclass(order=True)
class _Waiter:
    priority: int
    seq: int
    tokens: float = field(compare=False)
    since: float = field(compare=False)
    future: asyncio.Future[float] = field(compare=False)


class TokenBucket:
    def __init__(self, rate_per_s: float, capacity: float, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if rate_per_s <= 0 or capacity <= 0:
            raise ValueError("rate and capacity must be positive")
        self.rate = rate_per_s
        self.capacity = capacity
        self._clock = clock
        self._tokens = capacity
        self._stamp = clock()
        self._queue: list[_Waiter] = []
        self._seq = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self.granted = 0.0  # tokens handed out so far (for tests and metrics)

    @classmethod
    def per_minute(cls, n: float, burst: float | None = None) -> TokenBucket:
        """``n`` requests per minute, at most ``burst`` (default: 1 s worth, at least 1) at once."""
        rate = n / 60.0
        return cls(rate, burst if burst is not None else max(1.0, rate))

    @property
    def waiting(self) -> int:
        return len(self._queue)

    def _refill(self) -> float:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        return now

    def _check(self, tokens: float) -> None:
        if tokens > self.capacity:
            raise ValueError(f"{tokens} tokens can never fit a bucket of {self.capacity}")

    def try_acquire(self, tokens: float = 1) -> float:
        """Take ``tokens`` now if nobody waits and they are there: 0.0. Otherwise take
        nothing and return the seconds until they would be (a server's retry-after)."""
        self._check(tokens)
        self._refill()
        if not self._queue and self._tokens >= tokens:
            self._tokens -= tokens
            self.granted += tokens
            return 0.0
        ahead = sum(w.tokens for w in self._queue)
        return max(0.0, (ahead + tokens - self._tokens) / self.rate)

    async def acquire(self, tokens: float = 1, priority: Priority = Priority.BATCH,
                      deadline: float | None = None) -> float:
        """Wait for and take ``tokens``; returns the seconds waited.

        ``deadline`` (on this bucket's clock) bounds the wait: if the grant cannot come
        before it, ``ProviderError(kind="deadline")`` is raised and nothing is taken.
        Cancelling a waiter gives its place up.
        """
        self._check(tokens)
        now = self._refill()
        if not self._queue and self._tokens >= tokens:
            self._tokens -= tokens
            self.granted += tokens
            return 0.0
        waiter = _Waiter(int(priority), next(self._seq), tokens, now,
                         asyncio.get_running_loop().create_future())
        ahead = sum(w.tokens for w in self._queue if w < waiter)
        eta = now + max(0.0, ahead + tokens - self._tokens) / self.rate
        if deadline is not None and eta > deadline:
            raise ProviderError(f"rate limit: a slot in {eta - now:.2f} s is past the deadline",
                                kind="deadline")
        self._queue.append(waiter)
        self._queue.sort()
        self._schedule()
        try:
            if deadline is None:
                return await waiter.future
            try:
                return await asyncio.wait_for(asyncio.shield(waiter.future),
                                              max(0.0, deadline - self._clock()))
            except TimeoutError:
                if waiter.future.done() and not waiter.future.cancelled():
                    return waiter.future.result()  # granted at the last moment: keep it
                raise ProviderError("rate limit: deadline passed while queued",
                                    kind="deadline") from None
        finally:
            if not waiter.future.done():
                waiter.future.cancel()
            if waiter in self._queue:
                self._queue.remove(waiter)
                self._schedule()

    def _schedule(self) -> None:
        """Grant whoever can be granted now; set a timer for the head of the queue."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        now = self._refill()
        while self._queue and self._tokens >= self._queue[0].tokens:
            waiter = self._queue.pop(0)
            if waiter.future.done():
                continue
            self._tokens -= waiter.tokens
            self.granted += waiter.tokens
            waiter.future.set_result(now - waiter.since)
        if self._queue:
            head = self._queue[0]
            wait = (head.tokens - self._tokens) / self.rate
            loop = head.future.get_loop()
            self._timer = loop.call_later(max(0.001, wait), self._schedule)
