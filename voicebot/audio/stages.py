"""Graph stages for the audio front end: resampling, echo cancellation, noise suppression, VAD."""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor

import numpy as np

from voicebot.audio.denoise import Denoiser
from voicebot.audio.echo import BLOCK, EchoCanceller, Reference
from voicebot.audio.framer import Framer
from voicebot.audio.resample import StreamResampler
from voicebot.audio.vad import Endpointer, SpeechEnd, SpeechStart, Voice
from voicebot.config import VadSettings
from voicebot.events import SpeechStartedEvent, SpeechStoppedEvent
from voicebot.frames import (
    AudioFrame,
    BotAudioFrame,
    Frame,
    Interrupt,
    SpeechStarted,
    SpeechStopped,
)
from voicebot.graph import Stage


class ResampleStage(Stage):
    """Converts caller audio (``AudioFrame``) or bot audio (``BotAudioFrame``) to one format.

    The resampler is created on the first frame (the input format is known
    then) and keeps its filter state across frames, so frame edges are
    seamless. On barge-in the bot-side resampler drops its tail.
    """

    def __init__(self, rate: int, channels: int, *, bot: bool = False) -> None:
        super().__init__()
        self.name = "resample_out" if bot else "resample_in"
        self.rate = rate
        self.channels = channels
        self.bot = bot
        self._resampler: StreamResampler | None = None
        self._format: tuple[int, int] | None = None

    def _convert(self, pcm: np.ndarray, rate: int, channels: int) -> np.ndarray:
        if (rate, channels) != self._format:
            self._format = (rate, channels)
            self._resampler = StreamResampler(rate, channels, self.rate, self.channels)
        assert self._resampler is not None
        return self._resampler.process(pcm)

    async def process(self, frame: Frame) -> None:
        if self.bot and isinstance(frame, BotAudioFrame):
            pcm = self._convert(frame.pcm, frame.sample_rate, frame.channels)
            if len(pcm):
                await self.push(BotAudioFrame(pcm, self.rate, self.channels, frame.turn))
        elif not self.bot and isinstance(frame, AudioFrame):
            pcm = self._convert(frame.pcm, frame.sample_rate, frame.channels)
            if len(pcm):
                await self.push(AudioFrame(pcm, self.rate, self.channels, frame.pts, frame.voiced))
        else:
            await self.push(frame)

    def on_interrupt(self, frame: Interrupt) -> None:
        if self.bot:
            self._resampler, self._format = None, None

    async def teardown(self) -> None:
        # libswresample keeps worker threads per context: release them with the call.
        self._resampler, self._format = None, None

    async def on_end_of_stream(self) -> None:
        if self._resampler is None:
            return
        tail = self._resampler.flush()
        if len(tail) and self.bot:
            await self.push(BotAudioFrame(tail, self.rate, self.channels))


class DenoiseStage(Stage):
    """Noise suppression + automatic gain for noisy (phone) audio; 16 kHz mono in and out."""

    name = "denoise"

    def __init__(self, level: int = 2, auto_gain_dbfs: int = 0) -> None:
        super().__init__()
        self.level = level
        self.auto_gain_dbfs = auto_gain_dbfs
        self._denoiser: Denoiser | None = None

    async def setup(self) -> None:
        self._denoiser = Denoiser(16000, self.level, self.auto_gain_dbfs)

    async def process(self, frame: Frame) -> None:
        if isinstance(frame, AudioFrame) and self._denoiser is not None:
            frame.pcm = self._denoiser.process(frame.pcm)
        await self.push(frame)


class EchoCancelStage(Stage):
    """Cancels the bot's own voice, echoed back by the line, from 16 kHz mono caller audio.

    ``canceller`` gets its reference from playback (``EchoReference``); this stage
    runs the caller's side in 10 ms blocks and forwards the cleaned audio. The
    reference blocks are taken on the event loop (playback files them there);
    AEC3 itself runs inline (calls use that) or on ``executor``, one job per
    incoming frame, so a call's blocks are processed one at a time and in order.
    Inline is faster: livekit's FFI holds the GIL for most of the work, and 16
    calls' cancellers inline cost the loop p99 3 ms of lag while on two worker
    threads their frames queue for 0.4 s (``voicebot bench echo``).
    """

    name = "echo_cancel"

    def __init__(self, canceller: EchoCanceller, executor: Executor | None = None) -> None:
        super().__init__()
        self.canceller = canceller
        self.executor = executor
        self._framer = Framer(BLOCK)
        self._next_pts: float | None = None

    async def process(self, frame: Frame) -> None:
        if not isinstance(frame, AudioFrame):
            await self.push(frame)
            return
        if frame.sample_rate != 16000 or frame.channels != 1:
            raise ValueError(
                f"echo cancellation needs 16000 Hz mono, got {frame.sample_rate} Hz "
                f"x{frame.channels} (put a resample stage in front)"
            )
        if self._next_pts is None:
            self._next_pts = frame.pts
        pts = self._next_pts
        work = []
        for block in self._framer.push(frame.pcm):
            work.append((block, self.canceller.reference_for(self._next_pts)))
            self._next_pts += BLOCK / 16000
        if not work:
            return
        if self.executor is None:
            pcm = self._cancel(work)
        else:
            loop = asyncio.get_running_loop()
            with self.ctx.clock.busy():  # a fast clock waits for it
                pcm = await loop.run_in_executor(self.executor, self._cancel, work)
        await self.push(AudioFrame(pcm, 16000, 1, pts, frame.voiced))

    def _cancel(self, work: list[tuple[np.ndarray, Reference]]) -> np.ndarray:
        return np.concatenate([self.canceller.cancel(near, ref) for near, ref in work])


