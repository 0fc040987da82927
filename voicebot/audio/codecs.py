"""Audio files in and out, with av: decode any container, encode as a stream.

``decode_audio`` turns an uploaded file (wav, mp3, ogg/opus, flac, webm, m4a, …)
into 16 kHz mono float32, the ASR engines' input. ``stream_encoder`` returns an
encoder that takes int16 PCM as synthesis produces it and hands back encoded bytes
as soon as the muxer writes them — so a speech response can start before the
text is fully synthesized. WAV is streamed with the "unknown length" size fields
(0xFFFFFFFF) that players and decoders accept.

Both are CPU work: callers run them in an executor.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

import av
import numpy as np
from av.container import OutputContainer

from voicebot.audio.resample import StreamResampler
from voicebot.errors import VoicebotError

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

ASR_RATE = 16000

# response_format -> (container format, codec, content type)
FORMATS: dict[str, tuple[str, str, str]] = {
    "mp3": ("mp3", "libmp3lame", "audio/mpeg"),
    "opus": ("ogg", "libopus", "audio/ogg"),
    "aac": ("adts", "aac", "audio/aac"),
    "flac": ("flac", "flac", "audio/flac"),
    "wav": ("wav", "pcm_s16le", "audio/wav"),
    "pcm": ("", "", "audio/pcm"),
}


class AudioDecodeError(VoicebotError, ValueError):
    """The upload is not audio av can decode."""


def decode_audio(data: bytes, rate: int = ASR_RATE) -> np.ndarray:
    """Any audio file's first audio stream as mono float32 in [-1, 1] at ``rate``."""
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.audio:
                raise AudioDecodeError("the file has no audio stream")
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
            parts: list[np.ndarray] = []
            for frame in container.decode(stream):
                frame.pts = None
                for out in resampler.resample(frame):
                    parts.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                parts.append(out.to_ndarray().reshape(-1))
    except AudioDecodeError:
        raise
    except (av.FFmpegError, ValueError, IndexError) as exc:
        raise AudioDecodeError(f"could not decode the audio: {exc}") from exc
    if not parts:
        raise AudioDecodeError("the file holds no audio samples")
    return np.concatenate(parts).astype(np.float32) / 32768


class _Sink(io.RawIOBase):
    """A write-only file the muxer writes into; ``drain`` takes what it wrote so far."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b: ReadableBuffer) -> int:
        data = memoryview(b)
        self._buf += data
        return data.nbytes

    def drain(self) -> bytes:
        out = bytes(self._buf)
        self._buf.clear()
        return out


@dataclass
class StreamEncoder:
    """int16 mono PCM at ``rate`` in, encoded bytes out as they are produced."""

    fmt: str
    rate: int

    def __post_init__(self) -> None:
        container_fmt, codec, self.content_type = FORMATS[self.fmt]
        self._header_sent = False
        self._sink = _Sink()
        self._container: OutputContainer | None = None
        if codec and self.fmt != "wav":
            # Ogg pages would otherwise hold a second of audio before anything goes out
            options = {"page_duration": "100000"} if container_fmt == "ogg" else {}
            self._container = av.open(
                self._sink, mode="w", format=container_fmt, container_options=options
            )
            stream = self._container.add_stream(codec, rate=self.rate)
            if not isinstance(stream, av.AudioStream):
                raise TypeError(f"{codec!r} is not an audio codec")
            stream.layout = "mono"
            if self.fmt in ("mp3", "aac", "opus"):
                stream.bit_rate = 64000
            self._stream = stream

    def push(self, pcm: np.ndarray) -> bytes:
        pcm = np.ascontiguousarray(pcm, dtype=np.int16)
        if self.fmt == "pcm":
            return pcm.tobytes()
        if self.fmt == "wav":
            head = b"" if self._header_sent else wav_stream_header(self.rate)
            self._header_sent = True
            return head + pcm.tobytes()
        if not len(pcm):
            return self._sink.drain()
        if self._container is None:
            raise RuntimeError("the encoder is closed")
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = self.rate
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        return self._sink.drain()

    def close(self) -> bytes:
        """Flush the encoder and write the trailer; the last bytes of the stream."""
        if self.fmt == "wav" and not self._header_sent:
            self._header_sent = True
            return wav_stream_header(self.rate)
        if self._container is None:
            return b""
        for packet in self._stream.encode(None):
            self._container.mux(packet)
        self._container.close()
        self._container = None
        return self._sink.drain()


def wav_stream_header(rate: int, channels: int = 1) -> bytes:
    """A 16-bit PCM WAV header for a stream of unknown length."""
    unknown = 0xFFFFFFFF
    return (
        b"RIFF"
        + struct.pack("<I", unknown)
        + b"WAVE"
        + b"fmt "
        + struct.pack("<IHHIIHH", 16, 1, channels, rate, rate * channels * 2, channels * 2, 16)
        + b"data"
        + struct.pack("<I", unknown)
    )


def stream_encoder(fmt: str, rate: int) -> StreamEncoder:
    if fmt not in FORMATS:
        raise ValueError(f"unknown audio format {fmt!r}")
    return StreamEncoder(fmt, rate)


def resampler_to(rate: int, from_rate: int) -> StreamResampler | None:
    """A streaming resampler from ``from_rate`` to ``rate`` (None when they match)."""
    return None if rate == from_rate else StreamResampler(from_rate, 1, rate, 1)
