"""Test speech, synthesized with the bundled engines (never recorded or downloaded)."""

from __future__ import annotations

import functools

import numpy as np

from voicebot.samples import speak


@functools.lru_cache(maxsize=512)
def _speak(text: str, language: str, rate: int) -> np.ndarray:
    audio = speak(text, language, rate)
    audio.flags.writeable = False  # cached and shared between callers
    return audio


def say(text: str, rate: int = 16000) -> np.ndarray:
    """``text`` spoken by the bundled Piper voice, int16 mono at ``rate``."""
    return _speak(text, "en", rate).copy()


def say_de(text: str, rate: int = 16000) -> np.ndarray:
    """``text`` spoken in German by eSpeak NG, int16 mono at ``rate``."""
    return _speak(text, "de", rate).copy()


def silence(seconds: float, rate: int = 16000) -> np.ndarray:
    return np.zeros(round(seconds * rate), dtype=np.int16)
