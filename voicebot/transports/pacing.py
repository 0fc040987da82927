"""The 20 ms clock of an outbound aiortc audio track.

aiortc's sender calls ``track.recv()`` in a loop and sends whatever it gets at
once, so the track itself sets the pace. Frame ``k`` is due at
``start + k * 20 ms`` (``start``: the first pull), never relative to the last
wake-up, so late wake-ups do not add up to drift. Both the server's bot voice
(``OutputTrack``) and the scripted caller's microphone pace this way.
"""

from __future__ import annotations

import asyncio
import fractions
import math
import time

import av
import numpy as np

FRAME_S = 0.02


class FramePacer:
    """Schedule and stamps of one track's 20 ms mono int16 frames.

    ``max_lag``: a puller this far behind its schedule restarts it at now
    instead of handing out the missed frames back to back (a burst the far
    end would only have to buffer); by default it catches up.
    """

    def __init__(self, sample_rate: int = 48000, max_lag: float = math.inf) -> None:
        self.sample_rate = sample_rate
        self.samples = sample_rate * 20 // 1000
        self.max_lag = max_lag
        self.start: float | None = None  # monotonic time of frame 0
        self.k = 0  # index of the next frame
        self._time_base = fractions.Fraction(1, sample_rate)

    async def wait(self) -> float:
        """Sleep until the next frame is due; returns its due time (monotonic)."""
        now = time.monotonic()
        if self.start is None:
            self.start = now
        due = self.start + self.k * FRAME_S
        if due > now:
            await asyncio.sleep(due - now)
        elif now - due > self.max_lag:
            self.start = now - self.k * FRAME_S
            due = now
        return due

    def frame(self, pcm: np.ndarray) -> av.AudioFrame:
        """``pcm`` (one frame of mono int16) as the stream's next frame."""
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = self.sample_rate
        frame.pts = self.k * self.samples
        frame.time_base = self._time_base
        self.k += 1
        return frame