HOLD_RELEASE_MS = 40  # a held reply plays on after this much unvoiced audio
# Holds that were no turn, per reply, after which a noisy line lets the reply play on
# (barge-in then waits for min_speech_ms, as without the hold)
MAX_FALSE_HOLDS = 3


class VadStage(Stage):
    """Endpointing: forwards caller audio only while the caller speaks, framed by turn events.

    Emits ``SpeechStarted`` (with the pre-roll audio right behind it), voiced
    audio, and ``SpeechStopped`` after ``end_of_turn_ms`` of silence. When the
    caller starts speaking while the bot talks (and the prompt allows it), it
    sends an ``Interrupt`` downstream: that is barge-in. With an ``echo``
    canceller whose residual echo is loud (``EchoCanceller.echo_loud``), a
    barge-in needs ``echo_gate_ms`` more voiced audio first, so the bot's own
    echo does not interrupt it.

    With ``hold`` (``vad.hold_on_onset``), the bot's audio is held (``CallState.hold_playback``)
    from the first voiced frame over a reply that allows barge-in while the
    endpointer has not decided and the caller has not been quiet for
    ``HOLD_RELEASE_MS`` (webrtcvad's verdicts, which already trail the sound by its
    overhang): a turn interrupts the reply, a click or a cough lets it play on
    after a short pause. After ``MAX_FALSE_HOLDS`` such pauses in one reply (a
    noisy line) the rest of it is not held. The caller hears the bot stop a frame
    or two after they began, not ``min_speech_ms`` later.
    """

    name = "vad"

    def __init__(
        self,
        config: VadSettings | None = None,
        echo: EchoCanceller | None = None,
        echo_gate_ms: int = 60,
        *,
        hold: bool = False,
    ) -> None:
        super().__init__()
        self.config = config or VadSettings()
        self.hold = hold
        self.echo = echo
        self._gate_frames = -(-echo_gate_ms // self.config.frame_ms)
        self._pending_voiced: int | None = None  # voiced frames a gated barge-in still needs
        self.frame_samples = self.config.sample_rate * self.config.frame_ms // 1000
        self._endpointer = Endpointer(self.config)
        self._framer = Framer(self.frame_samples)
        self._next_pts: float | None = None
        self._frame_s = self.config.frame_ms / 1000
        self._quiet_frames = 0  # unvoiced frames in a row
        self._false_holds = 0  # holds in this reply that were no turn
        self._hold_release = -(-HOLD_RELEASE_MS // self.config.frame_ms)

    async def process(self, frame: Frame) -> None:
        if not isinstance(frame, AudioFrame):
            await self.push(frame)
            return
        if frame.sample_rate != self.config.sample_rate or frame.channels != 1:
            raise ValueError(
                f"VAD needs {self.config.sample_rate} Hz mono, got {frame.sample_rate} Hz "
                f"x{frame.channels} (put a resample stage in front)"
            )
        if self._next_pts is None:
            self._next_pts = frame.pts
        for chunk in self._framer.push(frame.pcm):
            pts = self._next_pts
            self._next_pts = pts + self._frame_s
            for event in self._endpointer.process(chunk, pts):
                await self._handle(event)
            self._hold()

    async def on_end_of_stream(self) -> None:
        for event in self._endpointer.finish(self._next_pts or 0.0):
            await self._handle(event)
        self.ctx.state.hold_playback = False

    def _hold(self) -> None:
        """Hold the reply while a possible barge-in is undecided (a candidate turn, or a
        turn the echo gate still holds back)."""
        if not self.hold:
            return
        state = self.ctx.state
        if not state.bot_speaking:
            self._false_holds = 0  # a new reply starts afresh
        self._quiet_frames = 0 if self._endpointer.frame_voiced else self._quiet_frames + 1
        undecided = self._endpointer.state == "candidate" or self._pending_voiced is not None
        hold = (
            undecided
            and self._quiet_frames < self._hold_release
            and state.bot_speaking
            and state.barge_in
            and self._false_holds < MAX_FALSE_HOLDS
        )
        if state.hold_playback and not hold and state.bot_speaking:
            self._false_holds += 1  # released, and the reply plays on: it was no turn
        state.hold_playback = hold

    async def _handle(self, event: object) -> None:
        ctx = self.ctx
        rate = self.config.sample_rate
        if isinstance(event, Voice):
            if event.voiced and self._pending_voiced is not None:
                self._pending_voiced -= 1
                if self._pending_voiced <= 0:
                    self._pending_voiced = None
                    self._barge_in()
            await self.push(AudioFrame(event.frame, rate, 1, event.pts, event.voiced))
        elif isinstance(event, SpeechStart):
            ctx.state.turn += 1
            turn = ctx.state.turn
            ctx.bus.emit(SpeechStartedEvent(turn=turn), t=event.t)
            if self.echo is not None and self.echo.echo_loud and self._gate_frames:
                self._pending_voiced = self._gate_frames
            else:
                self._barge_in()
            await self.push(SpeechStarted(event.t, turn))
            for pcm, pts in event.preroll:
                await self.push(AudioFrame(pcm, rate, 1, pts, True))
        elif isinstance(event, SpeechEnd):
            self._pending_voiced = None
            turn = ctx.state.turn
            ctx.bus.emit(
                SpeechStoppedEvent(turn=turn, last_voiced=round(event.last_voiced, 4)), t=event.t
            )
            ctx.ledger.mark(turn, "last_voiced", event.last_voiced)
            ctx.ledger.mark(turn, "end_of_turn", event.t)
            await self.push(SpeechStopped(event.t, event.last_voiced, turn))

    def _barge_in(self) -> None:
        state = self.ctx.state
        if state.bot_speaking and state.barge_in:
            self.receive_control(Interrupt("barge_in", self.ctx.now()))
