"""Re-chunk a stream of variable-length int16 arrays into exact fixed-size frames.

The VAD needs exactly 10/20/30 ms per call and playback wants even frames, but
resamplers and network packets deliver arbitrary lengths. Only the partial
remainder is kept between calls, in a preallocated buffer.
"""

from __future__ import annotations

import numpy as np


class Framer:
    """Cut interleaved int16 PCM into frames of ``frame_samples`` samples per channel.

    Emitted frames are 1-D interleaved arrays of ``frame_samples * channels``
    values that the caller owns (they never alias the caller's input or the
    internal buffer).
    """

    def __init__(self, frame_samples: int, channels: int = 1) -> None:
        if not isinstance(frame_samples, int) or frame_samples <= 0:
            raise ValueError(f"frame_samples must be a positive int, got {frame_samples!r}")
        if not isinstance(channels, int) or channels <= 0:
            raise ValueError(f"channels must be a positive int, got {channels!r}")
        self.frame_samples = frame_samples
        self.channels = channels
        self._size = frame_samples * channels
        self._buf = np.zeros(self._size, dtype=np.int16)
        self._fill = 0

    @property
    def pending(self) -> int:
        """Samples per channel buffered and not yet emitted."""
        return self._fill // self.channels

    def push(self, pcm: np.ndarray) -> list[np.ndarray]:
        """Add a chunk; return the frames it completes (possibly none)."""
        if pcm.dtype != np.int16:
            raise TypeError(f"expected int16 PCM, got {pcm.dtype}")
        n = pcm.size
        if n % self.channels:
            raise ValueError(f"{n} samples is not a whole number of {self.channels}-channel frames")
        pcm = pcm.reshape(-1)
        size, pos = self._size, 0
        frames: list[np.ndarray] = []
        if self._fill:
            pos = min(size - self._fill, n)
            self._buf[self._fill : self._fill + pos] = pcm[:pos]
            self._fill += pos
            if self._fill < size:
                return frames
            frames.append(self._buf.copy())
            self._fill = 0
        whole = (n - pos) // size
        if whole:
            # One private copy for all complete frames; its rows are the frames.
            block = pcm[pos : pos + whole * size].copy()
            frames.extend(block.reshape(whole, size))
            pos += whole * size
        rest = n - pos
        if rest:
            self._buf[:rest] = pcm[pos:]
            self._fill = rest
        return frames

    def flush(self, pad: bool = True) -> list[np.ndarray]:
        """Emit the remainder: zero-padded to a full frame, or short if ``pad`` is False."""
        fill, self._fill = self._fill, 0
        if not fill:
            return []
        if not pad:
            return [self._buf[:fill].copy()]
        out = self._buf.copy()
        out[fill:] = 0
        return [out]

    def reset(self) -> None:
        """Discard the buffered remainder."""
        self._fill = 0
