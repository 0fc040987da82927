"""Dialog-aware recognition: the bot's last question reaches the recogniser as context.

The dialog stage writes what it asked to the call state; the ASR stage hands it to the
engine with each new turn (``asr.context: prompt``); Whisper conditions on it as its
previous text; a provider gets it as the transcription ``prompt``.
"""

from __future__ import annotations

import asyncio

import numpy as np

from tests.support.paths import RESTAURANT_PIPELINE
from voicebot.asr.base import AsrEngine, AsrResult, AsrSession
from voicebot.asr.stage import AsrStage
from voicebot.asr.whisper import WhisperEngine
from voicebot.clock import FastClock
from voicebot.context import CallContext
from voicebot.frames import AudioFrame, Frame, SpeechStarted, SpeechStopped, Transcript
from voicebot.graph import Pipeline, Source, Stage
from voicebot.samples import speak


class Recording(AsrEngine):
    name = "recording"

    def __init__(self) -> None:
        self.contexts: list[str | None] = []

    def session(self, language: str | None = None, *, context: str | None = None) -> AsrSession:
        self.contexts.append(context)
        return _Session(context)

    async def transcribe(
        self, audio: np.ndarray, language: str | None = None, *, context: str | None = None
    ) -> AsrResult:
        return AsrResult(context or "")


class _Session(AsrSession):
    def __init__(self, context: str | None) -> None:
        self.context = context
        self.samples = 0

    def feed(self, audio: np.ndarray) -> None:
        self.samples += len(audio)

    @property
    def duration(self) -> float:
        return self.samples / 16000

    async def partial(self) -> AsrResult:
        return AsrResult("")

    async def finish(self) -> AsrResult:
        return AsrResult(f"heard with {self.context!r}")


class Turns(Source):
    """Two caller turns; before the second the dialog "asked" something."""

    async def produce(self) -> None:
        for turn, question in ((1, None), (2, "At what time?")):
            self.ctx.state.asr_context = question
            self.ctx.state.asr_hint = "Half past seven." if question else None
            await self.push(SpeechStarted(self.ctx.now(), turn))
            pcm = np.zeros(320, np.int16)
            for k in range(5):
                await self.push(AudioFrame(pcm, 16000, 1, self.ctx.now() + k * 0.02, True))
            await self.push(SpeechStopped(self.ctx.now(), self.ctx.now(), turn))
            for _ in range(20):  # let the turn be taken up before the bot "asks" again
                await asyncio.sleep(0)


class Finals(Stage):
    name = "sink"

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []

    async def process(self, frame: Frame) -> None:
        if isinstance(frame, Transcript) and frame.final:
            self.texts.append(frame.text)


async def _run(context: bool, hints: bool = False) -> tuple[list[str | None], list[str]]:
    clock = FastClock()
    ctx = CallContext(clock)
    engine = Recording()
    sink = Finals()
    asr = AsrStage(engine, "en", 0, context=context, hints=hints)
    pipeline = Pipeline(ctx, [Turns(), asr, sink])
    await asyncio.wait_for(pipeline.run(), 20)
    return engine.contexts, sink.texts


async def test_the_asr_stage_passes_the_dialogs_question_only_when_asked_to() -> None:
    contexts, texts = await _run(context=True)
    assert contexts == [None, "At what time?"]
    assert texts == ["heard with None", "heard with 'At what time?'"]
    contexts, _ = await _run(context=False)
    assert contexts == [None, None]


async def test_with_hints_the_recogniser_also_reads_how_callers_answer() -> None:
    contexts, _ = await _run(context=True, hints=True)
    assert contexts == [None, "At what time? Half past seven."]


def test_whisper_puts_the_context_before_the_transcript() -> None:
    engine = WhisperEngine("tiny.en")
    shared = engine.shared
    shared.load()
    tok, plain, _ = shared.tokenizer(None)
    _, prompted, _ = shared.tokenizer(None, "At what time?")
    assert tok.sot_prev not in plain
    assert prompted[0] == tok.sot_prev
    assert prompted[-len(plain) :] == plain  # then the usual start of transcript
    assert tok.decode(prompted[1 : -len(plain)]).strip() == "At what time?"


async def test_context_helps_whisper_read_an_answer_in_its_light() -> None:
    """Measured on the bundled voice: "eight p m" alone is read as "a"; after "At what
    time?" as "8 P" - the matcher reads that as 20:00."""
    from voicebot.nlu.normalize import normalize

    audio = speak("eight p m", "en").astype(np.float32) / 32768
    engine = WhisperEngine("tiny.en")
    with_context = await engine.transcribe(audio, "en", context="At what time?")
    assert "8" in normalize(with_context.text, "en").split()


def test_the_conversation_offers_its_last_question() -> None:

    from voicebot.config import load_pipeline
    from voicebot.dialog.bot import load_bot
    from voicebot.dialog.flow import Conversation
    from voicebot.dialog.outcomes import MemoryOutcomeStore

    loaded = load_bot(load_pipeline(RESTAURANT_PIPELINE))
    conv = Conversation(loaded.bot, loaded.matcher("en"), MemoryOutcomeStore(), call_id="c")
    assert conv.asr_context() is None
    asyncio.run(conv.start())
    assert conv.asr_context() == "How can I help you?"
    asyncio.run(conv.hear("a table for two please"))
    assert conv.asr_context() == "On which day would you like to come?"


def test_the_conversation_offers_how_callers_answer_its_question() -> None:
    from voicebot.config import load_pipeline
    from voicebot.dialog.bot import load_bot
    from voicebot.dialog.flow import Conversation
    from voicebot.dialog.outcomes import MemoryOutcomeStore

    loaded = load_bot(load_pipeline(RESTAURANT_PIPELINE))
    conv = Conversation(loaded.bot, loaded.matcher("en"), MemoryOutcomeStore(), call_id="c")
    asyncio.run(conv.start())
    assert conv.asr_hint() is None  # "How can I help you?" collects no value
    asyncio.run(conv.hear("a table for two please"))
    assert conv.asr_hint() == "Friday. Tomorrow. Saturday the 12th."  # the day slot's type
    asyncio.run(conv.hear("friday"))
    assert conv.asr_hint() == "Half past seven. Quarter to eight. 8 pm."
    de = Conversation(
        loaded.bot, loaded.matcher("de"), MemoryOutcomeStore(), call_id="d", language="de"
    )
    de.place("ask_party_size", {})
    assert de.asr_hint() == "Vier Personen. Zu zweit."
    asyncio.run(conv.hear("bye"))
    assert conv.ended and conv.asr_hint() is None
