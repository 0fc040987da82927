"""Speech synthesis on a provider: ``openai`` (REST, streamed) and ``websocket`` engines.

Both ask for raw 24 kHz 16-bit mono PCM, the one format that can be played while it
arrives without a decoder, and yield it chunk by chunk as the bytes come in. Audio is
cached by text + voice + parameters (the fixed prompts of a flow are then synthesized
once), and every clause, cached or not, goes into the cost ledger under the current call.

The WebSocket protocol is the seed guide's: one JSON request ``{"input", "voice",
"voice_settings", "response_format"}``, binary audio chunks, then ``{"type": "done"}``
(or ``{"type": "error", "error": {...}}``). Connections are kept open and reused.
"""

from __future__ import annotations

import asyncio
import json
import time
from abc import abstractmethod
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import websockets
from websockets.asyncio.client import ClientConnection

from voicebot.providers.cache import Cache, speech_key
from voicebot.providers.costs import CostLedger, PriceTable
from voicebot.providers.current_call import current_call
from voicebot.providers.errors import ProviderError
from voicebot.providers.http import ProviderClient, iter_bytes
from voicebot.providers.limits import Priority
from voicebot.tts.base import PcmChunks, TtsEngine

PCM_RATE = 24000  # OpenAI's "pcm": 24 kHz s16le mono
CACHE_CHUNK = PCM_RATE // 10  # a cached clause is replayed in 100 ms chunks


class _PcmJoiner:
    """Bytes → int16 arrays across chunk boundaries that may split a sample."""

    def __init__(self) -> None:
        self._carry = b""
        self.data = bytearray()

    def push(self, data: bytes) -> np.ndarray | None:
        data = self._carry + data
        cut = len(data) - len(data) % 2
        self._carry = data[cut:]
        if not cut:
            return None
        self.data += data[:cut]
        return np.frombuffer(data[:cut], dtype="<i2").astype(np.int16)


class RemoteTtsEngine(TtsEngine):
    """What both protocols share: parameters, cache, cost records."""

    sample_rate = PCM_RATE

    def __init__(
        self,
        client: ProviderClient,
        model: str,
        voice: str,
        *,
        speed: float = 1.0,
        prices: PriceTable,
        cache: Cache | None = None,
        ledger: CostLedger | None = None,
        priority: Priority = Priority.LIVE,
        deadline_s: float | None = None,
    ) -> None:
        self.client = client
        self.model = model
        self.voice = voice
        self.speed = speed
        self.prices = prices
        self.cache = cache
        self.ledger = ledger
        self.priority = priority
        self.deadline_s = deadline_s

    @property
    def provider(self) -> str:
        return self.client.settings.name

    def cache_key(self, text: str) -> str:
        return speech_key(
            text, self.voice, model=self.model, speed=self.speed, format="pcm", rate=PCM_RATE
        )

    def synthesize(self, text: str) -> PcmChunks:
        return self._synthesize(text, None)

    def synthesize_with(
        self, text: str, *, priority: Priority, deadline: float | None = None
    ) -> PcmChunks:
        """Like ``synthesize`` with an explicit priority/deadline (batch work, benchmarks)."""
        return self._synthesize(text, (priority, deadline))

    async def _synthesize(
        self, text: str, override: tuple[Priority, float | None] | None
    ) -> PcmChunks:
        start = time.perf_counter()
        key = self.cache_key(text)
        if self.cache is not None and (hit := await self.cache.get(key)) is not None:
            await self._record(text, cached=True, start=start)
            pcm = np.frombuffer(hit, dtype="<i2").astype(np.int16)
            for i in range(0, len(pcm), CACHE_CHUNK):
                yield pcm[i : i + CACHE_CHUNK]
            return
        priority, deadline = override or (self.priority, None)
        if deadline is None and self.deadline_s is not None:
            deadline = time.monotonic() + self.deadline_s
        joiner = _PcmJoiner()
        answered = complete = False  # a request the provider answered is billed, cut or not
        try:
            async for data in self._stream(text, priority, deadline):
                answered = True
                chunk = joiner.push(data)
                if chunk is not None:
                    yield chunk
            complete = True
        finally:
            await self._record(text, cached=False, start=start, ok=answered or complete)
        if self.cache is not None and joiner.data:
            await self.cache.set(key, bytes(joiner.data))

    @abstractmethod
    def _stream(
        self, text: str, priority: Priority, deadline: float | None
    ) -> AsyncIterator[bytes]:
        """The provider's raw PCM bytes for ``text``, as they arrive (the protocol's part)."""

    async def _record(self, text: str, *, cached: bool, start: float, ok: bool = True) -> None:
        if self.ledger is None:
            return
        await self.ledger.arecord(
            provider=self.provider,
            kind="tts",
            units=len(text),
            cost=self.prices.tts_cost(len(text)) if ok else 0.0,
            cached=cached,
            call_id=current_call.get(),
            latency_ms=(time.perf_counter() - start) * 1000,
            ok=ok,
        )

    async def warm_up(self) -> None:
        await self.client.warm()


