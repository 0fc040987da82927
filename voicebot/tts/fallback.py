"""A remote TTS engine held to its share of the latency budget, with a local engine behind it.

Per clause: if the provider's first audio has not arrived within ``timeout_s`` (or the
request fails first), the clause is spoken by the local engine instead. With
``hedge_s`` the local engine starts after that delay anyway and whichever produces
audio first speaks the clause. A stream that breaks after its first audio cannot be
resumed mid-word: the clause ends there, and the provider is skipped for
``cooldown_s`` so the following clauses do not pay the timeout again.

Local audio is resampled to the remote engine's rate, so one reply never switches
sample rate downstream. Without a local engine (``fallback: none``) such a clause
is skipped: the caller misses words, the call goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import numpy as np

from voicebot.audio.resample import StreamResampler
from voicebot.tts.base import PcmChunks, TtsEngine

log = logging.getLogger(__name__)


class FallbackTtsEngine(TtsEngine):
    def __init__(
        self,
        remote: TtsEngine,
        local: TtsEngine | None,
        *,
        timeout_s: float,
        hedge_s: float | None = None,
        cooldown_s: float = 30.0,
    ) -> None:
        self.remote = remote
        self.local = local
        self.timeout_s = timeout_s
        self.hedge_s = hedge_s
        self.cooldown_s = cooldown_s
        self.sample_rate = remote.sample_rate
        self.name = f"{remote.name}+{local.name}" if local is not None else remote.name
        self.fallbacks = 0  # clauses the local engine spoke
        self._skip_until = 0.0

    async def warm_up(self) -> None:
        if self.local is not None:
            await self.local.warm_up()
        await self.remote.warm_up()

    def synthesize(self, text: str) -> PcmChunks:
        return self._synthesize(text)

    async def _synthesize(self, text: str) -> PcmChunks:
        if time.monotonic() < self._skip_until:
            self.fallbacks += 1
            async for chunk in self._local(text):
                yield chunk
            return
        remote = _Pump(self.remote.synthesize(text))
        local: _Pump | None = None
        try:
            winner = await self._first(remote, text)
            if winner is remote:
                async for chunk in self._drain_remote(remote):
                    yield chunk
                return
            local = winner
            async for chunk in local.drain():
                yield chunk
        finally:
            await remote.cancel()
            if local is not None:
                await local.cancel()

    async def _first(self, remote: _Pump, text: str) -> _Pump:
        """The pump that speaks this clause: the remote one if its audio comes in time."""
        start = time.perf_counter()
        wait = self.timeout_s if self.hedge_s is None else min(self.hedge_s, self.timeout_s)
        if await remote.ready(wait) and remote.ok:
            return remote
        local = _Pump(self._local(text))
        if not remote.finished and self.hedge_s is not None:
            left = max(0.0, self.timeout_s - (time.perf_counter() - start))
            await _first_ready([remote, local], left)
            if remote.ready_now and remote.ok:
                await local.cancel()
                return remote
        self.fallbacks += 1
        log.warning(
            "TTS provider %s: no audio within %.0f ms (%s); clause spoken locally",
            self.remote.name,
            self.timeout_s * 1000,
            remote.why(),
        )
        if remote.failed:
            self._skip_until = time.monotonic() + self.cooldown_s
        await remote.cancel()
        return local

    async def _drain_remote(self, remote: _Pump) -> PcmChunks:
        async for chunk in remote.drain(raise_errors=False):
            yield chunk
        if remote.failed:
            self._skip_until = time.monotonic() + self.cooldown_s
            log.warning(
                "TTS provider %s broke off mid-clause (%s); using the local engine for %.0f s",
                self.remote.name,
                remote.why(),
                self.cooldown_s,
            )

    async def _local(self, text: str) -> PcmChunks:
        if self.local is None:  # fallback: none — the clause is skipped, the call goes on
            return
        rate = self.local.sample_rate
        if rate == self.sample_rate:
            async for chunk in self.local.synthesize(text):
                yield chunk
            return
        resampler = StreamResampler(rate, 1, self.sample_rate, 1)
        chunks = self.local.synthesize(text)
        try:
            async for chunk in chunks:
                out = resampler.process(chunk)
                if len(out):
                    yield out
            tail = resampler.flush()
            if len(tail):
                yield tail
        finally:
            await chunks.aclose()


class _Pump:
    """Runs an audio iterator in a task, so its first chunk can be awaited with a timeout."""

    def __init__(self, chunks: PcmChunks) -> None:
        self._chunks = chunks
        self._queue: asyncio.Queue[np.ndarray | None] = asyncio.Queue()  # None: the end
        self._first = asyncio.Event()
        self.error: BaseException | None = None
        self.finished = False
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        try:
            async for chunk in self._chunks:
                self._queue.put_nowait(chunk)
                self._first.set()
        except Exception as exc:  # any provider failure means "use the local engine"
            self.error = exc
        finally:
            self.finished = True
            self._queue.put_nowait(None)
            self._first.set()
            with contextlib.suppress(Exception):
                await self._chunks.aclose()

    async def ready(self, wait_s: float) -> bool:
        """True once a chunk (or the end) is there; False after ``wait_s``."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._first.wait(), wait_s)
        return self._first.is_set()

    @property
    def ready_now(self) -> bool:
        return self._first.is_set()

    @property
    def ok(self) -> bool:
        """Audio arrived (or a clean, empty end) and no error came before it."""
        return self._first.is_set() and not (self.error is not None and self._queue.qsize() <= 1)

    @property
    def failed(self) -> bool:
        return self.error is not None

    def why(self) -> str:
        if self.error is not None:
            return str(self.error) or type(self.error).__name__
        return "timeout"

    async def drain(self, raise_errors: bool = True) -> PcmChunks:
        while True:
            item = await self._queue.get()
            if item is None:
                if self.error is not None and raise_errors:
                    raise self.error
                return
            yield item

    async def cancel(self) -> None:
        if not self._task.done():
            self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def _first_ready(pumps: list[_Pump], wait_s: float) -> None:
    waiters = [asyncio.ensure_future(p.ready(wait_s)) for p in pumps]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
