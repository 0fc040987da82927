"""The reserving token bucket: rate held, order kept, LIVE first, deadlines and cancellation.

Most tests drive the bucket with a fake clock (advance it, ``wake()``), so grant times
are exact; one short test runs in real time against the bucket's own timers.
"""

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


async def settle() -> None:
    """Let woken tasks run (a grant resolves a future; its task resumes later)."""
    for _ in range(5):
        await asyncio.sleep(0)


async def advance(bucket: TokenBucket, clock: FakeClock, seconds: float) -> None:
    clock.now += seconds
    bucket.wake()
    await settle()


def empty_bucket(rate: float = 1.0, capacity: float = 1) -> tuple[TokenBucket, FakeClock]:
    clock = FakeClock()
    bucket = TokenBucket(rate, capacity, clock=clock)
    assert bucket.try_acquire(capacity) == 0.0
    return bucket, clock


def test_try_acquire_takes_or_says_how_long():
    clock = FakeClock()
    bucket = TokenBucket(2.0, 2, clock=clock)
    assert bucket.try_acquire() == 0.0 and bucket.try_acquire() == 0.0
    assert bucket.try_acquire() == pytest.approx(0.5)  # nothing taken ...
    assert bucket.try_acquire() == pytest.approx(0.5)  # ... so the answer is the same
    clock.now += 0.5
    assert bucket.try_acquire() == 0.0
    assert bucket.granted == 3
    with pytest.raises(ValueError):
        bucket.try_acquire(3)  # can never fit


async def test_try_acquire_does_not_jump_the_queue():
    """Tokens that have come back belong to the waiter, not to a try_acquire."""
    bucket, clock = empty_bucket(rate=1.0, capacity=2)
    waiter = asyncio.ensure_future(bucket.acquire(2))
    await settle()
    clock.now += 1.0  # one token back; the waiter needs two
    assert bucket.try_acquire() == pytest.approx(2.0)  # after the waiter's two, then one
    assert bucket.granted == 2 and bucket.waiting == 1
    await advance(bucket, clock, 1.0)
    assert await waiter == pytest.approx(2.0)
    assert bucket.granted == 4


def test_per_minute():
    bucket = TokenBucket.per_minute(60)
    assert bucket.rate == pytest.approx(1.0) and bucket.capacity == 1.0
    assert TokenBucket.per_minute(600, burst=5).capacity == 5
    assert TokenBucket.per_minute(600).capacity == pytest.approx(10.0)
    with pytest.raises(ValueError):
        TokenBucket.per_minute(0)


async def test_rate_holds_over_every_window():
    """30 waiters at once, 10/s, capacity 3: no window T ever sees more than 3 + 10·T."""
    clock = FakeClock()
    bucket = TokenBucket(10.0, 3, clock=clock)
    start = clock.now
    grants: list[float] = []

    async def one() -> None:
        await bucket.acquire()
        grants.append(clock.now - start)

    tasks = [asyncio.ensure_future(one()) for _ in range(30)]
    await settle()
    assert len(grants) == 3  # the saved-up burst, and nothing more
    while len(grants) < 30:
        await advance(bucket, clock, 0.01)
    await asyncio.gather(*tasks)
    assert grants[-1] == pytest.approx((30 - 3) / 10, abs=0.011)
    for i in range(len(grants)):
        for j in range(i, len(grants)):
            assert j - i + 1 <= 3 + 10 * (grants[j] - grants[i]) + 1e-6


async def test_a_burst_of_waiters_does_not_overshoot_in_real_time():
    """20 waiters at 50/s with capacity 2, on the bucket's own timers."""
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
    assert grants[-1] < 1.0  # and the timers do not sleep far past the grants


async def test_fifo_within_a_priority_and_live_first():
    bucket, clock = empty_bucket(rate=10.0)
    order: list[str] = []

    async def one(tag: str, priority: Priority) -> None:
        await bucket.acquire(priority=priority)
        order.append(tag)

    tasks = []
    for tag, priority in (
        ("b1", Priority.BATCH),
        ("b2", Priority.BATCH),
        ("l1", Priority.LIVE),
        ("l2", Priority.LIVE),
    ):
        tasks.append(asyncio.ensure_future(one(tag, priority)))
        await settle()
    await advance(bucket, clock, 0.1)
    assert order == ["l1"]
    late = asyncio.ensure_future(one("l3", Priority.LIVE))  # still ahead of b1 and b2
    await settle()
    for _ in range(4):
        await advance(bucket, clock, 0.1)
    await asyncio.gather(*tasks, late)
    assert order == ["l1", "l2", "l3", "b1", "b2"]


