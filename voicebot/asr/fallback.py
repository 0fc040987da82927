"""A remote ASR engine held to its share of the latency budget, with a local engine behind it.

The caller's turn is fed to both sessions (feeding is only buffering). When the turn
ends the remote one is asked first; if it has not answered within ``timeout_s``, or
fails, the local engine transcribes that turn instead, so a slow or broken provider
costs a turn at most ``timeout_s`` and never stalls the call. With ``hedge_s`` the
local decode starts after that delay regardless and the first transcript wins.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import numpy as np

from voicebot.asr.base import AsrEngine, AsrResult, AsrSession
from voicebot.providers.errors import ProviderError

log = logging.getLogger(__name__)


class FallbackAsrEngine(AsrEngine):
    def __init__(
        self,
        remote: AsrEngine,
        local: AsrEngine | None,
        *,
        timeout_s: float,
        hedge_s: float | None = None,
    ) -> None:
        self.remote = remote
        self.local = local
        self.timeout_s = timeout_s
        self.hedge_s = hedge_s
        self.name = f"{remote.name}+{local.name}" if local is not None else remote.name
        self.fallbacks = 0  # turns the local engine answered

    def session(self, language: str | None = None, *, context: str | None = None) -> AsrSession:
        local = self.local.session(language, context=context) if self.local is not None else None
        return FallbackSession(self, self.remote.session(language, context=context), local)

    async def transcribe(
        self, audio: np.ndarray, language: str | None = None, *, context: str | None = None
    ) -> AsrResult:
        session = self.session(language, context=context)
        session.feed(audio)
        return await session.finish()

    async def warm_up(self) -> None:
        if self.local is not None:
            await self.local.warm_up()
        await self.remote.warm_up()


class FallbackSession(AsrSession):
    def __init__(
        self, engine: FallbackAsrEngine, remote: AsrSession, local: AsrSession | None
    ) -> None:
        self.engine = engine
        self.remote = remote
        self.local = local

    def feed(self, audio: np.ndarray) -> None:
        self.remote.feed(audio)
        if self.local is not None:
            self.local.feed(audio)

    @property
    def duration(self) -> float:
        return self.remote.duration

    async def partial(self) -> AsrResult:
        try:
            return await asyncio.wait_for(self.remote.partial(), self.engine.timeout_s)
        except (ProviderError, TimeoutError):
            return AsrResult("")  # a partial is a preview: skipping one loses nothing

    async def finish(self) -> AsrResult:
        engine = self.engine
        if self.local is None:  # fallback: none — a lost turn, never a crashed call
            try:
                return _tag(
                    await asyncio.wait_for(self.remote.finish(), engine.timeout_s),
                    engine.remote.name,
                )
            except (ProviderError, TimeoutError) as exc:
                log.warning(
                    "ASR provider %s failed or was late (%s); no transcript for this "
                    "turn (fallback: none)",
                    engine.remote.name,
                    exc or "timeout",
                )
                return AsrResult("", engine=engine.remote.name)
        start = time.perf_counter()
        remote = asyncio.ensure_future(self.remote.finish())
        local: asyncio.Future[AsrResult] | None = None
        deadline = start + engine.timeout_s
        try:
            if engine.hedge_s is not None and engine.hedge_s < engine.timeout_s:
                await asyncio.wait([remote], timeout=engine.hedge_s)
                if not _succeeded(remote):
                    local = asyncio.ensure_future(self.local.finish())
                    await asyncio.wait(
                        [remote, local],
                        timeout=max(0.0, deadline - time.perf_counter()),
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                    if _succeeded(remote):
                        return _tag(remote.result(), engine.remote.name)
                    await local
                    return self._fallback(local.result(), remote, "hedge")
                return _tag(remote.result(), engine.remote.name)
            await asyncio.wait([remote], timeout=engine.timeout_s)
            if _succeeded(remote):
                return _tag(remote.result(), engine.remote.name)
            local = asyncio.ensure_future(self.local.finish())
            return self._fallback(await local, remote, "timeout")
        finally:
            for task in (remote, local):
                if task is not None and not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task

    def _fallback(
        self, result: AsrResult, remote: asyncio.Future[AsrResult], why: str
    ) -> AsrResult:
        self.engine.fallbacks += 1
        reason = why
        if remote.done() and not remote.cancelled() and remote.exception() is not None:
            reason = f"error: {remote.exception()}"
        log.warning(
            "ASR provider %s failed or was late (%s); local transcript used",
            self.engine.remote.name,
            reason,
        )
        return _tag(result, self.local_name)

    @property
    def local_name(self) -> str:
        return self.engine.local.name if self.engine.local is not None else ""


def _succeeded(task: asyncio.Future[AsrResult]) -> bool:
    return task.done() and not task.cancelled() and task.exception() is None


def _tag(result: AsrResult, engine: str) -> AsrResult:
    result.engine = engine
    return result
