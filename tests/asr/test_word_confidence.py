"""Recogniser confidence: word probabilities from Whisper, unsure words, the second pass.

Real engines throughout: the bundled voice speaks, Whisper decodes.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from voicebot.asr.stage import AsrStage
from voicebot.asr.whisper import WhisperEngine, heard_words
from voicebot.clock import FastClock
from voicebot.context import CallContext
from voicebot.frames import AudioFrame, Frame, SpeechStarted, SpeechStopped, Transcript
from voicebot.graph import Pipeline, Source, Stage
from voicebot.samples import speak

SENTENCE = "A table for four on Friday at half past seven."


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return speak(SENTENCE, "en")


def test_a_final_decode_gives_each_word_its_probability(speech: np.ndarray) -> None:
    engine = WhisperEngine("tiny.en")
    result = asyncio.run(engine.transcribe(speech, "en", context="How can I help you?"))
    assert result.text
    assert [w.text for w in result.words] == result.text.split()
    assert all(0.0 < w.probability <= 1.0 for w in result.words)
    # clear synthetic speech: most words are heard with some certainty
    assert np.median([w.probability for w in result.words]) > 0.5
    partial = engine.decode(speech.astype(np.float32) / 32768, "en", words=False)
    assert partial.text and partial.words == ()  # partials skip the word probabilities


def test_a_word_is_as_sure_as_its_least_sure_token_punctuation_aside() -> None:
    words = heard_words(
        [" Fri", "day", ",", " half", " past", " 7", "."],
        [0.9, 0.6, 0.1, 0.8, 0.95, 0.5, 0.2],
        "Friday, half past 7.",
    )
    assert words is not None
    assert [(w.text, w.probability) for w in words] == [
        ("Friday,", 0.6),
        ("half", 0.8),
        ("past", 0.95),
        ("7.", 0.5),
    ]
    # a repeat collapse_repeats dropped: the words kept are found in order
    kept = heard_words([" yes", " yes", " please"], [0.9, 0.4, 0.7], "yes please")
    assert kept is not None and [w.probability for w in kept] == [0.9, 0.7]
    assert heard_words([" yes"], [0.9], "no") is None


class _Turn(Source):
    def __init__(self, pcm: np.ndarray) -> None:
        super().__init__()
        self.pcm = pcm

    async def produce(self) -> None:
        self.ctx.state.asr_context = "How can I help you?"
        await self.push(SpeechStarted(self.ctx.now(), 1))
        for k in range(0, len(self.pcm), 320):
            await self.push(AudioFrame(self.pcm[k : k + 320], 16000, 1, k / 16000, True))
        await self.push(SpeechStopped(self.ctx.now(), self.ctx.now(), 1))


class _Finals(Stage):
    name = "sink"

    def __init__(self) -> None:
        super().__init__()
        self.finals: list[Transcript] = []

    async def process(self, frame: Frame) -> None:
        if isinstance(frame, Transcript) and frame.final:
            self.finals.append(frame)


async def _final(speech: np.ndarray, stage: AsrStage) -> Transcript:
    sink = _Finals()
    await asyncio.wait_for(
        Pipeline(CallContext(FastClock()), [_Turn(speech), stage, sink]).run(), 60
    )
    assert len(sink.finals) == 1
    return sink.finals[0]


async def test_the_asr_stage_marks_the_words_heard_below_the_threshold(
    speech: np.ndarray,
) -> None:
    engine = WhisperEngine("tiny.en")
    off = await _final(speech, AsrStage(engine, "en", 0, context=True))
    assert off.text and off.unsure == () and off.second_pass is None
    # every probability is below 1.0: every word is unsure
    everything = await _final(speech, AsrStage(engine, "en", 0, context=True, unsure_below=1.0))
    assert everything.unsure == tuple(range(len(everything.text.split())))


async def test_the_second_pass_recognises_the_same_audio_with_the_larger_model(
    speech: np.ndarray,
) -> None:
    base = WhisperEngine("base")
    stage = AsrStage(WhisperEngine("tiny.en"), "en", 0, context=True, second_pass=base)
    final = await _final(speech, stage)
    assert final.second_pass is not None
    again, unsure = await final.second_pass()
    alone = await base.transcribe(speech, "en", context="How can I help you?")
    assert again == alone.text
    assert "friday" in again.lower()
    assert unsure == ()
