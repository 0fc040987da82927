"""The pooled provider client against a real fault-injecting server: retries, deadlines, pooling."""

from __future__ import annotations

import asyncio
import logging
import random
import time

import pytest

from tests.support.faults import FaultServer
from voicebot.providers.errors import ProviderError
from voicebot.providers.http import (
    ProviderClient,
    ProviderSettings,
    close_all,
    iter_bytes,
    json_body,
)
from voicebot.providers.limits import Priority
from voicebot.providers.retry import RetryPolicy, retry_after
from voicebot.server.child import free_port

FAST = RetryPolicy(max_attempts=4, base_s=0.02, cap_s=0.1)
_n = 0


def client(base_url: str, **kw: object) -> ProviderClient:
    """A fresh shared client (a unique name keeps tests from sharing counters)."""
    global _n
    _n += 1
    settings = {
        "name": f"http{_n}",
        "base_url": base_url,
        "read_timeout_s": 2.0,
        "requests_per_minute": 60000.0,
        "retry": FAST,
        **kw,
    }
    return ProviderClient.shared(ProviderSettings(**settings))  # type: ignore[arg-type]


def transcriptions(fault: FaultServer) -> list[float]:
    return [r.time for r in fault.received("/transcriptions")]


async def post(c: ProviderClient, **kw: object):
    return await c.request(
        "POST",
        "/audio/transcriptions",
        data={"model": "whisper-1"},
        files={"file": ("a.wav", b"RIFF....", "audio/wav")},
        **kw,
    )


# --- policy -------------------------------------------------------------------------


def test_retry_after_parsing():
    assert retry_after({"retry-after-ms": "250"}) == 0.25
    assert retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25  # ms first
    assert retry_after({"retry-after": "3"}) == 3.0
    assert retry_after({"retry-after": "1.5"}) == 1.5
    assert retry_after(
        {"retry-after": "Wed, 21 Oct 2015 07:28:10 GMT"}, now=1445412480.0
    ) == pytest.approx(10.0)
    assert (
        retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:10 GMT"}, now=1445412500.0) == 0.0
    )  # in the past: at once
    assert retry_after({"retry-after": "-4"}) == 0.0
    for junk in ("soon", "inf", "nan", ""):
        assert retry_after({"retry-after": junk}) is None
    assert retry_after({"retry-after-ms": "x", "retry-after": "2"}) == 2.0
    assert retry_after({}) is None


def test_full_jitter_stays_under_the_cap():
    policy = RetryPolicy(base_s=0.5, cap_s=2.0)
    rng = random.Random(7)
    first = [policy.delay(0, rng) for _ in range(200)]
    assert max(first) <= 0.5 and min(first) >= 0.0  # uniform(0, base) after attempt 0
    late = [policy.delay(6, rng) for _ in range(200)]
    assert max(late) <= 2.0 and max(late) > 1.5  # capped, but still spread up to the cap
    assert len({round(d, 3) for d in late}) > 100  # jittered, not a fixed ladder


def test_retry_statuses():
    policy = RetryPolicy()
    for status in (408, 409, 429, 500, 502, 503, 504, 599):
        assert policy.should_retry(status)
    for status in (400, 401, 403, 404, 413, 422):
        assert not policy.should_retry(status)
    assert RetryPolicy(retry_statuses=frozenset({425})).should_retry(425)
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)


def test_ws_url():
    def url(base: str) -> str:
        return ProviderClient(ProviderSettings("p", base)).ws_url("/tts/stream")

    assert url("http://127.0.0.1:8000/v1/") == "ws://127.0.0.1:8000/v1/tts/stream"
    assert url("https://api.example.com/v1") == "wss://api.example.com/v1/tts/stream"


# --- retries ------------------------------------------------------------------------


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
    assert c.retries == 2 and c.attempts == 4 and c.failures == 0


async def test_503_burst_then_success(fault):
    fault.script("503", "503", "500")
    c = client(fault.base_url)
    await post(c)
    assert len(transcriptions(fault)) == 4 and c.attempts == 4 and c.retries == 3


async def test_gives_up_after_max_attempts(fault):
    fault.default = "503"
    c = client(fault.base_url)
    with pytest.raises(ProviderError) as info:
        await post(c)
    assert info.value.status == 503 and info.value.kind == "http" and info.value.retryable
    assert "injected 503" in str(info.value) and c.settings.name in str(info.value)
    assert len(transcriptions(fault)) == FAST.max_attempts and c.failures == 1


