"""What a caller's voice goes through before it reaches the server, simulated offline.

``opus_roundtrip`` is a WebRTC call's path (48 kHz Opus at aiortc's 96 kb/s, 20 ms
frames, encoded and decoded with av's libopus); ``mulaw_roundtrip`` a phone line's
(8 kHz G.711 μ-law with av's ``pcm_mulaw`` codec, resampled down and back up
with the same streaming resampler the pipeline uses); ``g722_roundtrip`` a wideband
phone line's (G.722 at 16 kHz, 64 kb/s, av's ``g722`` codec); ``add_noise`` mixes a noise
signal in at a given signal-to-noise ratio, measured on the speech's voiced part.
Used by ``voicebot bench understanding`` and the tests; all int16 mono in and out.
"""

from __future__ import annotations

import fractions
import math
from typing import Literal

import av
import numpy as np

from voicebot.audio.resample import StreamResampler

OPUS_RATE = 48000
OPUS_BIT_RATE = 96000  # what aiortc's encoder sends
PHONE_RATE = 8000


def _resample(pcm: np.ndarray, rate: int, to: int) -> np.ndarray:
    if rate == to:
        return pcm
    resampler = StreamResampler(rate, 1, to, 1)
    out = np.concatenate([resampler.process(pcm), resampler.flush()])
    return out.astype(np.int16)


def _roundtrip(
    pcm: np.ndarray,
    rate: int,
    codec: Literal["libopus", "pcm_mulaw", "g722"],
    frame: int,
    bit_rate: int | None = None,
) -> np.ndarray:
    """Encode ``pcm`` with ``codec`` in ``frame``-sample frames and decode it again."""
    encoder = av.CodecContext.create(codec, "w")
    encoder.sample_rate = rate
    encoder.layout = "mono"
    encoder.format = "s16"
    encoder.time_base = fractions.Fraction(1, rate)
    if bit_rate:
        encoder.bit_rate = bit_rate
    encoder.open()
    decoder = av.CodecContext.create(codec, "r")
    decoder.sample_rate = rate
    decoder.layout = "mono"
    decoder.format = "s16"
    decoder.open()
    padded = np.pad(pcm, (0, -len(pcm) % frame))
    out: list[np.ndarray] = []
    packets = []
    for k in range(0, len(padded), frame):
        f = av.AudioFrame.from_ndarray(
            padded[k : k + frame].reshape(1, -1), format="s16", layout="mono"
        )
        f.sample_rate = rate
        f.pts = k
        f.time_base = fractions.Fraction(1, rate)
        packets += encoder.encode(f)
    packets += encoder.encode(None)
    for packet in packets:
        for decoded in decoder.decode(packet):
            out.append(_mono_s16(decoded))
    if not out:
        return np.zeros(0, np.int16)
    return np.concatenate(out)[: len(pcm) + frame]


def _mono_s16(frame: av.AudioFrame) -> np.ndarray:
    data = frame.to_ndarray()
    if data.dtype != np.int16:  # a planar float decoder output
        data = np.clip(data.astype(np.float32) * 32768, -32768, 32767).astype(np.int16)
    return data.reshape(-1) if data.shape[0] == 1 else data.mean(axis=0).astype(np.int16)


def opus_roundtrip(pcm: np.ndarray, rate: int = 16000) -> np.ndarray:
    """``pcm`` as a WebRTC peer receives it: 48 kHz Opus, back at ``rate``."""
    wide = _resample(pcm, rate, OPUS_RATE)
    decoded = _roundtrip(wide, OPUS_RATE, "libopus", OPUS_RATE // 50, OPUS_BIT_RATE)
    return _resample(decoded, OPUS_RATE, rate)


def mulaw_roundtrip(pcm: np.ndarray, rate: int = 16000) -> np.ndarray:
    """``pcm`` as a phone line delivers it: 8 kHz G.711 μ-law, back at ``rate``."""
    narrow = _resample(pcm, rate, PHONE_RATE)
    decoded = _roundtrip(narrow, PHONE_RATE, "pcm_mulaw", PHONE_RATE // 50)
    return _resample(decoded, PHONE_RATE, rate)


def g722_roundtrip(pcm: np.ndarray, rate: int = 16000) -> np.ndarray:
    """``pcm`` as a wideband phone line (SIP with G.722) delivers it, back at ``rate``."""
    wide = _resample(pcm, rate, 16000)
    decoded = _roundtrip(wide, 16000, "g722", 16000 // 50)
    return _resample(decoded, 16000, rate)


def voiced_power(pcm: np.ndarray, rate: int = 16000) -> float:
    """Mean power of the loudest 20 ms frames (the speech, not the pauses around it)."""
    frame = rate // 50
    x = pcm.astype(np.float64)
    n = len(x) // frame
    if n == 0:
        return float(np.mean(x**2)) if len(x) else 0.0
    powers = np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1)
    loud = powers[powers >= 0.1 * powers.max()] if powers.max() > 0 else powers
    return float(loud.mean())


def add_noise(pcm: np.ndarray, noise: np.ndarray, snr_db: float, rate: int = 16000) -> np.ndarray:
    """``pcm`` with ``noise`` (looped or cut to length) mixed in at ``snr_db``."""
    if len(pcm) == 0:
        return pcm
    reps = -(-len(pcm) // max(len(noise), 1))
    bed = np.tile(noise.astype(np.float64), reps)[: len(pcm)]
    speech = voiced_power(pcm, rate)
    noise_power = float(np.mean(bed**2)) or 1.0
    gain = math.sqrt(speech / noise_power / (10 ** (snr_db / 10)))
    mixed = pcm.astype(np.float64) + gain * bed
    return np.clip(mixed, -32768, 32767).astype(np.int16)


def pink_noise(samples: int, seed: int = 0) -> np.ndarray:
    """Deterministic pink (1/f) noise, int16-scaled, by filtering white noise in frequency."""
    rng = np.random.default_rng(seed)
    white = rng.standard_normal(samples)
    spectrum = np.fft.rfft(white)
    f = np.arange(len(spectrum), dtype=np.float64)
    f[0] = 1.0
    pink = np.fft.irfft(spectrum / np.sqrt(f), n=samples)
    pink /= np.abs(pink).max() or 1.0
    return (pink * 8000).astype(np.int16)
