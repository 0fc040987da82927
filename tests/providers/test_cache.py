"""Provider caches: memory LRU/TTL/size bounds, and a real Redis shared between clients."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.support.redis_server import RedisServer
from voicebot.providers.cache import (
    MemoryCache,
    RedisCache,
    TieredCache,
    make_cache,
    speech_key,
    transcript_key,
)
from voicebot.server.child import free_port


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_lru_by_entries():
    cache = MemoryCache(max_entries=2, ttl_s=60)
    await cache.set("a", b"1")
    await cache.set("b", b"2")
    assert await cache.get("a") == b"1"  # a is now the most recent
    await cache.set("c", b"3")
    assert await cache.get("b") is None and await cache.get("a") == b"1"
    assert len(cache) == 2


async def test_bounded_by_bytes():
    cache = MemoryCache(max_entries=100, max_bytes=10, ttl_s=60)
    await cache.set("a", b"12345")
    await cache.set("b", b"12345")
    await cache.set("c", b"123")
    assert cache.bytes <= 10 and await cache.get("a") is None
    await cache.set("huge", b"x" * 11)  # never fits: not stored, nothing evicted for it
    assert await cache.get("huge") is None and await cache.get("c") == b"123"


async def test_replacing_an_entry_keeps_the_byte_count():
    cache = MemoryCache(max_entries=10, max_bytes=10, ttl_s=60)
    await cache.set("a", b"12345")
    await cache.set("a", b"123")
    assert cache.bytes == 3 and len(cache) == 1
    await cache.set("b", b"1234567")  # 3 + 7 fits exactly: nothing evicted
    assert await cache.get("a") == b"123" and cache.bytes == 10


async def test_ttl_expires():
    clock = FakeClock()
    cache = MemoryCache(ttl_s=10, clock=clock)
    await cache.set("a", b"1")
    await cache.set("b", b"2", ttl_s=100)
    await cache.set("c", b"3", ttl_s=0)  # zero means do not keep, not "the default"
    clock.now = 9.9
    assert await cache.get("a") == b"1" and await cache.get("c") is None
    clock.now = 10
    assert await cache.get("a") is None and await cache.get("b") == b"2"
    assert cache.bytes == 1 and len(cache) == 1


async def test_hit_rate_is_hits_per_lookup():
    cache = MemoryCache()
    await cache.set("a", b"1")
    for key in ("a", "a", "a", "b"):
        await cache.get(key)
    assert cache.stats.lookups == 4 and cache.stats.hits == 3
    assert cache.stats.hit_rate == 0.75  # not hits / misses (3.0)
    assert MemoryCache().stats.hit_rate == 0.0


def test_keys_cover_the_parameters():
    audio = b"\x00\x01" * 100
    assert transcript_key(audio, model="whisper-1", language="en") == transcript_key(
        audio, language="en", model="whisper-1"
    )
    assert transcript_key(audio, model="whisper-1", language="en") != transcript_key(
        audio, model="whisper-1", language="de"
    )
    assert transcript_key(audio) != transcript_key(audio + b"\x00")
    assert speech_key("Hello.", "alloy", speed=1.0) != speech_key("Hello.", "nova", speed=1.0)
    assert speech_key("Hello.", "alloy", speed=1.0) != speech_key("Hello.", "alloy", speed=1.5)
    assert speech_key("ab", "c") != speech_key("a", "bc")  # part boundaries count
    assert transcript_key(audio).startswith("asr:") and speech_key("a", "b").startswith("tts:")


async def test_redis_is_shared_between_clients(redis_url):
    one = RedisCache(redis_url, prefix="t1:", ttl_s=120)
    two = RedisCache(redis_url, prefix="t1:", ttl_s=120)
    await one.set("k", b"\x00audio\xff")
    assert await two.get("k") == b"\x00audio\xff"
    assert 100 <= await two.ttl("k") <= 120
    await one.set("short", b"x", ttl_s=0.3)  # milliseconds, not rounded up to a second
    assert 0 < await one.ttl("short") <= 0.3
    await asyncio.sleep(0.4)
    assert await one.get("short") is None  # Redis expired it
    assert await two.get("missing") is None
    assert two.stats.lookups == 2 and two.stats.hits == 1
    await one.aclose()
    await two.aclose()


async def test_tiered_cache_fills_memory_from_redis(redis_url):
    writer = TieredCache(MemoryCache(), RedisCache(redis_url, prefix="t2:"))
    await writer.set("k", b"value")
    reader = TieredCache(MemoryCache(), RedisCache(redis_url, prefix="t2:"))
    assert await reader.get("k") == b"value"
    assert reader.memory.peek("k") == b"value"  # the next lookup stays in process
    assert reader.stats.hits == 1 and reader.stats.lookups == 1
    await writer.redis.aclose()
    await reader.redis.aclose()


async def test_redis_down_is_a_miss_not_an_error(caplog):
    cache = RedisCache(f"redis://:hunter2@127.0.0.1:{free_port()}/0", retry_s=0.2)
    await cache.set("k", b"v")
    assert await cache.get("k") is None and cache.errors == 1
    start = time.perf_counter()
    for _ in range(20):  # while it rests, a lookup does not even try to connect
        assert await cache.get("k") is None
    assert cache.errors == 1 and time.perf_counter() - start < 0.1
    await asyncio.sleep(0.25)
    assert await cache.get("k") is None and cache.errors == 2  # tried again
    assert cache.stats.lookups == 22 and cache.stats.hits == 0
    warnings = [r.getMessage() for r in caplog.records if "unavailable" in r.getMessage()]
    assert len(warnings) == 1  # logged once
    assert "hunter2" not in caplog.text + repr(cache)


async def test_tiered_cache_with_redis_down_still_serves_memory():
    tiered = TieredCache(MemoryCache(), RedisCache(f"redis://127.0.0.1:{free_port()}/0"))
    await tiered.set("k", b"v")
    assert await tiered.get("k") == b"v" and await tiered.get("other") is None
    assert tiered.stats.hit_rate == 0.5


async def test_redis_that_comes_back_is_used_again(caplog):
    port = free_port()
    cache = RedisCache(f"redis://127.0.0.1:{port}/0", prefix="t3:", retry_s=0.2)
    assert await cache.get("k") is None and cache.errors == 1
    with RedisServer(port):
        await asyncio.sleep(0.25)
        await cache.set("k", b"v")
        assert await cache.get("k") == b"v" and cache.errors == 1
        assert "is back" in caplog.text
        await cache.aclose()


def test_make_cache_is_shared_and_typed():
    assert make_cache("none") is None
    assert make_cache("memory", ttl_s=5) is make_cache("memory", ttl_s=5)
    assert make_cache("memory", "", 5) is make_cache("memory", ttl_s=5.0)
    assert make_cache("memory", ttl_s=6) is not make_cache("memory", ttl_s=5)
    cache = make_cache("memory", ttl_s=7, max_entries=3, max_bytes=100)
    assert isinstance(cache, MemoryCache) and cache.max_entries == 3 and cache.ttl_s == 7
    assert isinstance(make_cache("redis", redis_url="redis://127.0.0.1:1/0"), TieredCache)
    with pytest.raises(ValueError):
        make_cache("memcached")
