"""Streaming sample-rate and channel conversion for int16 PCM.

Built on libswresample through ``av.AudioResampler``: it keeps its filter
history across calls, so a stream cut into 20 ms frames comes out as if it had
been converted in one piece (no clicks at frame boundaries), and costs a few
microseconds per frame. ``scipy.signal.resample_poly`` applied frame by frame
is both slower and stateless: every frame edge is filtered against zeros.
``voicebot/bench/resample.py`` measures both.

Output timing is zero-phase: output sample ``k`` is the signal at
``k / out_rate`` seconds from the first input sample. The converter only holds
back a short look-ahead (``latency``), which ``flush`` releases.
"""

from __future__ import annotations

import functools

import av
import numpy as np

_LAYOUTS = {1: "mono", 2: "stereo"}
_EMPTY = np.zeros(0, dtype=np.int16)
_EMPTY.flags.writeable = False


class StreamResampler:
    """Stateful converter from ``in_rate``/``in_channels`` to ``out_rate``/``out_channels``.

    ``process`` takes and returns interleaved int16 arrays; the number of
    output samples varies from call to call by the converter's rounding and
    look-ahead, but the total after ``flush`` is ``round(n_in * out_rate / in_rate)``.
    Stereo is downmixed by averaging; mono is upmixed by duplication (swr's own
    upmix would lower the level by 3 dB). When rates and channels match, input
    is returned as is.
    """

    def __init__(self, in_rate: int, in_channels: int, out_rate: int, out_channels: int) -> None:
        for name, rate in (("in_rate", in_rate), ("out_rate", out_rate)):
            if not isinstance(rate, int) or rate <= 0:
                raise ValueError(f"{name} must be a positive int, got {rate!r}")
        for name, ch in (("in_channels", in_channels), ("out_channels", out_channels)):
            if ch not in _LAYOUTS:
                raise ValueError(f"{name} must be 1 or 2, got {ch!r}")
        self.in_rate = in_rate
        self.in_channels = in_channels
        self.out_rate = out_rate
        self.out_channels = out_channels
        self.passthrough = in_rate == out_rate and in_channels == out_channels
        self._same_rate = in_rate == out_rate
        # swr converts the rate and, if asked, downmixes; upmix happens afterwards.
        self._in_layout = _LAYOUTS[in_channels]
        self._swr_layout = _LAYOUTS[min(in_channels, out_channels)]
        self._upmix = in_channels == 1 and out_channels == 2
        self._resampler: av.AudioResampler | None = None

    @property
    def latency(self) -> float:
        """Seconds of signal held back inside the converter (released by ``flush``)."""
        if self._same_rate:
            return 0.0
        return _lookahead(self.in_rate, self.out_rate)

    def process(self, pcm: np.ndarray) -> np.ndarray:
        """Convert the next chunk of the stream; returns what is ready (may be empty)."""
        if self.passthrough:
            return pcm
        if pcm.dtype != np.int16:
            raise TypeError(f"expected int16 PCM, got {pcm.dtype}")
        if pcm.size % self.in_channels:
            raise ValueError(
                f"{pcm.size} samples is not a whole number of {self.in_channels}-channel frames"
            )
        if pcm.size == 0:
            return _EMPTY
        if self._same_rate:
            return self._convert_channels(pcm)
        if self._resampler is None:
            self._resampler = av.AudioResampler(
                format="s16", layout=self._swr_layout, rate=self.out_rate
            )
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(pcm).reshape(1, -1), format="s16", layout=self._in_layout
        )
        frame.sample_rate = self.in_rate
        return self._collect(self._resampler.resample(frame))

    def flush(self) -> np.ndarray:
        """Emit the held-back tail; the next ``process`` starts a new stream."""
        resampler, self._resampler = self._resampler, None
        if resampler is None:
            return _EMPTY
        return self._collect(resampler.resample(None))

    def reset(self) -> None:
        """Drop any held-back audio and start a new stream."""
        self._resampler = None

    def _collect(self, frames: list[av.AudioFrame]) -> np.ndarray:
        if not frames:
            return _EMPTY
        if len(frames) == 1:
            out = frames[0].to_ndarray().reshape(-1)
        else:
            out = np.concatenate([f.to_ndarray().reshape(-1) for f in frames])
        return np.repeat(out, 2) if self._upmix else out

    def _convert_channels(self, pcm: np.ndarray) -> np.ndarray:
        if self._upmix:
            return np.repeat(pcm, 2)
        # Floor of the mean, as int32 so that L + R cannot overflow.
        total: np.ndarray = pcm[0::2].astype(np.int32) + pcm[1::2]
        return (total >> 1).astype(np.int16)


@functools.lru_cache(maxsize=64)
def _lookahead(in_rate: int, out_rate: int) -> float:
    """Measure swr's look-ahead once per rate pair: feed 100 ms, see what is missing."""
    resampler = av.AudioResampler(format="s16", layout="mono", rate=out_rate)
    n = max(in_rate // 10, 64)
    frame = av.AudioFrame.from_ndarray(np.zeros((1, n), np.int16), format="s16", layout="mono")
    frame.sample_rate = in_rate
    got = sum(f.samples for f in resampler.resample(frame))
    return round(n / in_rate - got / out_rate, 9)
