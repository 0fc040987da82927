"""Synthetic callers: multi-utterance WAVs spoken by the bundled voices.

Used by the demo (``make demo``), the tests and the benchmarks, so nobody has
to record or download audio.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from scipy.signal import resample_poly

from voicebot.transports.file import write_wav

if TYPE_CHECKING:
    from voicebot.tts.espeak import EspeakEngine


def speak(text: str, language: str = "en", rate: int = 16000) -> np.ndarray:
    """``text`` in the bundled voice for ``language`` (Piper for en, espeak-ng otherwise).

    Deterministic: the same text always gives the same audio.
    """
    if language == "en":
        from voicebot.tts.piper import PiperEngine

        engine: PiperEngine | EspeakEngine = PiperEngine(deterministic=True)
    else:
        from voicebot.tts.espeak import EspeakEngine

        engine = EspeakEngine(voice=language)
    audio = engine.synthesize_sync(text)
    if engine.sample_rate != rate:
        audio = resample_poly(audio.astype(np.float32), rate, engine.sample_rate)
    return audio.clip(-32768, 32767).astype(np.int16)


def make_caller(
    utterances: list[str],
    pause: float = 2.5,
    lead: float = 0.5,
    language: str = "en",
    rate: int = 16000,
) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """A caller saying ``utterances`` with ``pause`` s between them.

    Returns the audio and each utterance's (start, end) in seconds, which tests
    use as ground truth.
    """
    parts = [np.zeros(int(lead * rate), np.int16)]
    spans = []
    t = lead
    for text in utterances:
        speech = speak(text, language, rate)
        spans.append((t, t + len(speech) / rate))
        parts += [speech, np.zeros(int(pause * rate), np.int16)]
        t += (len(speech) + int(pause * rate)) / rate
    return np.concatenate(parts), spans


def write_caller(
    path: str | Path,
    utterances: list[str],
    pause: float = 2.5,
    language: str = "en",
    rate: int = 16000,
) -> list[tuple[float, float]]:
    audio, spans = make_caller(utterances, pause=pause, language=language, rate=rate)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_wav(path, audio, rate)
    return spans
