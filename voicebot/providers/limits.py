"""A token bucket that reserves: waiters are served in order and the rate always holds.

The seed guide's limiter returned "wait this long" without taking the tokens, so
every waiter woke together and the burst overshot the provider's limit. Here a
waiter joins a queue and is granted only when the bucket really holds its tokens,
one waiter at a time from the head: over any window T at most
``capacity + rate * T`` tokens are granted. Live-call requests (``Priority.LIVE``)
are served before batch work that has not been granted yet; within a priority,
first come first served. A waiter whose deadline the queue ahead makes
unreachable is refused at once, and a cancelled waiter gives back its place (or,
if it was granted in the same instant, its tokens).
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum

from voicebot.providers.errors import ProviderError

_EPS = 1e-9  # float dust: 0.1 s at 10/s must refill a whole token


class Priority(IntEnum):
    LIVE = 0  # a caller is waiting
    BATCH = 1  # files, prefetching, benchmarks


@dataclass(eq=False)
class _Waiter:
    priority: int
    seq: int
    tokens: float
    since: float
    deadline: float | None
    future: asyncio.Future[float] = field(repr=False)

    @property
    def order(self) -> tuple[int, int]:
        return (self.priority, self.seq)


class TokenBucket:
    """``rate_per_s`` tokens a second, at most ``capacity`` saved up.

    ``clock`` is the time base of refills and deadlines (monotonic seconds). With a
    fake clock, advance it and call ``wake()`` to grant what has become due.
    """

    def __init__(
        self, rate_per_s: float, capacity: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if not rate_per_s > 0 or not capacity > 0:
            raise ValueError("rate and capacity must be positive")
        self.rate = float(rate_per_s)
        self.capacity = float(capacity)
        self._clock = clock
        self._tokens = self.capacity
        self._stamp = clock()
        self._queue: list[_Waiter] = []  # sorted by (priority, arrival)
        self._seq = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self.granted = 0.0  # tokens handed out so far (tests, metrics)

    @classmethod
    def per_minute(
        cls, n: float, burst: float | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> TokenBucket:
        """``n`` requests per minute, at most ``burst`` at once (default: one second's
        worth, at least 1)."""
        rate = n / 60.0
        return cls(rate, burst if burst is not None else max(1.0, rate), clock=clock)

    @property
    def waiting(self) -> int:
        """Waiters queued and not yet granted."""
        return len(self._queue)

    @property
    def tokens(self) -> float:
        """Tokens in the bucket now (waiters may already be queued for them)."""
        self._refill()
        return self._tokens

    def _refill(self) -> float:
        now = self._clock()
        if now > self._stamp:
            self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
        return now

    def _check(self, tokens: float) -> None:
        if not 0 < tokens <= self.capacity:
            raise ValueError(f"{tokens} tokens can never come from a bucket of {self.capacity}")

    def try_acquire(self, tokens: float = 1) -> float:
        """Take ``tokens`` if they are there now and nobody waits: 0.0. Otherwise take
        nothing and return the seconds until they would be (a server's retry-after)."""
        self._check(tokens)
        self._refill()
        if not self._queue and self._tokens + _EPS >= tokens:
            self._tokens = max(0.0, self._tokens - tokens)
            self.granted += tokens
            return 0.0
        ahead = sum(w.tokens for w in self._queue)
        return max(0.0, (ahead + tokens - self._tokens) / self.rate)

    async def acquire(
        self, tokens: float = 1, priority: Priority = Priority.BATCH, deadline: float | None = None
    ) -> float:
        """Wait for and take ``tokens``; returns the seconds waited.

        ``deadline`` (on this bucket's clock) bounds the wait: when the grant cannot
        come before it — now, or later because ``LIVE`` waiters went ahead — this
        raises ``ProviderError(kind="deadline")`` and nothing is taken.
        """
        self._check(tokens)
        now = self._refill()
        if deadline is not None and deadline < now:
            raise ProviderError("rate limit: the deadline has passed", kind="deadline")
        if not self._queue and self._tokens + _EPS >= tokens:
            self._tokens = max(0.0, self._tokens - tokens)
            self.granted += tokens
            return 0.0
        waiter = _Waiter(
            int(priority),
            next(self._seq),
            tokens,
            now,
            deadline,
            asyncio.get_running_loop().create_future(),
        )
        bisect.insort(self._queue, waiter, key=lambda w: w.order)
        self.wake()
        try:
            return await waiter.future
        except asyncio.CancelledError:
            future = waiter.future
            if future.done() and not future.cancelled() and future.exception() is None:
                # granted in the same instant the caller was cancelled: nobody will use them
                self._refund(tokens)
            raise
        finally:
            if self._remove(waiter):
                self.wake()

    def wake(self) -> None:
        """Grant whoever can be granted now, refuse whoever cannot make their deadline,
        and set a timer for the next grant."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        now = self._refill()
        self._queue = [
            w for w in self._queue if not w.future.done() and not w.future.get_loop().is_closed()
        ]
        while self._queue and self._tokens + _EPS >= self._queue[0].tokens:
            waiter = self._queue.pop(0)
            self._tokens = max(0.0, self._tokens - waiter.tokens)
            self.granted += waiter.tokens
            waiter.future.set_result(now - waiter.since)
        self._refuse_late(now)
        if self._queue:
            head = self._queue[0]
            wait = (head.tokens - self._tokens) / self.rate
            self._timer = head.future.get_loop().call_later(max(0.001, wait), self.wake)

    def _refuse_late(self, now: float) -> None:
        """Each waiter's grant time, given the queue ahead of it; refuse the late ones."""
        ahead = 0.0
        kept: list[_Waiter] = []
        for waiter in self._queue:
            eta = now + max(0.0, ahead + waiter.tokens - self._tokens) / self.rate
            if waiter.deadline is not None and eta > waiter.deadline + _EPS:
                waiter.future.set_exception(
                    ProviderError(
                        f"rate limit: a grant in {eta - now:.2f} s is past the deadline "
                        f"({len(kept)} waiting ahead)",
                        kind="deadline",
                    )
                )
                continue
            ahead += waiter.tokens
            kept.append(waiter)
        self._queue = kept

    def _remove(self, waiter: _Waiter) -> bool:
        for i, queued in enumerate(self._queue):
            if queued is waiter:
                del self._queue[i]
                return True
        return False

    def _refund(self, tokens: float) -> None:
        self._refill()
        self._tokens = min(self.capacity, self._tokens + tokens)
        self.granted -= tokens
        self.wake()
