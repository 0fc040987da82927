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
    """``asr:`` + sha256 of the audio and the parameters that change the answer (model,
    language, prompt …), in any order."""
    return "asr:" + _digest(audio, _params(params))


def speech_key(text: str, voice: str, **params: Any) -> str:
    """``tts:`` + sha256 of the text, the voice and the parameters (model, speed, format …)."""
    return "tts:" + _digest(text.encode(), voice.encode(), _params(params))


class MemoryCache:
    """LRU with a time to live, bounded by entry count and total bytes."""

    def __init__(
        self,
        max_entries: int = 1024,
        max_bytes: int = 64 * MiB,
        ttl_s: float = 3600.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1 or max_bytes < 1 or not ttl_s > 0:
            raise ValueError("max_entries, max_bytes and ttl_s must be positive")
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
        """Lookup without counting it (a tiered cache counts once)."""
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
        """Store ``value``; the least recently used entries go until both bounds hold. A
        value bigger than ``max_bytes`` is not stored (it would evict everything and
        still not fit), nor one with a TTL of zero."""
        ttl = self.ttl_s if ttl_s is None else ttl_s
        if key in self._entries:
            self._drop(key)
        if len(value) > self.max_bytes or ttl <= 0:
            return
        self._entries[key] = (bytes(value), self._clock() + ttl)
        self.bytes += len(value)
        while len(self._entries) > self.max_entries or self.bytes > self.max_bytes:
            self._drop(next(iter(self._entries)))

    async def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        self.put(key, value, ttl_s)


class RedisCache:
    """Entries in Redis with a TTL (``SET … EX``), shared by processes and machines.

    One client per event loop, made on first use. A Redis that fails is logged once
    (and once more when it is back) and then left alone for ``retry_s`` — each lookup
    meanwhile is a miss at once instead of another connect timeout on a live call.
    """

    def __init__(
        self,
        url: str,
        prefix: str = "voicebot:",
        ttl_s: float = 86400.0,
        *,
        timeout_s: float = 0.5,
        retry_s: float = 10.0,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.ttl_s = ttl_s
        self.timeout_s = timeout_s
        self.retry_s = retry_s
        self.stats = CacheStats()
        self.errors = 0
        self._clients: dict[int, tuple[asyncio.AbstractEventLoop, Any]] = {}
        self._down_until = 0.0
        self._warned = False

    def __repr__(self) -> str:
        return f"RedisCache({_redact(self.url)!r}, prefix={self.prefix!r})"

    def _client(self) -> Any:
        import redis.asyncio as redis

        loop = asyncio.get_running_loop()
        entry = self._clients.get(id(loop))
        if entry is None or entry[0] is not loop:
            # a loop's id can be reused after it is gone: drop clients of closed loops
            self._clients = {k: e for k, e in self._clients.items() if not e[0].is_closed()}
            entry = self._clients[id(loop)] = (
                loop,
                redis.Redis.from_url(
                    self.url, socket_connect_timeout=self.timeout_s, socket_timeout=self.timeout_s
                ),
            )
        return entry[1]

    def _available(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self, exc: Exception) -> None:
        self.errors += 1
        self._down_until = time.monotonic() + self.retry_s
        if not self._warned:
            self._warned = True
            log.warning(
                "Redis cache at %s unavailable (%s: %s); lookups are misses, retrying every %.0f s",
                _redact(self.url),
                type(exc).__name__,
                exc,
                self.retry_s,
            )

    def _ok(self) -> None:
        if self._warned:
            self._warned = False
            log.warning("Redis cache at %s is back", _redact(self.url))

    async def fetch(self, key: str) -> bytes | None:
        """Lookup without counting it."""
        from redis.exceptions import RedisError

        if not self._available():
            return None
        try:
            value = await self._client().get(self.prefix + key)
        except (RedisError, OSError) as exc:
            self._failed(exc)
            return None
        self._ok()
        return bytes(value) if value is not None else None

    async def get(self, key: str) -> bytes | None:
        value = await self.fetch(key)
        self.stats.lookups += 1
        self.stats.hits += value is not None
        return value

    async def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        from redis.exceptions import RedisError

        ttl = self.ttl_s if ttl_s is None else ttl_s
        if ttl <= 0 or not self._available():
            return
        try:
            # PX: millisecond TTLs, so a short one is not rounded up to a whole second
            await self._client().set(self.prefix + key, value, px=max(1, round(ttl * 1000)))
        except (RedisError, OSError) as exc:
            self._failed(exc)
            return
        self._ok()

    async def ttl(self, key: str) -> float:
        """Seconds the entry has left (-2: no such key, -1: no TTL); errors propagate."""
        ms = int(await self._client().pttl(self.prefix + key))
        return ms / 1000 if ms >= 0 else float(ms)

    async def aclose(self) -> None:
        """Close the running loop's client."""
        loop = asyncio.get_running_loop()
        entry = self._clients.get(id(loop))
        if entry is not None and entry[0] is loop:
            del self._clients[id(loop)]
            await entry[1].aclose()


def _redact(url: str) -> str:
    """``url`` without a password (``redis://:secret@host`` is common)."""
    head, sep, tail = url.rpartition("@")
    if not sep:
        return url
    scheme, _, _ = head.partition("://")
    return f"{scheme}://***@{tail}"


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
                self.memory.put(key, value)  # the memory tier's own TTL
        self.stats.lookups += 1
        self.stats.hits += value is not None
        return value

    async def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        self.memory.put(key, value, ttl_s)
        await self.redis.set(key, value, ttl_s)


def make_cache(
    kind: str,
    redis_url: str = "",
    ttl_s: float = 86400.0,
    max_entries: int = 1024,
    max_bytes: int = 64 * MiB,
) -> Cache | None:
    """The process-wide cache for these arguments; ``kind``: none, memory or redis (a
    memory tier in front of Redis, so a repeated prompt does not even cross the network)."""
    return _make_cache(kind, redis_url, float(ttl_s), max_entries, max_bytes)


@functools.cache
def _make_cache(
    kind: str, redis_url: str, ttl_s: float, max_entries: int, max_bytes: int
) -> Cache | None:
    if kind == "none":
        return None
    memory = MemoryCache(max_entries, max_bytes, ttl_s)
    if kind == "memory":
        return memory
    if kind == "redis":
        return TieredCache(memory, RedisCache(redis_url or "redis://127.0.0.1:6379/0", ttl_s=ttl_s))
    raise ValueError(f"unknown cache kind {kind!r}: none, memory or redis")
