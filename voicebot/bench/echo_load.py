"""``voicebot bench echo``'s load figures: many calls' echo cancellers on one event loop.

``calls`` cancellers run at real-time pace side by side, each fed 20 ms of a
line echo of the bot's voice per tick (the bot's audio filed as the reference,
as playback does), once with AEC3 inline on the event loop (what calls use)
and once on worker threads (``echo_executor``). Figures: the
event loop's lag (how late a 5 ms timer fires: p50, p99, max) and each frame's
delay through the canceller stage (p50, p99).
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import Executor
from typing import Any

import numpy as np

from voicebot.audio.echo import EchoCanceller, echo_executor
from voicebot.audio.stages import EchoCancelStage
from voicebot.bench.stats import summary
from voicebot.clock import Clock
from voicebot.context import CallContext
from voicebot.frames import AudioFrame, Frame
from voicebot.graph import EdgeSpec, Overflow, Pipeline, Source, Stage

RATE = 16000
FRAME = RATE // 50
TIMER_S = 0.005


class _Line(Source):
    """The caller side of one call: the bot's voice, 15 dB down and 100 ms late."""

    name = "source"

    def __init__(self, bot: np.ndarray, canceller: EchoCanceller, seconds: float) -> None:
        super().__init__()
        self.bot = bot
        self.canceller = canceller
        self.frames = round(seconds * 50)
        delay = RATE // 10
        echo = np.concatenate([np.zeros(delay), bot[:-delay] * 10 ** (-15 / 20)])
        self.echo = np.round(echo).astype(np.int16)

    async def produce(self) -> None:
        clock = self.ctx.clock
        for k in range(self.frames):
            t = k * 0.02
            await clock.sleep_until(t + 0.02)
            i = (k * FRAME) % (len(self.bot) - FRAME)
            self.canceller.add_reference(self.bot[i : i + FRAME], RATE, 1, t)
            await self.push(AudioFrame(self.echo[i : i + FRAME], RATE, 1, t))


class _Delay(Stage):
    """Records how long after its end each frame came out of the canceller."""

    name = "sink"

    def __init__(self, delays: list[float]) -> None:
        super().__init__()
        self.delays = delays

    async def process(self, frame: Frame) -> None:
        if isinstance(frame, AudioFrame):
            self.delays.append((self.ctx.now() - frame.pts - 0.02) * 1000)


async def _lag(samples: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        start = time.perf_counter()
        await asyncio.sleep(TIMER_S)
        samples.append(max(0.0, time.perf_counter() - start - TIMER_S) * 1000)


async def load(
    bot: np.ndarray, calls: int, seconds: float, executor: Executor | None
) -> dict[str, Any]:
    """``calls`` cancellers for ``seconds``; loop lag and frame delay, in ms."""
    lag: list[float] = []
    delays: list[float] = []
    pipelines = []
    for _ in range(calls):
        canceller = EchoCanceller()
        stages = [
            _Line(bot, canceller, seconds),
            EchoCancelStage(canceller, executor),
            _Delay(delays),
        ]
        pipelines.append(Pipeline(CallContext(Clock()), stages, [EdgeSpec(50, Overflow.BLOCK)] * 2))
    stop = asyncio.Event()
    timer = asyncio.get_running_loop().create_task(_lag(lag, stop))
    await asyncio.gather(*(p.run() for p in pipelines))
    stop.set()
    await timer
    return {
        "calls": calls,
        "loop_lag_ms": summary(lag, (50, 99)) | {"max": round(max(lag), 2)},
        "frame_delay_ms": summary(delays, (50, 99)),
    }


async def bench_load(bot: np.ndarray, calls: int, seconds: float = 10.0) -> dict[str, Any]:
    """The same load inline on the loop and on the cancellers' threads."""
    return {
        "inline": await load(bot, calls, seconds, None),
        "threads": await load(bot, calls, seconds, echo_executor()),
    }


def report(result: dict[str, Any]) -> list[str]:
    out = []
    for mode in ("inline", "threads"):
        r = result[mode]
        lag, delay = r["loop_lag_ms"], r["frame_delay_ms"]
        out.append(
            f"  {r['calls']} cancellers, AEC3 {mode:7s}: event-loop lag p50 {lag['p50']} / "
            f"p99 {lag['p99']} / max {lag['max']} ms; frame delay p50 {delay['p50']} / "
            f"p99 {delay['p99']} ms"
        )
    return out
