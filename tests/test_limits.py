"""The reserving token bucket: rate held, order kept, LIVE first, deadlines and cancellation."""

from __future__ import annotations

import asyncio
import time

import pytest

from voicebot.providers.errors import ProviderError
from voicebot.providers.limits import Priority, TokenBucket


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_try_acquire_takes_or_says_how_long():
    clock = FakeClock()
    bucket = TokenBucket(2.0, 2, clock=clock)
    assert bucket.try_acquire() == 0.0 and bucket.try_acquire() == 0.0
    assert bucket.try_acquire() == pytest.approx(0.5)  # nothing taken
    assert bucket.try_acquire() == pytest.approx(0.5)
    clock.now += 0.5
    assert bucket.try_acquire() == 0.0
    with pytest.raises(ValueError):
        bucket.try_acquire(3)


def test_per_minute():
    bucket = TokenBucket.per_minute(60)
    assert bucket.rate == pytest.approx(1.0) and bucket.capacity == 1.0
    assert TokenBucket.per_minute(600, burst=5).capacity == 5


async def test_a_burst_of_waiters_does_not_overshoot_the_rate():
    """20 waiters at 50/s with capacity 2: the last is granted after ≥ (20-2)/50 s."""
    bucket = TokenBucket(50.0, 2)
    start = time.monotonic()
    grants: list[float] = []

    async def one() -> None:
        await bucket.acquire()
        grants.append(time.monotonic() - start)

    await asyncio.gather(*(one() for _ in range(20)))
    assert grants[-1] >= (20 - 2) / 50 - 0.01
    for i, t in enumerate(grants):  # at no moment more than capacity + rate * t
        assert i + 1 <= 2 + 50 * t + 1e-6


async def test_fifo_within_a_priority_and_live_first():
    bucket = TokenBucket(20.0, 1)
    await bucket.acquire()
    order: list[str] = []

    async def one(tag: str, priority: Priority) -> None:
        await bucket.acquire(priority=priority)
        order.append(tag)

    tasks = [asyncio.ensure_future(one("b1", Priority.BATCH))]
    await asyncio.sleep(0)
    tasks.append(asyncio.ensure_future(one("b2", Priority.BATCH)))
    await asyncio.sleep(0)
    tasks.append(asyncio.ensure_future(one("l1", Priority.LIVE)))
    await asyncio.sleep(0)
    tasks.append(asyncio.ensure_future(one("l2", Priority.LIVE)))
    await asyncio.gather(*tasks)
    assert order == ["l1", "l2", "b1", "b2"]


async def test_deadline_refuses_without_taking_tokens():
    bucket = TokenBucket(1.0, 1)
    await bucket.acquire()
    with pytest.raises(ProviderError) as info:
        await bucket.acquire(deadline=time.monotonic() + 0.2)  # next token in 1 s
    assert info.value.kind == "deadline" and bucket.waiting == 0
    assert bucket.granted == 1


async def test_cancelled_waiter_gives_its_place_back():
    bucket = TokenBucket(10.0, 1)
    await bucket.acquire()
    first = asyncio.ensure_future(bucket.acquire())
    await asyncio.sleep(0)
    second = asyncio.ensure_future(bucket.acquire())
    await asyncio.sleep(0)
    first.cancel()
    start = time.monotonic()
    await second
    assert time.monotonic() - start < 0.15  # the first token went to the second waiter
    assert bucket.waiting == 0 and bucket.granted == 2


async def test_waiting_time_is_returned():
    bucket = TokenBucket(10.0, 1)
    assert await bucket.acquire() == 0.0
    waited = await bucket.acquire()
    assert 0.05 <= waited <= 0.2