async def test_rate_limited_kind(fault):
    fault.default, fault.retry_after_s = "429", 0.01
    with pytest.raises(ProviderError) as info:
        await post(client(fault.base_url))
    assert info.value.kind == "rate_limited" and info.value.status == 429
    assert info.value.retry_after == pytest.approx(0.01)


async def test_client_errors_are_not_retried(fault):
    fault.script("400")
    c = client(fault.base_url)
    with pytest.raises(ProviderError) as info:
        await post(c)
    assert info.value.status == 400 and not info.value.retryable
    assert len(transcriptions(fault)) == 1 and c.retries == 0


async def test_connect_errors_are_retried_then_raised():
    c = client(f"http://127.0.0.1:{free_port()}/v1")
    with pytest.raises(ProviderError) as info:
        await post(c)
    assert info.value.kind == "connect" and info.value.retryable
    assert c.attempts == FAST.max_attempts and c.failures == 1


async def test_read_timeout_then_success(fault):
    fault.hang_s = 3.0
    fault.script("timeout")
    c = client(fault.base_url, read_timeout_s=0.3)
    start = time.perf_counter()
    await post(c)
    assert 0.3 <= time.perf_counter() - start < 2.0 and c.attempts == 2


async def test_read_timeouts_all_the_way_are_a_timeout_error(fault):
    fault.default, fault.hang_s = "timeout", 3.0
    c = client(fault.base_url, read_timeout_s=0.2, retry=RetryPolicy(2, 0.01, 0.01))
    with pytest.raises(ProviderError) as info:
        await post(c)
    assert info.value.kind == "timeout" and c.attempts == 2


# --- deadlines ----------------------------------------------------------------------


async def test_deadline_bounds_a_hung_request(fault):
    fault.default, fault.hang_s = "timeout", 5.0
    c = client(fault.base_url, read_timeout_s=10.0)
    start = time.perf_counter()
    with pytest.raises(ProviderError) as info:
        await post(c, deadline=time.monotonic() + 0.5)
    elapsed = time.perf_counter() - start
    assert info.value.kind in ("deadline", "timeout") and 0.45 <= elapsed < 0.9


async def test_retry_after_past_the_deadline_is_not_slept(fault):
    fault.default, fault.retry_after_s = "429", 5.0
    c = client(fault.base_url)
    start = time.perf_counter()
    with pytest.raises(ProviderError) as info:
        await post(c, deadline=time.monotonic() + 1.0)
    assert info.value.kind == "deadline" and time.perf_counter() - start < 0.5
    assert isinstance(info.value.__cause__, ProviderError)  # the 429 that led here
    assert len(transcriptions(fault)) == 1 and c.retries == 0 and c.failures == 1


async def test_no_attempt_is_started_that_the_rate_limit_would_delay_past_the_deadline(fault):
    c = client(fault.base_url, requests_per_minute=60.0, burst=1)  # one token a second
    await post(c)  # takes the only token
    start = time.perf_counter()
    with pytest.raises(ProviderError) as info:
        await post(c, deadline=time.monotonic() + 0.3)
    assert info.value.kind == "deadline" and info.value.provider == c.settings.name
    assert time.perf_counter() - start < 0.1  # refused at once, not at the deadline
    assert len(transcriptions(fault)) == 1  # never sent
    assert c.limiter.granted == 1  # and no token taken for it


async def test_waiting_for_a_concurrency_slot_stops_at_the_deadline(fault):
    fault.chunks, fault.chunk_gap_s = 4, 0.25
    c = client(fault.base_url, max_concurrency=1)
    async with c.stream("POST", "/audio/speech", json={"input": "x"}) as response:
        start = time.perf_counter()
        with pytest.raises(ProviderError) as info:
            await post(c, deadline=time.monotonic() + 0.3)  # the one slot is streaming
        assert info.value.kind == "deadline" and 0.25 <= time.perf_counter() - start < 0.6
        assert sum([len(chunk) async for chunk in iter_bytes(response)]) > 0
    assert transcriptions(fault) == []


# --- bodies and streams -------------------------------------------------------------


async def test_garbage_json_is_a_protocol_error_not_a_retry(fault):
    fault.script("garbage")
    c = client(fault.base_url)
    response = await post(c)  # a 200: the transport cannot know the body is garbage
    with pytest.raises(ProviderError) as info:
        json_body(response)
    assert info.value.kind == "protocol" and info.value.status == 200
    assert len(transcriptions(fault)) == 1


