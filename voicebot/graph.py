"""Stages, the bounded edges between them, and the pipeline that runs a call.

Queue policies (one per edge, chosen by whoever connects the stages):

* ``DROP_OLDEST`` - real-time audio: when full, the oldest droppable frame is
  discarded and counted; the producer never waits (the caller will not wait).
* ``BLOCK`` - text, events and synthesized audio: the producer waits for room
  (back-pressure; nothing of the bot's reply is lost).

Control frames bypass the queues entirely: ``Edge.put`` hands them straight to
the consuming stage, which reacts (cancels work, clears buffers) and passes them
on in the same loop iteration. An ``Interrupt`` therefore reaches playback
within microseconds, and every edge it crosses drops its queued flushable
frames (reply text, bot audio) on the way.
"""

from __future__ import annotations

import abc
import asyncio
import contextvars
import enum
import logging
from collections import deque
from collections.abc import Coroutine, Iterable
from typing import Any, NamedTuple

from voicebot.context import CallContext
from voicebot.events import CallEndedEvent, CallStartedEvent, ErrorEvent
from voicebot.frames import EndOfCall, EndOfStream, Frame, Interrupt
from voicebot.providers.current_call import current_call
from voicebot.runtime import loop_name

log = logging.getLogger(__name__)


class Overflow(enum.Enum):
    """What a full edge does with one more data frame: drop its oldest, or make the sender wait."""

    DROP_OLDEST = "drop_oldest"
    BLOCK = "block"


class Edge:
    """A bounded queue from one stage to the next."""

    def __init__(self, name: str, maxsize: int = 50, policy: Overflow = Overflow.BLOCK) -> None:
        if maxsize < 1:
            raise ValueError("edge maxsize must be >= 1")
        self.name = name
        self.maxsize = maxsize
        self.policy = policy
        self.consumer: Stage | None = None
        self.dropped = 0
        self.flushed = 0
        self._data: deque[Frame] = deque()
        self._control: deque[Frame] = deque()
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()
        self._reader_waiting = False

    def qsize(self) -> int:
        return len(self._data) + len(self._control)

    def empty(self) -> bool:
        return not self._data and not self._control

    @property
    def pending(self) -> bool:
        """Frames are queued and the consumer is waiting to take them (work is about to run)."""
        return self._reader_waiting and not self.empty()

    async def put(self, frame: Frame) -> None:
        if frame.control:
            self.put_control(frame)
            return
        while len(self._data) >= self.maxsize:
            if self.policy is Overflow.DROP_OLDEST and self._drop_oldest():
                break
            self._writable.clear()
            await self._writable.wait()
        self._data.append(frame)
        self._readable.set()

    def put_nowait(self, frame: Frame) -> bool:
        """Enqueue without waiting; False when a BLOCK edge is full."""
        if frame.control:
            self.put_control(frame)
            return True
        if len(self._data) >= self.maxsize and not (
            self.policy is Overflow.DROP_OLDEST and self._drop_oldest()
        ):
            return False
        self._data.append(frame)
        self._readable.set()
        return True

    def put_control(self, frame: Frame) -> None:
        if isinstance(frame, Interrupt):
            self.flush()
        if self.consumer is not None:
            self.consumer.receive_control(frame)
        else:
            self._control.append(frame)
            self._readable.set()

    def flush(self) -> int:
        """Drop queued flushable frames (the bot's reply); returns how many."""
        keep = [f for f in self._data if not f.flushable]
        n = len(self._data) - len(keep)
        if n:
            self._data = deque(keep)
            self.flushed += n
            self._writable.set()
        return n

    def _drop_oldest(self) -> bool:
        for i, f in enumerate(self._data):
            if f.droppable:
                del self._data[i]
                self.dropped += 1
                return True
        return False

    async def get(self) -> Frame:
        while True:
            if self._control:
                return self._control.popleft()
            if self._data:
                frame = self._data.popleft()
                self._writable.set()
                return frame
            self._readable.clear()
            self._reader_waiting = True
            try:
                await self._readable.wait()
            finally:
                self._reader_waiting = False

    def get_nowait(self) -> Frame | None:
        if self._control:
            return self._control.popleft()
        if self._data:
            self._writable.set()
            return self._data.popleft()
        return None


INTERRUPTED = object()