async def test_a_grant_is_reserved_for_the_head_of_the_queue():
    """A big waiter at the head is not starved by small ones behind it."""
    bucket, clock = empty_bucket(rate=1.0, capacity=3)
    big = asyncio.ensure_future(bucket.acquire(3))
    await settle()
    small = asyncio.ensure_future(bucket.acquire(1))
    await settle()
    await advance(bucket, clock, 1.0)  # one token: enough for small, but big is first
    assert not big.done() and not small.done()
    await advance(bucket, clock, 2.0)
    assert big.done() and not small.done()
    await advance(bucket, clock, 1.0)
    assert await small == pytest.approx(4.0)


async def test_deadline_refuses_at_once_without_taking_tokens():
    bucket, clock = empty_bucket(rate=1.0)
    with pytest.raises(ProviderError) as info:
        await bucket.acquire(deadline=clock.now + 0.5)  # the next token is 1 s away
    assert info.value.kind == "deadline"
    assert bucket.waiting == 0 and bucket.granted == 1
    with pytest.raises(ProviderError):
        await bucket.acquire(deadline=clock.now - 1)  # already past
    # nothing was reserved: the next waiter gets the very next token
    waiter = asyncio.ensure_future(bucket.acquire(deadline=clock.now + 1.0))
    await settle()
    assert bucket.waiting == 1  # due exactly at its deadline: accepted
    await advance(bucket, clock, 1.0)
    assert await waiter == pytest.approx(1.0)


async def test_live_arrival_refuses_a_batch_waiter_it_pushes_past_its_deadline():
    bucket, clock = empty_bucket(rate=1.0)
    batch = asyncio.ensure_future(bucket.acquire(priority=Priority.BATCH, deadline=clock.now + 1.5))
    await settle()
    assert not batch.done()  # its token is due at +1.0: fine so far
    live = asyncio.ensure_future(bucket.acquire(priority=Priority.LIVE))
    await settle()
    assert batch.done()  # refused now, not when its deadline passes
    with pytest.raises(ProviderError) as info:
        batch.result()
    assert info.value.kind == "deadline"
    await advance(bucket, clock, 1.0)
    assert await live == pytest.approx(1.0)
    assert bucket.granted == 2 and bucket.waiting == 0


async def test_cancelled_waiter_gives_its_place_back():
    bucket, clock = empty_bucket(rate=1.0)
    first = asyncio.ensure_future(bucket.acquire())
    await settle()
    second = asyncio.ensure_future(bucket.acquire())
    await settle()
    first.cancel()
    await settle()
    assert bucket.waiting == 1
    await advance(bucket, clock, 1.0)  # the token the first would have had
    assert await second == pytest.approx(1.0)
    assert bucket.granted == 2


async def test_granted_then_cancelled_gives_the_tokens_back():
    bucket, clock = empty_bucket(rate=1.0)
    first = asyncio.ensure_future(bucket.acquire())
    await settle()
    second = asyncio.ensure_future(bucket.acquire())
    await settle()
    clock.now += 1.0
    bucket.wake()  # grants first ...
    first.cancel()  # ... which is cancelled before it could use the token
    with pytest.raises(asyncio.CancelledError):
        await first
    await settle()
    assert second.done()  # the refunded token went on to the next waiter at once
    assert bucket.granted == 2 and bucket.tokens == pytest.approx(0.0)


async def test_waiting_time_is_returned_in_real_time():
    bucket = TokenBucket(10.0, 1)
    assert await bucket.acquire() == 0.0
    waited = await bucket.acquire()
    assert 0.08 <= waited <= 0.2


def test_bad_arguments():
    with pytest.raises(ValueError):
        TokenBucket(0, 1)
    with pytest.raises(ValueError):
        TokenBucket(1, 0)
    with pytest.raises(ValueError):
        asyncio.run(TokenBucket(1, 2).acquire(3))
