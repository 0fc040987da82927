"""A stream's audio encoding: G.711 through av (the SIP codecs), or 16-bit linear PCM."""

from __future__ import annotations

import fractions

import av
import numpy as np

from voicebot.transports.sip.codecs import PCMA, PCMU, RtpCodec

ENCODINGS = ("mulaw", "alaw", "l16")
L16_RATES = (8000, 16000)


class StreamAudio:
    """Decodes payloads into timestamped av frames and encodes 20 ms of int16 into payloads."""

    def __init__(self, encoding: str, sample_rate: int) -> None:
        if encoding not in ENCODINGS:
            raise ValueError(f"unsupported audio encoding {encoding!r} (have {ENCODINGS})")
        if encoding == "l16" and sample_rate not in L16_RATES:
            raise ValueError(f"linear PCM at {sample_rate} Hz: use one of {L16_RATES}")
        if encoding != "l16" and sample_rate != 8000:
            raise ValueError(f"G.711 is 8000 Hz, not {sample_rate}")
        self.encoding = encoding
        self.sample_rate = sample_rate
        self.samples_per_frame = sample_rate // 50
        self._codec = {"mulaw": RtpCodec(PCMU), "alaw": RtpCodec(PCMA)}.get(encoding)
        self._time_base = fractions.Fraction(1, sample_rate)
        self._next_pts = 0

    def decode(self, payload: bytes, timestamp_ms: float | None = None) -> list[av.AudioFrame]:
        """``payload`` as packed s16 mono frames; ``pts`` from ``timestamp_ms`` when given,
        else running on from the last payload (``TrackSource`` fills gaps with silence)."""
        if self._codec is not None:
            frames = self._codec.decode(payload)
        else:
            pcm = np.frombuffer(payload[: len(payload) // 2 * 2], "<i2").astype(np.int16)
            if not len(pcm):
                return []
            frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate = self.sample_rate
            frames = [frame]
        pts = (
            self._next_pts
            if timestamp_ms is None
            else round(timestamp_ms * self.sample_rate / 1000)
        )
        for frame in frames:
            frame.pts = pts
            frame.time_base = self._time_base
            pts += frame.samples
        self._next_pts = pts
        return frames

    def encode(self, pcm: np.ndarray) -> bytes:
        """One frame of int16 samples at ``sample_rate`` in the stream's encoding."""
        if self._codec is not None:
            return self._codec.encode(pcm)
        return np.ascontiguousarray(pcm, "<i2").tobytes()
