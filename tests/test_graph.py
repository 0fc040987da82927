"""Graph semantics: bounded edges, overflow policies, control frames, interrupt, lifecycle."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from voicebot.audio.playback import PlaybackStage
from voicebot.clock import Clock, FastClock
from voicebot.context import CallContext
from voicebot.frames import (
    AudioFrame,
    BotAudioFrame,
    EndOfCall,
    Frame,
    Interrupt,
    ReplyDone,
    ReplyText,
    Transcript,
)
from voicebot.graph import INTERRUPTED, Edge, EdgeSpec, Overflow, Pipeline, Source, Stage


def audio(i: int) -> AudioFrame:
    return AudioFrame(np.full(320, i, np.int16), 16000, 1, pts=i * 0.02)


# --- edges ---------------------------------------------------------------------


async def test_drop_oldest_edge_is_bounded_and_counts_drops():
    edge = Edge("a->b", maxsize=3, policy=Overflow.DROP_OLDEST)
    for i in range(5):
        await asyncio.wait_for(edge.put(audio(i)), 0.1)  # never waits
    assert edge.qsize() == 3
    assert edge.dropped == 2
    got = [int((await edge.get()).pcm[0]) for _ in range(3)]
    assert got == [2, 3, 4]  # the oldest went first


async def test_drop_oldest_never_drops_non_droppable_frames():
    edge = Edge("a->b", maxsize=2, policy=Overflow.DROP_OLDEST)
    await edge.put(Transcript("hello", True, 1))
    await edge.put(audio(0))
    await edge.put(audio(1))  # drops audio(0), keeps the transcript
    assert edge.dropped == 1
    assert isinstance(await edge.get(), Transcript)
    assert int((await edge.get()).pcm[0]) == 1


async def test_block_edge_applies_back_pressure():
    edge = Edge("a->b", maxsize=2, policy=Overflow.BLOCK)
    await edge.put(ReplyText("one", 1))
    await edge.put(ReplyText("two", 1))
    third = asyncio.ensure_future(edge.put(ReplyText("three", 1)))
    await asyncio.sleep(0.01)
    assert not third.done() and edge.qsize() == 2
    assert (await edge.get()).text == "one"
    await asyncio.wait_for(third, 0.5)
    assert [(await edge.get()).text for _ in range(2)] == ["two", "three"]
    assert edge.dropped == 0


async def test_control_frames_overtake_queued_data_and_are_never_dropped():
    edge = Edge("a->b", maxsize=2, policy=Overflow.DROP_OLDEST)
    await edge.put(audio(0))
    await edge.put(audio(1))
    await edge.put(EndOfCall("hangup"))  # the edge is full: control still gets in
    await edge.put(audio(2))
    assert isinstance(await edge.get(), EndOfCall)
    assert [int((await edge.get()).pcm[0]) for _ in range(2)] == [1, 2]


async def test_interrupt_flushes_reply_frames_but_keeps_caller_data():
    edge = Edge("a->b", maxsize=10)
    frames: list[Frame] = [
        ReplyText("a long answer", 1),
        BotAudioFrame(np.zeros(441, np.int16), 22050),
        Transcript("stop", False, 2),
        BotAudioFrame(np.zeros(441, np.int16), 22050),
        ReplyDone(1),
    ]
    for f in frames:
        await edge.put(f)
    await edge.put(Interrupt())
    assert edge.flushed == 4
    assert isinstance(await edge.get(), Interrupt)
    assert isinstance(await edge.get(), Transcript)
    assert edge.empty()


async def test_control_frame_is_delivered_to_a_busy_consumer_at_once():
    """A stage stuck in a slow ``process`` still gets the interrupt and passes it on."""
    seen: list[str] = []

    class Slow(Stage):
        name = "slow"

        async def process(self, frame: Frame) -> None:
            result = await self.interruptible(asyncio.sleep(10))
            seen.append("interrupted" if result is INTERRUPTED else "finished")

        def on_interrupt(self, frame: Interrupt) -> None:
            seen.append("on_interrupt")

    slow = Slow()
    edge_in, edge_out = Edge("in", 5), Edge("out", 5)
    edge_in.consumer = slow
    slow.inbox, slow.outbox = edge_in, edge_out
    task = asyncio.ensure_future(slow.run())
    await edge_in.put(ReplyText("x", 1))
    await asyncio.sleep(0.01)
    await edge_in.put(Interrupt())
    assert seen == ["on_interrupt"]  # synchronous, before any await
    assert isinstance(edge_out.get_nowait(), Interrupt)  # forwarded immediately
    await asyncio.sleep(0.01)
    assert seen == ["on_interrupt", "interrupted"]
    assert not task.done()  # the stage itself keeps running
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


# --- pipelines -------------------------------------------------------------------


class ListSource(Source):
    def __init__(self, frames: list[Frame], gap: float = 0.0) -> None:
        super().__init__()
        self.frames = frames
        self.gap = gap

    async def produce(self) -> None:
        for i, frame in enumerate(self.frames):
            if self.gap:
                await self.ctx.clock.sleep_until((i + 1) * self.gap)
            await self.push(frame)


class Collect(Stage):
    name = "sink"

    def __init__(self) -> None:
        super().__init__()
        self.frames: list[Frame] = []

    async def process(self, frame: Frame) -> None:
        self.frames.append(frame)


class Boom(Stage):
    name = "boom"

    async def process(self, frame: Frame) -> None:
        raise RuntimeError("kaput")


def _pipeline(*stages: Stage, clock: Clock | None = None) -> tuple[Pipeline, list[dict]]:
    ctx = CallContext(clock or Clock())
    pipeline = Pipeline(ctx, stages)
    events: list[dict] = []
    ctx.bus.subscribe(events.append)
    return pipeline, events


async def test_pipeline_drains_in_order_and_ends_completed():
    sink = Collect()
    frames = [Transcript(str(i), True, i) for i in range(20)]
    pipeline, events = _pipeline(ListSource(frames), Stage(), Stage(), sink)
    assert await asyncio.wait_for(pipeline.run(), 5) == "completed"
    assert [f.text for f in sink.frames] == [str(i) for i in range(20)]
    assert events[0]["type"] == "call_started" and events[-1]["type"] == "call_ended"
    assert events[-1]["reason"] == "completed"
    assert all({"type", "call_id", "t"} <= e.keys() for e in events)


async def test_connect_builds_the_chain_stage_to_stage_with_each_edges_spec():
    ctx = CallContext(Clock())
    pipeline = Pipeline(ctx)  # exists before its stages: they can be built with hang_up
    source, middle, sink = ListSource([Transcript("x", True, 1)]), Stage(), Collect()
    first = pipeline.connect(source, middle, EdgeSpec(3, Overflow.DROP_OLDEST))
    second = pipeline.connect(middle, sink)
    assert pipeline.stages == [source, middle, sink]
    assert pipeline.edges == [first, second]
    assert (first.name, first.maxsize, first.policy) == ("source->stage", 3, Overflow.DROP_OLDEST)
    assert (second.maxsize, second.policy) == (EdgeSpec().maxsize, Overflow.BLOCK)
    assert source.outbox is first and middle.inbox is first and sink.inbox is second
    assert all(stage.ctx is ctx for stage in pipeline.stages)
    with pytest.raises(ValueError, match="the chain ends at sink"):
        pipeline.connect(middle, Collect())
    with pytest.raises(ValueError, match="already in"):
        pipeline.connect(sink, source)
    assert await asyncio.wait_for(pipeline.run(), 5) == "completed"
    assert [f.text for f in sink.frames] == ["x"]


async def test_a_pipeline_without_a_source_and_a_sink_does_not_run():
    with pytest.raises(ValueError, match="at least a source and a sink"):
        Pipeline(CallContext(Clock()), [Collect()])
    with pytest.raises(ValueError, match="at least a source and a sink"):
        await Pipeline(CallContext(Clock())).run()


async def test_a_raising_stage_ends_the_call_with_an_error_event():
    frames = [Transcript("x", True, 1)]
    pipeline, events = _pipeline(ListSource(frames), Boom(), Collect())
    assert await asyncio.wait_for(pipeline.run(), 5) == "error"
    errors = [e for e in events if e["type"] == "error"]
    assert len(errors) == 1
    assert errors[0]["stage"] == "boom" and errors[0]["message"] == "kaput"
    assert events[-1] == {**events[-1], "type": "call_ended", "reason": "error"}


async def test_setup_failure_is_an_error_not_a_hang():
    class BadSetup(Stage):
        name = "bad"

        async def setup(self) -> None:
            raise OSError("no device")

    pipeline, events = _pipeline(ListSource([]), BadSetup(), Collect())
    assert await asyncio.wait_for(pipeline.run(), 5) == "error"
    assert [e["message"] for e in events if e["type"] == "error"] == ["no device"]


async def test_hang_up_and_cancel_leave_no_task_behind():
    before = asyncio.all_tasks()
    frames = [audio(i) for i in range(500)]
    pipeline, events = _pipeline(ListSource(frames, gap=0.005), Stage(), Collect())
    run = asyncio.ensure_future(pipeline.run())
    await asyncio.sleep(0.05)
    pipeline.hang_up("caller_hung_up")
    assert await asyncio.wait_for(run, 5) == "caller_hung_up"
    assert events[-1]["reason"] == "caller_hung_up"
    assert asyncio.all_tasks() - before - {asyncio.current_task()} == set()

    # Cancelling the run task from outside also cleans up.
    pipeline2, _ = _pipeline(ListSource(frames, gap=0.005), Stage(), Collect())
    run2 = asyncio.ensure_future(pipeline2.run())
    await asyncio.sleep(0.05)
    run2.cancel()
    await asyncio.gather(run2, return_exceptions=True)
    assert asyncio.all_tasks() - before - {asyncio.current_task()} == set()


class RecordingOutput:
    sample_rate = 16000
    channels = 1

    def __init__(self) -> None:
        self.frames: list[tuple[float, np.ndarray]] = []

    def write(self, pcm: np.ndarray, t: float) -> None:
        self.frames.append((t, pcm))


async def test_interrupt_stops_playback_within_one_frame():
    """Playback of a long reply: an interrupt leaves at most one more 20 ms frame out."""
    out = RecordingOutput()
    reply = [
        ReplyText("long", 1),
        *[BotAudioFrame(np.ones(1600, np.int16), 16000, 1, 1) for _ in range(50)],
        ReplyDone(1),
    ]
    playback = PlaybackStage(out)
    pipeline, events = _pipeline(ListSource(reply), Stage(), playback)
    run = asyncio.ensure_future(pipeline.run())
    for _ in range(400):
        if len(out.frames) >= 10:
            break
        await asyncio.sleep(0.005)
    pipeline.ctx.state.turn = 2  # the caller's new turn barges in
    written = len(out.frames)
    pipeline.stages[0].receive_control(Interrupt())
    await asyncio.sleep(0.2)
    assert len(out.frames) - written <= 1
    assert pipeline.ctx.state.bot_speaking is False
    pipeline.hang_up()
    await run
    interrupted = [e for e in events if e["type"] == "interrupted"]
    assert len(interrupted) == 1
    assert interrupted[0]["heard_ms"] >= 200 and interrupted[0]["dropped_ms"] > 0
    # paced: consecutive frames exactly 20 ms apart on the call clock
    ts = [t for t, _ in out.frames]
    assert np.allclose(np.diff(ts), 0.02)


async def test_fast_clock_keeps_the_real_time_schedule():
    """Event times under the fast clock equal the real-time ones; only the wall time shrinks."""

    async def one_run(clock: Clock) -> tuple[list[float], float]:
        sink = Collect()
        frames = [Transcript(str(i), True, i) for i in range(10)]
        ctx = CallContext(clock)
        pipeline = Pipeline(ctx, [ListSource(frames, gap=0.05), sink])
        stamps: list[float] = []

        class Stamp(Collect):
            async def process(self, frame: Frame) -> None:
                stamps.append(self.ctx.now())

        pipeline.stages[-1].__class__ = Stamp
        loop = asyncio.get_running_loop()
        start = loop.time()
        await pipeline.run()
        return stamps, loop.time() - start

    real, real_wall = await one_run(Clock())
    fast, fast_wall = await one_run(FastClock())
    assert len(real) == len(fast) == 10
    assert np.allclose(real, fast, atol=0.03)
    assert fast_wall < real_wall / 3
