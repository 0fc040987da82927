"""The telephone codecs, G.711 (μ-law, A-law) and G.722, as av's (FFmpeg's) encoders and decoders.

One ``RtpCodec`` per call and direction of use: G.722 is ADPCM, its encoder
and decoder keep state from frame to frame, so a call never shares them.
G.722 samples at 16 kHz but counts RTP time at 8 kHz (RFC 3551's historical
mistake), hence ``clock_rate`` next to ``sample_rate``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, cast

import av
import numpy as np
from av.audio.codeccontext import AudioCodecContext

FRAME_MS = 20


@dataclass(frozen=True)
class CodecSpec:
    """A codec as SDP names it and as av knows it."""

    name: str  # the SDP encoding name
    payload_type: int  # static RTP payload type (RFC 3551)
    av_name: str
    sample_rate: int  # audio samples per second
    clock_rate: int  # RTP timestamp units per second


PCMU = CodecSpec("PCMU", 0, "pcm_mulaw", 8000, 8000)
PCMA = CodecSpec("PCMA", 8, "pcm_alaw", 8000, 8000)
G722 = CodecSpec("G722", 9, "g722", 16000, 8000)
# Preferred first: wideband recognises better than narrowband.
CODECS = (G722, PCMU, PCMA)
BY_PAYLOAD_TYPE = {c.payload_type: c for c in CODECS}


class RtpCodec:
    """Encodes 20 ms frames of mono int16 into RTP payloads and decodes payloads back."""

    def __init__(self, spec: CodecSpec) -> None:
        self.spec = spec
        self.samples_per_frame = spec.sample_rate * FRAME_MS // 1000
        self.timestamp_step = spec.clock_rate * FRAME_MS // 1000  # RTP units per frame
        self._encoder = _context(spec, "w")
        self._encoder.format = "s16"
        self._encoder.open()
        self._decoder = _context(spec, "r")

    def encode(self, pcm: np.ndarray) -> bytes:
        """One frame of int16 samples at ``sample_rate`` as one RTP payload."""
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(pcm, np.int16).reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate = self.spec.sample_rate
        return b"".join(bytes(p) for p in self._encoder.encode(frame))

    def decode(self, payload: bytes) -> list[av.AudioFrame]:
        """An RTP payload as decoded frames (packed s16, mono, at ``sample_rate``)."""
        return list(self._decoder.decode(av.Packet(payload)))


def _context(spec: CodecSpec, mode: Literal["r", "w"]) -> AudioCodecContext:
    context = cast(AudioCodecContext, av.CodecContext.create(spec.av_name, mode))
    context.sample_rate = spec.sample_rate
    context.layout = "mono"
    return context
