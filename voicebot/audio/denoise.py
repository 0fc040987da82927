"""WebRTC noise suppression and automatic gain for caller audio (16 kHz mono int16).

``webrtc_noise_gain`` only takes exactly 10 ms (160 samples) as ``bytes``; this
wrapper accepts any chunk length, carries the sub-10 ms remainder to the next
call and releases it on ``flush``, so the output has as many samples as the
input overall and a fixed alignment: the suppressor's 256-sample analysis
window over 160-sample blocks delays the signal by 96 samples (6 ms), see
``latency``. Inputs that are whole multiples of 10 ms (e.g. 20 ms frames) come
back at their own length on every call.
"""

from __future__ import annotations

import numpy as np
from webrtc_noise_gain import AudioProcessor

SAMPLE_RATE = 16000
_CHUNK = 160  # samples in 10 ms
_CHUNK_BYTES = 2 * _CHUNK
_NS_DELAY = 96  # samples: analysis length 256 - block length 160


class Denoiser:
    """Stateful noise suppressor (``noise_suppression`` 0-4, 0 = off) with optional AGC.

    ``auto_gain_dbfs`` is the AGC target level below full scale (1-31 dB);
    0 leaves the gain alone.
    """

    def __init__(
        self, sample_rate: int = SAMPLE_RATE, noise_suppression: int = 2, auto_gain_dbfs: int = 0
    ) -> None:
        if sample_rate != SAMPLE_RATE:
            raise ValueError(f"webrtc-noise-gain processes 16000 Hz audio only, got {sample_rate}")
        if noise_suppression not in range(5):
            raise ValueError(f"noise_suppression must be 0-4, got {noise_suppression!r}")
        if auto_gain_dbfs not in range(32):
            raise ValueError(f"auto_gain_dbfs must be 0-31, got {auto_gain_dbfs!r}")
        self.sample_rate = sample_rate
        self.noise_suppression = noise_suppression
        self.auto_gain_dbfs = auto_gain_dbfs
        self.is_speech = False  # WebRTC's own voice flag for the last 10 ms processed
        self.reset()

    @property
    def latency(self) -> float:
        """Seconds by which the output signal lags the input (sample alignment)."""
        return _NS_DELAY / SAMPLE_RATE if self.noise_suppression else 0.0

    def reset(self) -> None:
        """Start a new stream: fresh suppressor state, no remainder."""
        self._proc = AudioProcessor(self.auto_gain_dbfs, self.noise_suppression)
        self._rest = b""

    def process(self, pcm: np.ndarray) -> np.ndarray:
        """Denoise the next chunk; returns every whole 10 ms block available."""
        if pcm.dtype != np.int16:
            raise TypeError(f"expected int16 PCM, got {pcm.dtype}")
        data = self._rest + pcm.tobytes() if self._rest else pcm.tobytes()
        whole = len(data) - len(data) % _CHUNK_BYTES
        self._rest = data[whole:]
        out = bytearray()
        run = self._proc.Process10ms
        for i in range(0, whole, _CHUNK_BYTES):
            chunk = run(data[i : i + _CHUNK_BYTES])
            out += chunk.audio
            self.is_speech = chunk.is_speech
        return np.frombuffer(out, dtype=np.int16)

    def flush(self) -> np.ndarray:
        """Process the remainder padded with silence; returns exactly the remainder's length."""
        n = len(self._rest)
        if not n:
            return np.zeros(0, dtype=np.int16)
        padded = self._rest + bytes(_CHUNK_BYTES - n)
        self._rest = b""
        audio = self._proc.Process10ms(padded).audio
        return np.frombuffer(bytearray(audio[:n]), dtype=np.int16)