class Stage:
    """One step of the dataflow. Subclasses override ``process`` and the hooks.

    ``process`` handles one data frame and may ``push`` any number downstream.
    Control frames arrive through ``receive_control`` at any time, even while
    ``process`` is awaiting; work started with ``interruptible`` is cancelled
    by an ``Interrupt``.
    """

    name = "stage"
    ctx: CallContext
    """The call this stage serves; set by ``Pipeline`` before ``setup``."""

    def __init__(self) -> None:
        self.inbox: Edge | None = None
        self.outbox: Edge | None = None
        self._children: set[asyncio.Task[Any]] = set()
        self._task: asyncio.Task[None] | None = None

    # --- hooks -------------------------------------------------------------
    async def setup(self) -> None:
        """Prepare per-call resources (engines are shared and already loaded)."""

    async def process(self, frame: Frame) -> None:
        await self.push(frame)

    def on_interrupt(self, frame: Interrupt) -> None:
        """React to barge-in synchronously (clear buffers); children are cancelled."""

    async def on_end_of_stream(self) -> None:
        """Input is over: finish pending work before EndOfStream moves on."""

    async def teardown(self) -> None:
        """Release per-call resources; runs once however the call ended."""

    # --- plumbing ----------------------------------------------------------
    async def push(self, frame: Frame) -> None:
        if self.outbox is not None:
            await self.outbox.put(frame)

    def receive_control(self, frame: Frame) -> None:
        if isinstance(frame, Interrupt):
            for child in list(self._children):
                child.cancel()
            self.on_interrupt(frame)
        elif isinstance(frame, EndOfCall):
            for child in list(self._children):
                child.cancel()
            if self._task is not None and self._task is not asyncio.current_task():
                self._task.cancel()
        if self.outbox is not None:
            self.outbox.put_control(frame)

    async def interruptible(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Await ``coro`` as a child task; returns ``INTERRUPTED`` if barge-in cancelled it."""
        task = asyncio.get_running_loop().create_task(coro)
        self._children.add(task)
        try:
            return await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if task.cancelled() and not (current and current.cancelling()):
                return INTERRUPTED
            raise
        finally:
            self._children.discard(task)

    async def run(self) -> None:
        assert self.inbox is not None, f"{self.name} has no inbox"
        while True:
            frame = await self.inbox.get()
            if isinstance(frame, EndOfStream):
                await self.on_end_of_stream()
                await self.push(frame)
                return
            if frame.control:  # only on an edge without a consumer (tests)
                self.receive_control(frame)
                continue
            await self.process(frame)


class Source(Stage, abc.ABC):
    """The first stage: produces frames instead of reading an inbox."""

    name = "source"

    @abc.abstractmethod
    async def produce(self) -> None:
        """Push the call's input frames; returning means the input is over."""

    async def run(self) -> None:
        await self.produce()
        await self.push(EndOfStream())


class EdgeSpec(NamedTuple):
    """How many frames an edge holds and what a producer meets when it is full."""

    maxsize: int = 50
    policy: Overflow = Overflow.BLOCK


class Pipeline:
    """A chain of stages joined by edges; runs one call to its end.

    Either give the chain at once, ``Pipeline(ctx, [source, ..., sink])`` (with
    ``edges``, one ``EdgeSpec`` per pair in order; default ``EdgeSpec()``), or
    create it empty and ``connect`` stage to stage, source first: then the
    pipeline exists before its stages, and a stage can be built with
    ``pipeline.hang_up``.

    ``run`` returns the reason the call ended: ``"completed"`` (input drained),
    a hang-up reason, or ``"error"`` - a stage that raises ends the call with
    an ``error`` event; nothing hangs and nothing is swallowed silently.
    """

    def __init__(
        self,
        ctx: CallContext,
        stages: Iterable[Stage] | None = None,
        edges: Iterable[tuple[int, Overflow]] | None = None,
    ) -> None:
        self.ctx = ctx
        self.stages: list[Stage] = []
        self.edges: list[Edge] = []
        self.end_reason: str | None = None
        self._tasks: list[asyncio.Task[None]] = []
        if stages is None:
            return
        chain = list(stages)
        if len(chain) < 2:
            raise ValueError("a pipeline needs at least a source and a sink")
        specs = list(edges) if edges is not None else [EdgeSpec()] * (len(chain) - 1)
        if len(specs) != len(chain) - 1:
            raise ValueError("need one edge spec between each pair of stages")
        for up, down, spec in zip(chain[:-1], chain[1:], specs, strict=True):
            self.connect(up, down, spec)

    def connect(self, up: Stage, down: Stage, spec: tuple[int, Overflow] = EdgeSpec()) -> Edge:
        """Join ``up``'s output to ``down``'s input by a new edge of ``spec``.

        The first connection starts the chain at ``up``; each later one continues
        it from its last stage.
        """
        if self.stages and up is not self.stages[-1]:
            raise ValueError(
                f"cannot connect {up.name}->{down.name}: the chain ends at "
                f"{self.stages[-1].name} (connect stage to stage, source first)"
            )
        if down is up or down in self.stages:
            raise ValueError(
                f"cannot connect {up.name}->{down.name}: {down.name} is already in the pipeline"
            )
        if not self.stages:
            self._add(up)
        maxsize, policy = spec
        edge = Edge(f"{up.name}->{down.name}", maxsize, policy)
        edge.consumer = down
        up.outbox, down.inbox = edge, edge
        self.edges.append(edge)
        self._add(down)
        return edge

    def _add(self, stage: Stage) -> None:
        stage.ctx = self.ctx
        self.stages.append(stage)

    def idle(self) -> bool:
        """No stage is about to take a queued frame (the fast clock may skip ahead).

        Frames may still sit in edges whose consumer waits on the clock (playback
        paces itself) or on a full edge further down: that is idle too.
        """
        return not any(edge.pending for edge in self.edges)

    def hang_up(self, reason: str = "hangup") -> None:
        """End the call now: EndOfCall overtakes everything."""
        if self.end_reason is None:
            self.end_reason = reason
        self.stages[0].receive_control(EndOfCall(reason))
        for task in self._tasks:
            task.cancel()

    def stats(self) -> dict[str, Any]:
        return {
            "drops": {e.name: e.dropped for e in self.edges if e.dropped},
            "flushed": {e.name: e.flushed for e in self.edges if e.flushed},
        }

    async def run(self) -> str:
        if len(self.stages) < 2:
            raise ValueError("a pipeline needs at least a source and a sink")
        ctx = self.ctx
        ctx.clock.start(self.idle)
        ctx.lag.start()
        ctx.bus.emit(CallStartedEvent(transport=ctx.transport), t=0.0)
        try:
            for stage in self.stages:
                await stage.setup()
            # The stages' tasks (and the tasks they start) know their call: provider
            # requests are billed to it in the cost ledger.
            call_context = contextvars.copy_context()
            call_context.run(current_call.set, ctx.call_id)
            for stage in self.stages:
                stage._task = asyncio.get_running_loop().create_task(
                    stage.run(), name=f"{ctx.call_id}:{stage.name}", context=call_context.copy()
                )
                self._tasks.append(stage._task)
            await self._supervise()
        except Exception as exc:
            self._fail("pipeline", exc)
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            for stage in self.stages:
                try:
                    await stage.teardown()
                except Exception as exc:
                    log.exception("teardown of %s failed", stage.name)
                    self._fail(stage.name, exc)
            await ctx.lag.stop()
            await ctx.clock.close()
            stats = self.stats()
            ctx.bus.emit(
                CallEndedEvent(
                    reason=self.end_reason or "completed",
                    worst_loop_lag_ms=round(ctx.lag.worst * 1000, 2),
                    loop=loop_name(),
                    drops=stats["drops"],
                    flushed=stats["flushed"],
                )
            )
        return self.end_reason or "completed"

    async def _supervise(self) -> None:
        sink = self._tasks[-1]
        pending = set(self._tasks)
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task.cancelled():
                    continue
                exc = task.exception()
                if exc is not None:
                    stage = task.get_name().split(":", 1)[-1]
                    self._fail(stage, exc)
                    return
            if sink in done or self.end_reason is not None:
                return

    def _fail(self, stage: str, exc: BaseException) -> None:
        log.error("stage %s failed: %r", stage, exc, exc_info=exc)
        self.ctx.bus.emit(
            ErrorEvent(stage=stage, message=str(exc) or type(exc).__name__, kind=type(exc).__name__)
        )
        if self.end_reason is None:
            self.end_reason = "error"
        self.stages[0].receive_control(EndOfCall("error"))
