"""Caches for provider results: in-memory LRU with TTL and size bounds, and Redis.

Transcripts are keyed by the sha256 of the audio plus the request parameters,
speech by text + voice + parameters, so a repeated prompt or re-sent file costs
nothing. The memory cache is bounded by entries *and* bytes (the seed guide's was
unbounded); Redis shares entries across processes and machines, and a Redis that
is down is a miss, never an error for the call.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger(__name__)

MiB = 1024 * 1024


@dataclass
class CacheStats:
    lookups: int = 0
    hits: int = 0

    @property
    def hit_rate(self) -> float:
        """Hits per lookup (not per miss)."""
        return self.hits / self.lookups if self.lookups else 0.0


class Cache(Protocol):
    stats: CacheStats

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None: ...


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(8, "little"))  # no ambiguity between part boundaries
        h.update(part)
    return h.hexdigest()


def _params(params: dict[str, Any]) -> bytes:
    return json.dumps(params, sort_keys=True, separators=(",", ":"), default=str).encode()


def transcript_key(audio: bytes, **params: Any) -> str:
    return "asr:" + _digest(audio, _params(params))


def speech_key(text: str, voice: str, **params: Any) -> str:
    return "tts:" + _digest(text.encode(), voice.encode(), _params(params))


class MemoryCache:
    """LRU with a time to live, bounded by entry count and total bytes."""

    def __init__(self, max_entries: int = 1024, max_bytes: int = 64 * MiB,
                 ttl_s: float = 3600.0, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.ttl_s = ttl_s
        self._clock = clock
        self._entries: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        self.bytes = 0
        self.stats = CacheStats()

    def __len__(self) -> int:
        return len(self._entries)

    def _drop(self, key: str) -> None:
        value, _ = self._entries.pop(key)
        self.bytes -= len(value)

    def peek(self, key: str) -> bytes | None:
        """Lookup without counting it (tiered caches count once)."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[1] <= self._clock():
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return entry[0]

    async def get(self, key: str) -> bytes | None:
        value = self.peek(key)
        self.stats.lookups += 1
        self.stats.hits += value is not None
        return value

    def put(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        if len(value) > self.max_bytes:
            return  # would evict everything and still not fit
        if key in self._entries:
            self._drop(key)
        self._entries[key] = (value, self._clock() + (ttl_s or self.ttl_s))
        self.bytes += len(value)
        while len(self._entries) > self.max_entries or self.bytes > self.max_bytes:
            self._drop(next(iter(self._entries)))

    async def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        self.put(key, value, ttl_s)


class RedisCache:
    """Entries in Redis with a TTL (``SET … EX``); one client per event loop."""

    def __init__(self, url: str, prefix: str = "voicebot:", ttl_s: float = 86400.0) -> None:
        self.url = url
        self.prefix = prefix
        self.ttl_s = ttl_s
        self.stats = CacheStats()
        self._clients: dict[int, Any] = {}
        self._warned = False

    def _client(self) -> Any:
        import redis.asyncio as redis

        key = id(asyncio.get_running_loop())
        if key not in self._clients:
            self._clients[key] = redis.Redis.from_url(
                self.url, socket_connect_timeout=1.0, socket_timeout=1.0)
        return self._clients[key]

    def _down(self, exc: Exception) -> None:
        if not self._warned:
            self._warned = True
            log.warning("Redis cache at %s unavailable (%s); continuing without it",
                        self.url, type(exc).__name__)

    async def fetch(self, key: str) -> bytes | None:
        """Lookup without counting it."""
        from redis.exceptions import RedisError

        try:
            value = await self._client().get(self.prefix + key)
        except (RedisError, OSError) as exc:
            self._down(exc)
            return None
        return bytes(value) if value is not None else None

    async def get(self, key: str) -> bytes | None:
        value = await self.fetch(key)
        self.stats.lookups += 1
        self.stats.hits += value is not None
        return value

    async def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        from redis.exceptions import RedisError

        try:
            await self._client().set(self.prefix + key, value,
                                     ex=max(1, round(ttl_s or self.ttl_s)))
        except (RedisError, OSError) as exc:
            self._down(exc)

    async def ttl(self, key: str) -> int:
        return int(await self._client().ttl(self.prefix + key))

    async def aclose(self) -> None:
        client = self._clients.pop(id(asyncio.get_running_loop()), None)
        if client is not None:
            await client.aclose()


class TieredCache:
    """Memory first, then Redis; a Redis hit is kept in memory too."""

    def __init__(self, memory: MemoryCache, redis: RedisCache) -> None:
        self.memory = memory
        self.redis = redis
        self.stats = CacheStats()

    async def get(self, key: str) -> bytes | None:
        value = self.memory.peek(key)
        if value is None:
            value = await self.redis.fetch(key)
            if value is not None:
                self.memory.put(key, value)
        self.stats.lookups += 1
        self.stats.hits += value is not None
        return value

    async def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        self.memory.put(key, value, ttl_s)
        await self.redis.set(key, value, ttl_s)


@functools.cache
def make_cache(kind: str, *, redis_url: str = "", ttl_s: float = 86400.0,
               max_entries: int = 1024, max_bytes: int = 64 * MiB) -> Cache | None:
    """The process-wide cache for these arguments; ``kind``: none, memory or redis."""
    if kind == "none":
        return None
    memory = MemoryCache(max_entries, max_bytes, ttl_s)
    if kind == "memory":
        return memory
    if kind == "redis":
        return TieredCache(memory, RedisCache(redis_url or "redis://127.0.0.1:6379/0",
                                              ttl_s=ttl_s))
    raise ValueError(f"unknown cache kind {kind!r}: none, memory or redis")