async def test_streamed_speech_arrives_in_chunks(fault):
    fault.chunks, fault.chunk_ms, fault.chunk_gap_s = 4, 50, 0.05
    c = client(fault.base_url)
    sizes: list[int] = []
    async with c.stream(
        "POST",
        "/audio/speech",
        json={"input": "x", "response_format": "pcm"},
        priority=Priority.BATCH,
    ) as response:
        assert response.status_code == 200
        async for chunk in iter_bytes(response):
            sizes.append(len(chunk))
    assert sum(sizes) == 4 * 24000 * 50 // 1000 * 2 and len(sizes) >= 2
    assert fault.received("/speech")[0].priority == "batch"


async def test_stream_retries_until_the_headers_arrive(fault):
    fault.script("503", "429")
    fault.retry_after_s = 0.05
    c = client(fault.base_url)
    async with c.stream("POST", "/audio/speech", json={"input": "x"}) as response:
        body = b"".join([chunk async for chunk in iter_bytes(response)])
    assert len(body) == fault.chunks * 24000 * fault.chunk_ms // 1000 * 2
    assert len(fault.received("/speech")) == 3


async def test_truncated_stream_is_a_protocol_error_never_resent(fault):
    fault.script("truncate")
    fault.chunks = 6
    c = client(fault.base_url)
    received = 0
    with pytest.raises(ProviderError) as info:
        async with c.stream("POST", "/audio/speech", json={"input": "x"}) as response:
            async for chunk in iter_bytes(response, provider="p"):
                received += len(chunk)
    assert info.value.kind == "protocol" and info.value.provider == "p"
    assert 0 < received < 6 * 24000 * fault.chunk_ms // 1000 * 2
    assert len(fault.received("/speech")) == 1  # not re-sent


async def test_stalled_stream_is_a_timeout_error(fault):
    fault.chunks, fault.chunk_gap_s = 3, 1.0
    c = client(fault.base_url, read_timeout_s=0.3)
    with pytest.raises(ProviderError) as info:
        async with c.stream("POST", "/audio/speech", json={"input": "x"}) as response:
            async for _ in iter_bytes(response):
                pass
    assert info.value.kind == "timeout" and info.value.provider == "127.0.0.1"


# --- slots, pooling, keys -----------------------------------------------------------


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
    assert len(fault.requests) == 5
    assert len({r.client_port for r in fault.requests}) == 1  # one TCP connection
    assert ProviderClient.shared(c.settings) is c
    await close_all()
    await post(c)  # a closed pool is reopened on the next request
    assert len({r.client_port for r in fault.requests}) == 2


def test_each_event_loop_gets_its_own_pool(fault):
    c = client(fault.base_url)
    for _ in range(3):  # the pool of a finished loop must not be reused
        asyncio.run(post(c))
    assert len(fault.requests) == 3 and c.failures == 0


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
    assert [r.priority for r in fault.requests] == ["live", "live", "batch"]


async def test_api_key_is_sent_but_never_logged(fault, monkeypatch, caplog):
    monkeypatch.setenv("FAULT_KEY", "sk-very-secret-42")
    fault.default = "503"
    c = client(fault.base_url, api_key_env="FAULT_KEY")
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ProviderError) as info:
        await post(c)
    assert fault.requests[0].headers["authorization"] == "Bearer sk-very-secret-42"
    assert "retry" in caplog.text  # the retries were logged ...
    assert "sk-very-secret-42" not in str(info.value) + repr(info.value) + caplog.text


async def test_a_missing_key_sends_no_header(fault, monkeypatch):
    monkeypatch.delenv("FAULT_KEY_UNSET", raising=False)
    c = client(fault.base_url, api_key_env="FAULT_KEY_UNSET")
    await post(c)
    assert "authorization" not in fault.requests[0].headers
    monkeypatch.setenv("FAULT_KEY_UNSET", "sk-late")  # read per request: no restart needed
    await post(c)
    assert fault.requests[1].headers["authorization"] == "Bearer sk-late"


async def test_a_retry_after_beyond_the_cap_is_not_slept(fault):
    fault.retry_after_s = 3600.0
    fault.script("429")
    c = client(fault.base_url)
    start = time.perf_counter()
    with pytest.raises(ProviderError) as info:
        await post(c)
    assert time.perf_counter() - start < 1.0
    assert info.value.status == 429 and info.value.retry_after == 3600.0
