"""The playback stage: paced 20 ms frames of bot audio to the transport.

Playback keeps at most ``lookahead`` seconds of reply audio in its own buffer
and otherwise leaves it queued upstream (back-pressure), so a barge-in has
little to throw away. Frames go out at ``start + k * 20 ms`` on the call clock
- paced against a fixed start, so pacing error never accumulates.

While the VAD holds playback (``CallState.hold_playback``: the caller may be
barging in), the ticks go on but no frame is sent; the reply resumes where it
stopped if it was no turn, and an ``Interrupt`` drops it if it was.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Protocol

import numpy as np

from voicebot.audio.framer import Framer
from voicebot.events import (
    InterruptedEvent,
    PlaybackHeldEvent,
    PlaybackResumedEvent,
    PlaybackStartedEvent,
    PlaybackStoppedEvent,
)
from voicebot.frames import BotAudioFrame, EndOfStream, Frame, Interrupt, ReplyDone, ReplyText
from voicebot.graph import Stage


class AudioOutput(Protocol):
    """Where paced bot audio goes: a WAV file now, a WebRTC track later."""

    sample_rate: int
    channels: int

    def write(self, pcm: np.ndarray, t: float) -> None:
        """Play one 20 ms frame that starts at call time ``t``."""


_DONE = "done"
MAX_HOLD_S = 1.0  # the VAD decides within 0.5 s; a longer hold means its input stopped


class PlaybackStage(Stage):
    name = "playback"

    def __init__(self, output: AudioOutput, frame_ms: int = 20, lookahead: float = 0.4) -> None:
        super().__init__()
        self.output = output
        self.frame_s = frame_ms / 1000
        self.frame_samples = output.sample_rate * frame_ms // 1000
        self.lookahead_frames = max(1, int(lookahead / self.frame_s))
        self._framer = Framer(self.frame_samples, output.channels)
        # (turn, pcm) for audio, (turn, _DONE) for the end of a reply
        self._buffer: deque[tuple[int, np.ndarray | str]] = deque()
        self._buffered = 0
        self._turn: int | None = None  # the reply now playing
        self._played: dict[int, int] = {}
        self._reply: dict[int, ReplyText] = {}
        self._next_tick: float | None = None
        self._eos = False
        self._stale_below = 0  # replies to turns before a barge-in are not played
        self._held_since: float | None = None  # call time the VAD's hold began
        self._hold_spent = False  # this hold lasted MAX_HOLD_S: not obeyed any more

    # --- input --------------------------------------------------------------
    def _take(self, frame: Frame) -> None:
        if getattr(frame, "turn", self._stale_below) < self._stale_below:
            return
        if isinstance(frame, BotAudioFrame):
            out = self.output
            if frame.sample_rate != out.sample_rate or frame.channels != out.channels:
                raise ValueError(
                    f"playback needs {self.output.sample_rate} Hz x{self.output.channels}, got "
                    f"{frame.sample_rate} Hz x{frame.channels} (add a resample_out stage)"
                )
            for pcm in self._framer.push(frame.pcm):
                self._buffer.append((frame.turn, pcm))
                self._buffered += 1
        elif isinstance(frame, ReplyDone):
            for pcm in self._framer.flush():
                self._buffer.append((frame.turn, pcm))
                self._buffered += 1
            self._buffer.append((frame.turn, _DONE))
        elif isinstance(frame, ReplyText):
            self._reply[frame.turn] = frame
        elif isinstance(frame, EndOfStream):
            self._eos = True

    def _fill(self) -> None:
        assert self.inbox is not None
        while not self._eos and self._buffered < self.lookahead_frames:
            frame = self.inbox.get_nowait()
            if frame is None:
                return
            self._take(frame)

    # --- loop ---------------------------------------------------------------
    async def run(self) -> None:
        assert self.inbox is not None
        clock = self.ctx.clock
        while True:
            self._fill()
            if not self._buffer:
                if self._eos:
                    return
                self._next_tick = None
                self._take(await self.inbox.get())
                continue
            if self._next_tick is None:
                self._next_tick = clock.now()
            await clock.sleep_until(self._next_tick)
            self._play_one(self._next_tick)
            self._next_tick += self.frame_s
            if not self._buffer:
                # Wait out the frame just handed over before calling the bot quiet.
                await clock.sleep_until(self._next_tick)
                self._fill()

    def _play_one(self, t: float) -> None:
        if self._turn is not None and self._hold(t):
            return
        while self._buffer:
            turn, item = self._buffer.popleft()
            if isinstance(item, str):
                self._stopped(turn, t)
                continue
            self._buffered -= 1
            if self._turn != turn:
                self._started(turn, t)
            self._played[turn] = self._played.get(turn, 0) + 1
            self.output.write(item, t)
            return

    def _hold(self, t: float) -> bool:
        """Whether the VAD holds the reply now playing (the events mark its start and end).
        A hold longer than ``MAX_HOLD_S`` is let go (the caller's audio stopped coming, so
        the VAD cannot decide): the reply plays on until the VAD lets go and holds anew."""
        assert self._turn is not None
        state = self.ctx.state
        held = state.hold_playback and state.barge_in  # a reply the caller may barge in on
        if not held:
            self._hold_spent = False
        elif not self._hold_spent:
            if self._held_since is None:
                self._held_since = t
                self.ctx.bus.emit(PlaybackHeldEvent(turn=self._turn), t=t)
            if t - self._held_since < MAX_HOLD_S:
                return True
            self._hold_spent = True
        if self._held_since is not None:
            held_ms = round((t - self._held_since) * 1000)
            self._held_since = None
            self.ctx.bus.emit(PlaybackResumedEvent(turn=self._turn, held_ms=held_ms), t=t)
        return False

    def _started(self, turn: int, t: float) -> None:
        state = self.ctx.state
        # a hold is the VAD's word on the reply it heard the caller over; it sets it
        # again for this one at its next frame if the caller is still at it
        state.hold_playback = False
        self._turn = turn
        reply = self._reply.get(turn)
        state.bot_speaking = True
        state.barge_in = reply.barge_in if reply else True
        self.ctx.bus.emit(PlaybackStartedEvent(turn=turn), t=t)
        self.ctx.ledger.mark(turn, "first_playback", t)

    def _stopped(self, turn: int, t: float) -> None:
        if self._turn == turn:
            self._turn = None
            self.ctx.state.bot_speaking = False
            played = self._played.get(turn, 0) * self.frame_s
            self.ctx.bus.emit(PlaybackStoppedEvent(turn=turn, played_ms=round(played * 1000)), t=t)
        self._reply.pop(turn, None)

    def on_interrupt(self, frame: Interrupt) -> None:
        dropped = self._buffered
        self._stale_below = self.ctx.state.turn
        self._buffer.clear()
        self._buffered = 0
        self._framer.flush(pad=False)
        turn, self._turn = self._turn, None
        self._held_since = None
        self.ctx.state.bot_speaking = False
        if turn is None:
            return
        heard = self._played.get(turn, 0) * self.frame_s
        reply = self._reply.pop(turn, None)
        self.ctx.bus.emit(
            InterruptedEvent(
                turn=turn,
                heard_ms=round(heard * 1000),
                dropped_ms=round(dropped * self.frame_s * 1000),
                text=reply.text if reply else "",
            )
        )

    async def teardown(self) -> None:
        close = getattr(self.output, "close", None)
        if close is not None:
            result = close()
            if asyncio.iscoroutine(result):
                await result
