"""The file transport of ``voicebot run``: a WAV file as the caller, a WAV file as the ear."""

from __future__ import annotations

import asyncio
import logging
import wave
from pathlib import Path

import av
import numpy as np

from voicebot.frames import AudioFrame
from voicebot.graph import Source

log = logging.getLogger(__name__)


def read_audio(path: str | Path) -> tuple[np.ndarray, int, int]:
    """Decode any audio file av can read to interleaved int16: (pcm, rate, channels)."""
    path = Path(path)
    if path.suffix.lower() == ".wav":
        try:
            with wave.open(str(path), "rb") as w:
                if w.getsampwidth() == 2 and w.getcomptype() == "NONE":
                    pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").copy()
                    return pcm, w.getframerate(), w.getnchannels()
        except wave.Error:
            log.debug("%s is not plain PCM16 WAV; decoding with av", path)
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        channels = stream.codec_context.channels or 1
        rate = stream.codec_context.sample_rate
        layout = "mono" if channels == 1 else "stereo"
        resampler = av.AudioResampler(format="s16", layout=layout, rate=rate)
        parts = [
            out.to_ndarray().reshape(-1)
            for frame in container.decode(stream)
            for out in resampler.resample(frame)
        ]
        parts += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
    pcm = np.concatenate(parts) if parts else np.zeros(0, np.int16)
    return pcm.astype(np.int16), rate, min(channels, 2)


def write_wav(path: str | Path, pcm: np.ndarray, rate: int, channels: int = 1) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.ascontiguousarray(pcm, dtype="<i2").tobytes())


class WavSource(Source):
    """Plays a recorded caller into the graph in 20 ms frames.

    Each frame is released when it would have been fully spoken (its end on
    the call clock), so in real-time mode the graph sees a live caller. Under
    the fast clock the same schedule runs without the idle waits. ``tail``
    seconds of silence follow the file so the last turn ends the way a live
    turn does (by the VAD's silence timeout).
    """

    name = "source"

    def __init__(self, path: str | Path, frame_ms: int = 20, tail: float = 1.0) -> None:
        super().__init__()
        self.pcm, self.sample_rate, self.channels = read_audio(path)
        self.frame_samples = self.sample_rate * frame_ms // 1000
        self.tail = tail

    @property
    def duration(self) -> float:
        return len(self.pcm) / self.channels / self.sample_rate

    async def produce(self) -> None:
        ch = self.channels
        n = self.frame_samples * ch
        pcm = self.pcm
        tail = np.zeros(int(self.tail * self.sample_rate) * ch, np.int16)
        if len(tail):
            pcm = np.concatenate([pcm, tail])
        clock = self.ctx.clock
        for i, start in enumerate(range(0, len(pcm), n)):
            chunk = pcm[start : start + n]
            if len(chunk) < n:
                chunk = np.concatenate([chunk, np.zeros(n - len(chunk), np.int16)])
            pts = i * self.frame_samples / self.sample_rate
            await clock.sleep_until(pts + self.frame_samples / self.sample_rate)
            await self.push(AudioFrame(chunk, self.sample_rate, ch, pts))


class WavOutput:
    """Collects paced bot frames at their call time and writes one aligned WAV.

    Sample ``i`` of the output is call time ``i / rate``, the same timeline as
    the caller file, so the two can be laid side by side (``mix_path`` writes
    a stereo file with the caller left and the bot right).
    """

    def __init__(
        self,
        path: str | Path,
        sample_rate: int = 16000,
        channels: int = 1,
        min_duration: float = 0.0,
        caller: np.ndarray | None = None,
        mix_path: str | Path | None = None,
    ) -> None:
        self.path = Path(path)
        self.sample_rate = sample_rate
        self.channels = channels
        self.min_duration = min_duration
        self.caller = caller
        self.mix_path = mix_path
        self._frames: list[tuple[int, np.ndarray]] = []

    def write(self, pcm: np.ndarray, t: float) -> None:
        self._frames.append((round(t * self.sample_rate), pcm))

    def render(self) -> np.ndarray:
        ch = self.channels
        end = max([s + len(p) // ch for s, p in self._frames], default=0)
        total = max(end, round(self.min_duration * self.sample_rate))
        out = np.zeros(total * ch, np.int16)
        for start, pcm in self._frames:
            out[start * ch : start * ch + len(pcm)] = pcm
        return out

    async def close(self) -> None:
        """Render and write the files off the loop (seconds of audio, disk I/O)."""
        await asyncio.to_thread(self._write)

    def _write(self) -> None:
        audio = self.render()
        write_wav(self.path, audio, self.sample_rate, self.channels)
        if self.mix_path is not None and self.caller is not None and self.channels == 1:
            n = max(len(audio), len(self.caller))
            mix = np.zeros((n, 2), np.int16)
            mix[: len(self.caller), 0] = self.caller
            mix[: len(audio), 1] = audio
            write_wav(self.mix_path, mix.reshape(-1), self.sample_rate, 2)
