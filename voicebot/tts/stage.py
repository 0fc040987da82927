"""The TTS stage: speaks reply text clause by clause, audio out as soon as it exists."""

from __future__ import annotations

from voicebot.frames import BotAudioFrame, Frame, ReplyDone, ReplyText
from voicebot.graph import Stage
from voicebot.tts.base import TtsEngine
from voicebot.tts.split import split_clauses


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
        for clause in split_clauses(reply.text):
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
                        self.ctx.bus.emit("tts_first_audio", t=now, turn=reply.turn)
                    await self.push(BotAudioFrame(chunk, rate, 1, reply.turn))
            finally:
                await chunks.aclose()  # type: ignore[attr-defined]
        await self.push(ReplyDone(reply.turn))