class OpenAiTtsEngine(RemoteTtsEngine):
    """``POST /audio/speech`` with ``response_format: pcm``, read as it streams."""

    name = "openai"

    async def _stream(
        self, text: str, priority: Priority, deadline: float | None
    ) -> AsyncIterator[bytes]:
        body = {
            "model": self.model,
            "input": text,
            "voice": self.voice,
            "response_format": "pcm",
            "speed": self.speed,
        }
        async with self.client.stream(
            "POST", "/audio/speech", json=body, priority=priority, deadline=deadline
        ) as response:
            async for data in iter_bytes(response, provider=self.provider):
                yield data


class WebSocketTtsEngine(RemoteTtsEngine):
    """The streaming protocol over a kept-open WebSocket (one request at a time on each)."""

    name = "websocket"
    path = "/tts/stream"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._idle: dict[int, list[ClientConnection]] = {}  # per event loop
        self._slots: dict[int, asyncio.Semaphore] = {}

    def _slot(self) -> asyncio.Semaphore:
        loop_id = id(asyncio.get_running_loop())
        if loop_id not in self._slots:
            self._slots[loop_id] = asyncio.Semaphore(self.client.settings.max_concurrency)
        return self._slots[loop_id]

    async def _connect(self, deadline: float | None) -> ClientConnection:
        loop_id = id(asyncio.get_running_loop())
        pool = self._idle.setdefault(loop_id, [])
        while pool:
            ws = pool.pop()
            if ws.state is websockets.State.OPEN:
                return ws
        timeout = self.client.settings.connect_timeout_s
        if deadline is not None:
            timeout = max(0.01, min(timeout, deadline - time.monotonic()))
        headers = self.client.auth_headers()
        try:
            return await websockets.connect(
                self.client.ws_url(self.path),
                additional_headers=headers,
                open_timeout=timeout,
                max_size=None,
                compression=None,
            )
        except (OSError, TimeoutError, websockets.InvalidHandshake) as exc:
            status = getattr(getattr(exc, "response", None), "status_code", None)
            raise ProviderError(
                f"WebSocket connect failed: {type(exc).__name__}",
                provider=self.provider,
                kind="connect" if status is None else "http",
                status=status,
            ) from exc

    async def _stream(
        self, text: str, priority: Priority, deadline: float | None
    ) -> AsyncIterator[bytes]:
        await self.client.limiter.acquire(1, priority, deadline)
        async with self._slot():
            ws = await self._connect_retrying(deadline)
            reusable = False
            try:
                await ws.send(
                    json.dumps(
                        {
                            "input": text,
                            "voice": self.voice,
                            "model": self.model,
                            "voice_settings": {"speed": self.speed},
                            "response_format": "pcm",
                        }
                    )
                )
                while True:
                    message = await self._recv(ws, deadline)
                    if isinstance(message, bytes):
                        deadline = None  # the deadline is for first audio; then read timeouts
                        yield message
                        continue
                    event = _parse_event(message, self.provider)
                    if event.get("type") == "done":
                        reusable = True
                        return
                    if event.get("type") == "error":
                        error = event.get("error") or {}
                        raise ProviderError(
                            f"provider error: {str(error.get('message', error))[:200]}",
                            provider=self.provider,
                            kind="http",
                            status=error.get("status") if isinstance(error, dict) else None,
                        )
            finally:
                if reusable:
                    self._idle.setdefault(id(asyncio.get_running_loop()), []).append(ws)
                else:
                    await ws.close()

    async def _connect_retrying(self, deadline: float | None) -> ClientConnection:
        policy = self.client.settings.retry
        for attempt in range(policy.max_attempts):
            try:
                return await self._connect(deadline)
            except ProviderError as exc:
                if exc.kind != "connect" or attempt + 1 == policy.max_attempts:
                    raise
                delay = policy.delay(attempt)
                if deadline is not None and time.monotonic() + delay >= deadline:
                    raise ProviderError(
                        "deadline reached while reconnecting",
                        provider=self.provider,
                        kind="deadline",
                    ) from exc
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def _recv(self, ws: ClientConnection, deadline: float | None) -> str | bytes:
        timeout = self.client.settings.read_timeout_s
        if deadline is not None:
            timeout = min(timeout, max(0.0, deadline - time.monotonic()))
        try:
            return await asyncio.wait_for(ws.recv(), timeout)
        except TimeoutError as exc:
            raise ProviderError(
                "no audio from the provider in time", provider=self.provider, kind="timeout"
            ) from exc
        except websockets.ConnectionClosed as exc:
            raise ProviderError(
                "stream closed before done", provider=self.provider, kind="protocol"
            ) from exc

    async def aclose(self) -> None:
        pool = self._idle.pop(id(asyncio.get_running_loop()), [])
        for ws in pool:
            await ws.close()


def _parse_event(message: str, provider: str) -> dict[str, Any]:
    try:
        event = json.loads(message)
    except ValueError as exc:
        raise ProviderError(
            f"garbage on the stream: {message[:60]!r}", provider=provider, kind="protocol"
        ) from exc
    if not isinstance(event, dict):
        raise ProviderError(
            f"unexpected message {message[:60]!r}", provider=provider, kind="protocol"
        )
    return event
