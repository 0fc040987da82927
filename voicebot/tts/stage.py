"""The TTS stage: speaks reply text clause by clause, audio out as soon as it exists."""

from __future__ import annotations

from voicebot.events import TtsFirstAudioEvent
from voicebot.frames import BotAudioFrame, Frame, ReplyDone, ReplyText
from voicebot.graph import Stage
from voicebot.tts.base import TtsEngine
from voicebot.tts.split import split_clauses

# Piper needs ~30 ms + ~2.3 ms per character for a clause (measured on this
# 2-core machine), and a clause is its smallest unit of output: keeping the
# first clause short ("Sure.", "You said:") keeps first audio under ~100 ms.
FIRST_MIN_CHARS = 4
FIRST_MAX_CHARS = 40


class TtsStage(Stage):
    """Synthesizes each ``ReplyText`` as an interruptible child task.

    Clauses are synthesized one after another; the first clause's first chunk
    goes downstream before the next clause is started, which is what makes
    time-to-first-audio independent of the reply's length. Barge-in cancels
    the synthesis in flight.
    """

    name = "tts"

    def __init__(self, engine: TtsEngine) -> None:
        super().__init__()
        self.engine = engine

    async def process(self, frame: Frame) -> None:
        if isinstance(frame, ReplyText):
            await self.interruptible(self._speak(frame))
        else:
            await self.push(frame)

    async def _speak(self, reply: ReplyText) -> None:
        first = True
        rate = self.engine.sample_rate
        clock = self.ctx.clock
        await self.push(reply)  # playback learns the reply's text and barge-in flag
        for clause in split_clauses(reply.text, FIRST_MIN_CHARS, first_max_chars=FIRST_MAX_CHARS):
            chunks = self.engine.synthesize(clause)
            try:
                while True:
                    with clock.busy():
                        try:
                            chunk = await anext(chunks)
                        except StopAsyncIteration:
                            break
                    if first:
                        first = False
                        now = self.ctx.now()
                        self.ctx.ledger.mark(reply.turn, "tts_first_audio", now)
                        self.ctx.bus.emit(TtsFirstAudioEvent(turn=reply.turn), t=now)
                    await self.push(BotAudioFrame(chunk, rate, 1, reply.turn))
            finally:
                await chunks.aclose()
        await self.push(ReplyDone(reply.turn))
