"""The ASR stage: turns a caller turn's audio into partial and final transcripts."""

from __future__ import annotations

import asyncio
import logging

import numpy as np

from voicebot.asr.base import AsrEngine, AsrResult, AsrSession
from voicebot.events import TranscriptEvent
from voicebot.frames import (
    AudioFrame,
    Frame,
    SecondPass,
    SpeechStarted,
    SpeechStopped,
    Transcript,
)
from voicebot.graph import Stage

log = logging.getLogger(__name__)

# A partial is only worth its decode while the caller is still talking.
PARTIAL_MAX_SILENCE = 0.2


def unsure_words(result: AsrResult, below: float) -> tuple[int, ...]:
    """Indexes (in ``result.text.split()``) of the words heard with a probability under
    ``below``; none where the engine gives no word probabilities."""
    if below <= 0.0 or len(result.words) != len(result.text.split()):
        return ()
    return tuple(i for i, w in enumerate(result.words) if w.probability < below)


class AsrStage(Stage):
    """Feeds the engine session between ``SpeechStarted`` and ``SpeechStopped``.

    Partials are decoded in the background every ``partial_interval`` seconds
    of audio while the caller is voicing, at most one at a time, so audio never
    waits for a decode. The final decode runs when the VAD ends the turn; a
    partial still in flight then is awaited rather than run alongside (two
    decodes would share the same two cores).
    """

    name = "asr"

    def __init__(
        self,
        engine: AsrEngine,
        language: str | None,
        partial_interval_ms: int = 300,
        context: bool = False,
        hints: bool = False,
        unsure_below: float = 0.0,
        second_pass: AsrEngine | None = None,
    ):
        super().__init__()
        self.engine = engine
        self.language = language
        self.context = context  # pass the dialog's last question to the recogniser
        self.hints = hints  # ... and how callers answer it ("Half past seven. 8 pm.")
        self.unsure_below = unsure_below  # word probability under which a word is unsure
        self.second_pass = second_pass  # recognises a turn again if it matched nothing
        self._audio: list[np.ndarray] = []  # the turn's audio, kept for the second pass
        self._context: str | None = None
        self.partial_interval = partial_interval_ms / 1000
        self._session: AsrSession | None = None
        self._turn = 0
        self._next_partial = 0.0
        self._last_voiced = 0.0
        self._partial: asyncio.Task[None] | None = None
        self._last_partial_text = ""

    async def process(self, frame: Frame) -> None:
        if isinstance(frame, AudioFrame):
            if self._session is not None:
                self._feed(frame)
            return
        if isinstance(frame, SpeechStarted):
            context = self.ctx.state.asr_context if self.context else None
            if context and self.hints and self.ctx.state.asr_hint:
                context = f"{context} {self.ctx.state.asr_hint}"
            self._session = self.engine.session(self.language, context=context)
            self._context = context
            self._audio = []
            self._turn = frame.turn
            self._next_partial = self.partial_interval
            self._last_partial_text = ""
            await self.push(frame)
        elif isinstance(frame, SpeechStopped):
            await self.push(frame)
            await self._finish(frame.turn)
        else:
            await self.push(frame)

    def _feed(self, frame: AudioFrame) -> None:
        assert self._session is not None
        audio = frame.pcm.astype(np.float32) * (1 / 32768)
        self._session.feed(audio)
        if self.second_pass is not None:
            self._audio.append(audio)
        if frame.voiced:
            self._last_voiced = frame.end
        if (
            self.partial_interval > 0
            and self._session.duration >= self._next_partial
            and (self._partial is None or self._partial.done())
            and frame.end - self._last_voiced <= PARTIAL_MAX_SILENCE
        ):
            self._next_partial = self._session.duration + self.partial_interval
            self._partial = asyncio.get_running_loop().create_task(
                self._run_partial(self._session, self._turn)
            )
            self._children.add(self._partial)
            self._partial.add_done_callback(self._children.discard)

    async def _run_partial(self, session: AsrSession, turn: int) -> None:
        with self.ctx.clock.busy():
            result = await session.partial()
        if session is not self._session or not result.text:
            return  # the turn ended meanwhile; its final transcript supersedes this
        if result.text == self._last_partial_text:
            return
        self._last_partial_text = result.text
        self.ctx.bus.emit(TranscriptEvent(final=False, text=result.text, turn=turn))
        await self.push(Transcript(result.text, False, turn, result.language))

    async def _finish(self, turn: int) -> None:
        session, self._session = self._session, None
        if session is None:
            return
        if self._partial is not None and not self._partial.done():
            try:
                await self._partial
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise
        with self.ctx.clock.busy():
            result: AsrResult = await session.finish()
        now = self.ctx.now()
        self.ctx.ledger.mark(turn, "final_transcript", now)
        self.ctx.bus.emit(_final_event(result, turn, result.engine or None), t=now)
        unsure = unsure_words(result, self.unsure_below)
        again = self._second_pass(turn) if self.second_pass is not None else None
        await self.push(
            Transcript(result.text, True, turn, result.language, unsure=unsure, second_pass=again)
        )

    def _second_pass(self, turn: int) -> SecondPass:
        """The turn's audio, recognised again by the second-pass engine when called."""
        engine, context = self.second_pass, self._context
        assert engine is not None
        audio = np.concatenate(self._audio) if self._audio else np.zeros(0, np.float32)
        self._audio = []

        async def again() -> tuple[str, tuple[int, ...]]:
            with self.ctx.clock.busy():
                result = await engine.transcribe(audio, self.language, context=context)
            self.ctx.bus.emit(_final_event(result, turn, "second_pass"))
            return result.text, unsure_words(result, self.unsure_below)

        return again

    async def on_end_of_stream(self) -> None:
        if self._session is not None:
            await self._finish(self._turn)


def _final_event(result: AsrResult, turn: int, engine: str | None) -> TranscriptEvent:
    """The ``transcript`` event of a final result."""
    return TranscriptEvent(
        final=True,
        text=result.text,
        turn=turn,
        language=result.language,
        decode_ms=round(result.decode_ms, 1),
        engine=engine,
    )
