"""Echo cancellation: the canceller on a simulated line, the barge-in gate, and a short
``bench echo`` (the bot's voice fed back through the real graph)."""

from __future__ import annotations

import dataclasses
from concurrent.futures import Executor
from typing import Literal

import numpy as np
import pytest
from scipy.signal import butter, lfilter, resample_poly

from tests.support.paths import ECHO_PIPELINE
from tests.support.speech import say, silence
from voicebot.audio.echo import BLOCK, EchoCanceller, EchoReference, echo_executor, level_dbfs
from voicebot.audio.playback import PlaybackStage
from voicebot.audio.stages import EchoCancelStage, VadStage
from voicebot.bench.echo import FIRST, SCRIPT, Line, LineOutput, one_call, speech_for_calls
from voicebot.call import build_call
from voicebot.clock import FastClock, VirtualClock
from voicebot.config import load_pipeline
from voicebot.context import CallContext
from voicebot.frames import AudioFrame, Frame, Interrupt, SpeechStarted
from voicebot.graph import Overflow, Pipeline, Source, Stage

PROMPT = "Thank you for calling. How many people would you like to book a table for?"
CALLER = "A table for four on Friday, please."


def line_echo(bot16: np.ndarray, gain_db: float, delay_ms: float) -> np.ndarray:
    """What a phone line returns: band-limited, attenuated, late."""
    b, a = butter(2, [300 / 8000, 3400 / 8000], "band")
    echo = lfilter(b, a, bot16.astype(np.float64)) * 10 ** (gain_db / 20)
    delay = round(delay_ms * 16)
    return np.concatenate([np.zeros(delay), echo])[: len(bot16)]


def cancel(
    canceller: EchoCanceller, bot8: np.ndarray, mic: np.ndarray
) -> tuple[np.ndarray, list[bool]]:
    """Play ``bot8`` (8 kHz, 20 ms frames) as the reference while ``mic`` (16 kHz) comes in."""
    out, loud = [], []
    for i in range(0, len(mic) - BLOCK + 1, BLOCK):
        t = i / 16000
        if i % 320 == 0:
            k = i // 2
            canceller.add_reference(bot8[k : k + 160], 8000, 1, t)
        out.append(canceller.process(mic[i : i + BLOCK], t))
        loud.append(canceller.echo_loud)
    return np.concatenate(out), loud


def bot_and_echo(gain_db: float, delay_ms: float) -> tuple[np.ndarray, np.ndarray]:
    bot8 = np.concatenate([say(PROMPT, 8000), silence(0.3, 8000), say(PROMPT, 8000)])
    bot16 = resample_poly(bot8.astype(np.float64), 2, 1)
    return bot8, line_echo(bot16, gain_db, delay_ms)


