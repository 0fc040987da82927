"""The pooled provider client against a real fault-injecting server: retries, deadlines, pooling."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Iterator

import pytest
from faults import FaultServer

from voicebot.providers.errors import ProviderError
from voicebot.providers.http import ProviderClient, ProviderSettings, iter_bytes, json_body
from voicebot.providers.limits import Priority
from voicebot.providers.retry import RetryPolicy, retry_after

FAST = RetryPolicy(max_attempts=4, base_s=0.02, cap_s=0.1)
_n = 0


@pytest.fixture
def fault() -> Iterator[FaultServer]:
    with FaultServer() as server:
        yield server


def client(base_url: str, **kw: object) -> ProviderClient:
    global _n
    _n += 1
    settings = {"name": f"http{_n}", "base_url": base_url, "read_timeout_s": 2.0,
                "requests_per_minute": 60000.0, "retry": FAST, **kw}
    return ProviderClient.shared(ProviderSettings(**settings))  # type: ignore[arg-type]


def transcriptions(fault: FaultServer) -> list[float]:
    return [r.time for r in fault.requests if r.path.endswith("/transcriptions")]


async def post(c: ProviderClient, **kw: object):
    return await c.request("POST", "/audio/transcriptions", data={"model": "whisper-1"},
                           files={"file": ("a.wav", b"RIFF....", "audio/wav")}, **kw)


def test_retry_after_parsing():
    assert retry_after({"retry-after-ms": "250"}) == 0.25
    assert retry_after({"retry-after": "3"}) == 3.0
    assert retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:10 GMT"},
                       now=1445412480.0) == pytest.approx(10.0)
    assert retry_after({"retry-after": "soon"}) is None and retry_after({}) is None


def test_full_jitter_stays_under_the_cap():
    import random

    policy = RetryPolicy(base_s=0.5, cap_s=2.0)
    rng = random.Random(7)
    delays = [policy.delay(attempt, rng) for attempt in range(8) for _ in range(50)]
    assert max(delays) <= 2.0 and min(delays) >= 0.0
    assert len({round(d, 3) for d in delays}) > 100  # jittered, not a fixed ladder
    assert policy.should_retry(429) and policy.should_retry(503) and policy.should_retry(408)
    assert not policy.should_retry(400) and not policy.should_retry(401)


async def test_429_retry_after_is_honoured(fault):
    fault.retry_after_s = 0.4
    fault.script("429")
    c = client(fault.base_url)
    response = await post(c)
    assert json_body(response)["text"] == fault.text
    first, second = transcriptions(fault)
    assert second - first >= 0.38  # waited what the server asked, not the 20 ms backoff
    fault.script("429ms")
    await post(c)
    times = transcriptions(fault)
    assert times[-1] - times[-2] >= 0.38
    assert c.retries == 2


async def test_503_burst_then_success(fault):
    fault.script("503", "503", "500")
    c = client(fault.base_url)
    await post(c)
    assert len(transcriptions(fault)) == 4 and c.attempts == 4


async def test_gives_up_after_max_attempts(fault):
    fault.default = "503"
    c = client(fault.base_url)
    with pytest.raises(ProviderError) as info:
        await post(c)
    assert info.value.status == 503 and info.value.kind == "http"
    assert len(transcriptions(fault)) == FAST.max_attempts


async def test_client_errors_are_not_retried(fault):
    fault.script("400")
    with pytest.raises(ProviderError) as info:
        await post(client(fault.base_url))
    assert info.value.status == 400 and not info.value.retryable
    assert len(transcriptions(fault)) == 1


async def test_connect_errors_are_retried_then_raised():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    c = client(f"http://127.0.0.1:{port}/v1")
    with pytest.raises(ProviderError) as info:
        await post(c)
    assert info.value.kind == "connect" and c.attempts == FAST.max_attempts


async def test_read_timeout_then_success(fault):
    fault.hang_s = 3.0
    fault.script("timeout")
    c = client(fault.base_url, read_timeout_s=0.3)
    start = time.perf_counter()
    await post(c)
    assert 0.3 <= time.perf_counter() - start < 2.0 and c.attempts == 2


async def test_deadline_bounds_the_whole_request(fault):
    fault.default, fault.hang_s = "timeout", 5.0
    c = client(fault.base_url, read_timeout_s=10.0)
    start = time.perf_counter()
    with pytest.raises(ProviderError) as info:
        await post(c, deadline=time.monotonic() + 0.5)
    elapsed = time.perf_counter() - start
    assert info.value.kind in ("deadline", "timeout") and elapsed < 1.0
    # a retry-after that would pass the deadline is not slept at all
    fault.default, fault.retry_after_s = "429", 5.0
    start = time.perf_counter()
    with pytest.raises(ProviderError) as info:
        await post(c, deadline=time.monotonic() + 1.0)
    assert info.value.kind == "deadline" and time.perf_counter() - start < 0.5


async def test_garbage_json_is_a_protocol_error(fault):
    fault.script("garbage")
    response = await post(client(fault.base_url))
    with pytest.raises(ProviderError) as info:
        json_body(response)
    assert info.value.kind == "protocol"


async def test_truncated_stream_is_a_protocol_error(fault):
    fault.script("truncate")
    fault.chunks = 6
    c = client(fault.base_url)
    received = 0
    with pytest.raises(ProviderError) as info:
        async with c.stream("POST", "/audio/speech", json={"input": "x"}) as response:
            async for chunk in iter_bytes(response, provider="p"):
                received += len(chunk)
    assert info.value.kind == "protocol" and 0 < received
    assert len([r for r in fault.requests if r.path.endswith("/speech")]) == 1  # not re-sent


async def test_slot_is_released_during_backoff(fault):
    """One slot: while the first request sleeps between attempts, the second one runs."""
    fault.retry_after_s = 0.8
    fault.script("429")
    c = client(fault.base_url, max_concurrency=1)
    first = asyncio.ensure_future(post(c))
    await asyncio.sleep(0.2)  # the first has had its 429 and is sleeping
    start = time.perf_counter()
    await post(c)
    assert time.perf_counter() - start < 0.5
    assert not first.done()
    await first


async def test_one_pooled_connection_is_reused(fault):
    c = client(fault.base_url)
    for _ in range(5):
        await post(c)
    assert len({r.client_port for r in fault.requests}) == 1
    assert ProviderClient.shared(c.settings) is c


async def test_priority_reaches_the_limiter(fault):
    c = client(fault.base_url, requests_per_minute=120.0, burst=1)  # one every 0.5 s
    await post(c)  # takes the burst token
    order: list[str] = []

    async def tagged(tag: str, priority: Priority) -> None:
        await post(c, priority=priority)
        order.append(tag)

    batch = asyncio.ensure_future(tagged("batch", Priority.BATCH))
    await asyncio.sleep(0.05)
    live = asyncio.ensure_future(tagged("live", Priority.LIVE))
    await asyncio.gather(batch, live)
    assert order == ["live", "batch"]


async def test_api_key_is_sent_but_never_logged(fault, monkeypatch, caplog):
    monkeypatch.setenv("FAULT_KEY", "sk-very-secret-42")
    fault.default = "503"
    c = client(fault.base_url, api_key_env="FAULT_KEY")
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ProviderError) as info:
        await post(c)
    assert fault.requests[0].headers["authorization"] == "Bearer sk-very-secret-42"
    assert "sk-very-secret-42" not in str(info.value) + repr(info.value) + caplog.text
