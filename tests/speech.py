"""Test speech, synthesized with the bundled engines (never recorded or downloaded)."""

from __future__ import annotations

import functools

import numpy as np
from scipy.signal import resample_poly


@functools.lru_cache(maxsize=256)
def _piper_22k(text: str) -> np.ndarray:
    from voicebot.tts.piper import PiperEngine

    audio = PiperEngine().synthesize_sync(text)
    audio.flags.writeable = False  # cached and shared between callers
    return audio


@functools.lru_cache(maxsize=256)
def _espeak_de_22k(text: str) -> np.ndarray:
    from voicebot.tts.espeak import EspeakEngine

    audio = EspeakEngine("de").synthesize_sync(text)
    audio.flags.writeable = False
    return audio


def _at_rate(audio: np.ndarray, rate: int) -> np.ndarray:
    out = audio.astype(np.float32)
    if rate != 22050:
        out = resample_poly(out, rate, 22050)
    return np.clip(out, -32768, 32767).astype(np.int16)


def say(text: str, rate: int = 16000) -> np.ndarray:
    """``text`` spoken by the bundled Piper voice, int16 mono at ``rate``."""
    return _at_rate(_piper_22k(text), rate)


def say_de(text: str, rate: int = 16000) -> np.ndarray:
    """``text`` spoken in German by eSpeak NG, int16 mono at ``rate``."""
    return _at_rate(_espeak_de_22k(text), rate)


def silence(seconds: float, rate: int = 16000) -> np.ndarray:
    return np.zeros(round(seconds * rate), dtype=np.int16)
