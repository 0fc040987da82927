"""Provider caches: memory LRU/TTL/size bounds, and a real Redis shared between clients."""

from __future__ import annotations

import pytest
from redis_server import redis_url  # noqa: F401 - the fixture

from voicebot.providers.cache import (
    MemoryCache,
    RedisCache,
    TieredCache,
    make_cache,
    speech_key,
    transcript_key,
)


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


async def test_ttl_expires():
    clock = FakeClock()
    cache = MemoryCache(ttl_s=10, clock=clock)
    await cache.set("a", b"1")
    await cache.set("b", b"2", ttl_s=100)
    clock.now = 11
    assert await cache.get("a") is None and await cache.get("b") == b"2"
    assert cache.bytes == 1


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
        audio, language="en", model="whisper-1")
    assert transcript_key(audio, model="whisper-1", language="en") != transcript_key(
        audio, model="whisper-1", language="de")
    assert transcript_key(audio) != transcript_key(audio + b"\x00")
    assert speech_key("Hello.", "alloy", speed=1.0) != speech_key("Hello.", "nova", speed=1.0)
    assert speech_key("Hello.", "alloy", speed=1.0) != speech_key("Hello.", "alloy", speed=1.5)
    assert speech_key("ab", "c") != speech_key("a", "bc")  # part boundaries count
    assert transcript_key(audio).startswith("asr:") and speech_key("a", "b").startswith("tts:")


async def test_redis_is_shared_between_clients(redis_url):  # noqa: F811
    one = RedisCache(redis_url, prefix="t1:", ttl_s=120)
    two = RedisCache(redis_url, prefix="t1:", ttl_s=120)
    await one.set("k", b"\x00audio\xff")
    assert await two.get("k") == b"\x00audio\xff"
    assert 100 <= await two.ttl("k") <= 120
    await one.set("short", b"x", ttl_s=5)
    assert await one.ttl("short") <= 5
    assert await two.get("missing") is None
    assert two.stats.lookups == 2 and two.stats.hits == 1
    await one.aclose()
    await two.aclose()


async def test_tiered_cache_fills_memory_from_redis(redis_url):  # noqa: F811
    writer = TieredCache(MemoryCache(), RedisCache(redis_url, prefix="t2:"))
    await writer.set("k", b"value")
    reader = TieredCache(MemoryCache(), RedisCache(redis_url, prefix="t2:"))
    assert await reader.get("k") == b"value"
    assert reader.memory.peek("k") == b"value"  # the next lookup stays in process
    assert reader.stats.hits == 1 and reader.stats.lookups == 1
    await writer.redis.aclose()
    await reader.redis.aclose()


async def test_redis_down_is_a_miss_not_an_error(caplog):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cache = RedisCache(f"redis://127.0.0.1:{port}/0")
    await cache.set("k", b"v")
    assert await cache.get("k") is None
    assert sum("unavailable" in r.message for r in caplog.records) == 1  # logged once


def test_make_cache_is_shared_and_typed():
    assert make_cache("none") is None
    assert make_cache("memory", ttl_s=5) is make_cache("memory", ttl_s=5)
    assert isinstance(make_cache("redis", redis_url="redis://127.0.0.1:1/0"), TieredCache)
    with pytest.raises(ValueError):
        make_cache("memcached")