def test_canceller_removes_a_late_attenuated_copy_of_the_bots_voice():
    bot8, echo = bot_and_echo(-10, 150)
    mic = np.clip(echo, -32768, 32767).astype(np.int16)
    out, loud = cancel(EchoCanceller(), bot8, mic)
    settled = 2 * 16000  # after two seconds of bot speech
    erle = level_dbfs(mic[settled : len(out)]) - level_dbfs(out[settled:])
    assert erle >= 20, erle  # measured: about 40 dB
    # not converged at the start: the gate is up; converged: down
    assert any(loud[:30])
    assert not any(loud[settled // BLOCK :])


def test_caller_speech_passes_the_canceller_while_the_bot_talks():
    bot8, echo = bot_and_echo(-15, 80)
    caller = say(CALLER).astype(np.float64)
    start = 4 * 16000  # the caller talks over the bot's second sentence
    near = np.zeros(len(echo))
    near[start : start + len(caller)] = caller[: len(echo) - start]
    mic = np.clip(echo + near, -32768, 32767).astype(np.int16)
    out, _ = cancel(EchoCanceller(), bot8, mic)
    span = slice(start, min(start + len(caller), len(out)))
    # the caller's words come through at close to their level (the echo alone would be gone)
    assert level_dbfs(out[span]) >= level_dbfs(near[span].astype(np.int16)) - 6


class _Frames(Source):
    def __init__(self, pcm: np.ndarray) -> None:
        super().__init__()
        self.pcm = pcm

    async def produce(self) -> None:
        self.ctx.state.bot_speaking = True
        for i in range(0, len(self.pcm) - 320 + 1, 320):
            await self.ctx.clock.sleep_until((i + 320) / 16000)  # paced like a caller
            await self.push(AudioFrame(self.pcm[i : i + 320], 16000, 1, i / 16000))


class _Recorder(Stage):
    name = "sink"

    def __init__(self) -> None:
        super().__init__()
        self.started: list[float] = []
        self.interrupted: list[float] = []

    async def process(self, frame: Frame) -> None:
        if isinstance(frame, SpeechStarted):
            self.started.append(frame.t)

    def on_interrupt(self, frame: Interrupt) -> None:
        self.interrupted.append(frame.t)


class _LoudEcho(EchoCanceller):
    @property
    def echo_loud(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("mode", "transport", "cancelled"),
    [
        ("auto", "sip", True),
        ("auto", "twilio", True),
        ("auto", "raw", True),
        ("auto", "webrtc", False),
        ("auto", "file", False),
        ("on", "webrtc", True),
        ("on", "file", True),
        ("off", "sip", False),
        ("off", "twilio", False),
    ],
)
def test_echo_cancel_auto_is_on_for_phone_transports_and_on_off_override(
    mode: Literal["auto", "on", "off"], transport: str, cancelled: bool
) -> None:
    config = load_pipeline(ECHO_PIPELINE)
    config = dataclasses.replace(config, audio=dataclasses.replace(config.audio, echo_cancel=mode))
    call = build_call(config, _Frames(silence(0.1)), LineOutput(1.0), transport=transport)
    assert call.ctx.transport == transport
    assert ("echo_cancel" in [stage.name for stage in call.stages]) is cancelled
    playback = call.stages[-1]
    assert isinstance(playback, PlaybackStage)
    # the canceller's reference: playback hands it what it plays
    assert isinstance(playback.output, EchoReference) is cancelled


async def _barge_in(echo: EchoCanceller | None) -> _Recorder:
    pcm = np.concatenate([silence(0.5), say(CALLER), silence(1.0)])
    sink = _Recorder()
    stages = [_Frames(pcm), VadStage(echo=echo), sink]
    await Pipeline(CallContext(FastClock()), stages, [(50, Overflow.BLOCK)] * 2).run()
    return sink


async def test_loud_residual_echo_asks_for_more_speech_before_a_barge_in():
    plain = await _barge_in(EchoCanceller())  # a quiet canceller holds nothing back
    gated = await _barge_in(_LoudEcho())
    assert len(plain.interrupted) == len(gated.interrupted) == 1
    assert plain.started == gated.started  # the same turn
    # the barge-in waits for 60 ms (3 frames) more voice
    held = gated.interrupted[0] - plain.interrupted[0]
    assert 0.05 <= held <= 0.1, held  # (the fast clock runs real time in between)


async def test_echo_line_interrupts_the_bot_without_the_canceller_and_not_with_it():
    """A short ``bench echo``: one line, -15 dB and 120 ms late, on a virtual clock (model
    work takes no time, so inference time under load no longer moves the outcome; the
    latencies with inference in them are ``bench echo``'s)."""
    config = load_pipeline(ECHO_PIPELINE)
    speech = speech_for_calls()
    line = Line(delay_ms=120, gain_db=-15)
    echo = await one_call(
        config, line, False, speech, script=(("start", FIRST),), clock=VirtualClock()
    )
    assert echo["self_interruptions"] >= 1  # the bot hears itself: the test can fail
    cancelled = await one_call(config, line, True, speech, SCRIPT, clock=VirtualClock())
    assert cancelled["self_interruptions"] == 0
    assert cancelled["turns"] == len(SCRIPT)
    # the caller's "Stop, please." stops the bot before the VAD alone would (it needs
    # min_speech_ms of voice, ~265 ms), on a line without echo within the 100 ms target.
    # (Measured here: clean 45 ms; cancelled 65-85 ms, 165 ms on a loaded machine - the
    # canceller's suppression can turn the onset's first frames down, and the order of
    # its reference and capture blocks within one instant follows the scheduler)
    clean = await one_call(config, None, False, speech, SCRIPT, clock=VirtualClock())
    assert clean["barge_in_ms"] is not None and cancelled["barge_in_ms"] is not None
    assert cancelled["barge_in_ms"] < 250, (cancelled, clean)
    assert clean["barge_in_ms"] <= 100, clean


class _Audio(Stage):
    name = "sink"

    def __init__(self) -> None:
        super().__init__()
        self.pcm: list[np.ndarray] = []

    async def process(self, frame: Frame) -> None:
        if isinstance(frame, AudioFrame):
            self.pcm.append(frame.pcm)


async def _cancelled_by_stage(executor: Executor | None) -> np.ndarray:
    """The echo of the bot's prompt through ``EchoCancelStage``, the bot's audio filed as
    the reference as it plays (20 ms ahead of the caller's frames, as playback is)."""
    bot8, echo = bot_and_echo(-10, 150)
    canceller = EchoCanceller()

    class Line(Source):
        async def produce(self) -> None:
            for k, i in enumerate(range(0, len(echo) - 320 + 1, 320)):
                canceller.add_reference(bot8[k * 160 : k * 160 + 160], 8000, 1, k * 0.02)
                near = np.round(echo[i : i + 320]).astype(np.int16)
                await self.push(AudioFrame(near, 16000, 1, k * 0.02))

    sink = _Audio()
    stages = [Line(), EchoCancelStage(canceller, executor), sink]
    await Pipeline(CallContext(FastClock()), stages, [(50, Overflow.BLOCK)] * 2).run()
    return np.concatenate(sink.pcm)


async def test_the_canceller_on_worker_threads_cancels_exactly_as_inline():
    """AEC3 on worker threads (``EchoCancelStage(executor=...)``, the bench's comparison):
    the same blocks in the same order, the same result sample for sample as inline - and
    the echo is gone."""
    inline = await _cancelled_by_stage(None)
    threaded = await _cancelled_by_stage(echo_executor())
    assert np.array_equal(inline, threaded)
    tail = slice(len(inline) // 2, None)  # AEC3 has converged
    _, echo = bot_and_echo(-10, 150)
    assert level_dbfs(threaded[tail]) <= level_dbfs(echo[tail].astype(np.int16)) - 15
