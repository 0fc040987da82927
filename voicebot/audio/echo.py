"""Line-echo cancellation: the bot's own output, as played, cancelled from the caller's audio.

The canceller is WebRTC's AEC3, from the audio-processing module the ``livekit``
wheel ships (``livekit.rtc.AudioProcessingModule``; no server, no network).
Playback hands every frame it gives the transport to ``EchoReference``, which
files it on the call clock at the time it was played (16 kHz mono). The caller
side (``EchoCancelStage``) processes its audio in 10 ms blocks; before each
block the reference block from ``REFERENCE_LAG_S`` earlier on the call clock
goes in as the far end, so AEC3 only has to find the line's own delay
(transport, network, handset) less that lag. The lag is there because a
caller frame can reach the canceller before playback has handed over the
frame that overlaps its end (playback ticks are not on the caller's 10 ms
grid); every phone line's echo comes back later than that.

In the first 500 ms of bot audio after a pause, where AEC3 re-converges and
may leave residual echo that webrtcvad takes for speech, a block that is
mostly removed echo and well below the bot's level is turned down by 30 dB.

``EchoCanceller.echo_loud`` says whether residual echo may still reach the
VAD: the bot has played audio within the last ``ECHO_TAIL_S`` and the
canceller's echo-return-loss enhancement (ERLE, input over output level,
averaged in dB over about a second of bot audio) is below ``min_erle_db`` -
at the start of a call, before AEC3 has converged, or after the echo path
changed. The VAD then asks for more speech before it lets the caller barge in.
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from livekit import rtc

from voicebot.audio.playback import AudioOutput
from voicebot.audio.resample import StreamResampler

RATE = 16000
BLOCK = RATE // 100  # AEC3 works on 10 ms blocks
REFERENCE_LAG_S = 0.02  # the reference block used is this much older than the caller's
ECHO_TAIL_S = 0.4  # bot audio this recent may still be on its way back
_RING = 1 << 17  # reference samples kept (8 s at 16 kHz)
_ACTIVE_DBFS = -55.0  # reference blocks quieter than this are not bot speech
_FLOOR_DBFS = -70.0  # caller blocks quieter than this say nothing about the ERLE
_ERLE_SMOOTHING = 0.01  # per 10 ms block: a time constant of about 1 s
_ERLE_MAX_DB = 40.0
# Residual echo suppression, in the first 500 ms of bot audio after a pause (where AEC3
# re-converges): a caller block the canceller took this much out of, and that is this much
# quieter than the bot's recent audio, is echo; it is turned down by 30 dB.
_SUPPRESS_BLOCKS = 50
_ECHO_REMOVED_DB = 10.0
_LINE_LOSS_DB = 10.0
_SUPPRESS = 32  # of 1024: -30 dB


_EXECUTOR: ThreadPoolExecutor | None = None


def echo_executor() -> ThreadPoolExecutor:
    """Worker threads for AEC3 (one per core), for ``EchoCancelStage(executor=...)``;
    calls run their canceller inline, which measured faster (``bench/echo_load.py``)."""
    global _EXECUTOR
    if _EXECUTOR is None:
        _EXECUTOR = ThreadPoolExecutor(os.cpu_count() or 2, thread_name_prefix="aec")
    return _EXECUTOR


def level_dbfs(pcm: np.ndarray) -> float:
    """RMS level of int16 samples in dB below full scale (-100 for silence)."""
    if not len(pcm):
        return -100.0
    power = float(np.mean(np.square(pcm.astype(np.float64)))) / 32768.0**2
    return 10.0 * np.log10(power) if power > 1e-10 else -100.0


@dataclass(frozen=True, slots=True)
class Reference:
    """The far end of one caller block, and what the bot's recent audio says about it."""

    block: np.ndarray
    active: bool  # the bot played audio within the last ECHO_TAIL_S
    recent_max_dbfs: float  # the loudest reference block of that time


class EchoCanceller:
    """One call's canceller: reference in with ``add_reference``, caller audio through
    ``process`` (16 kHz mono int16, ``BLOCK`` samples at a time)."""

    def __init__(self, min_erle_db: float = 12.0) -> None:
        self.min_erle_db = min_erle_db
        self._apm = rtc.AudioProcessingModule(echo_cancellation=True, high_pass_filter=True)
        self._apm.set_stream_delay_ms(0)  # the reference is already on the caller's timeline
        self._ring = np.zeros(_RING, np.int16)
        self._written_to = 0  # ring samples up to this absolute index have been written
        self._resampler: StreamResampler | None = None
        self._format: tuple[int, int] | None = None
        self._ref_next: int | None = None  # where the next played frame starts, if contiguous
        self._ref_at: int | None = None  # where the converter's next output sample goes
        self._ref_levels: deque[float] = deque(maxlen=round(ECHO_TAIL_S * 100))
        self.erle_db = 0.0
        self.blocks = 0
        self.suppressed = 0  # blocks turned down as residual echo
        self._reply_blocks = 0  # blocks since bot audio resumed after a pause

    # --- far end ------------------------------------------------------------
    def add_reference(self, pcm: np.ndarray, rate: int, channels: int, t: float) -> None:
        """The bot played ``pcm`` starting at call time ``t``."""
        start = round(t * RATE)
        contiguous = self._ref_next is not None and abs(start - self._ref_next) <= BLOCK // 4
        if not contiguous or (rate, channels) != self._format or self._resampler is None:
            # a new run (after a pause or a barge-in): finish the last one, and start the
            # converter afresh on the clock (it is zero-phase: sample 0 is time ``t``)
            if self._resampler is not None and self._ref_at is not None:
                self._store(self._ref_at, self._resampler.flush())
            self._format = (rate, channels)
            self._resampler = StreamResampler(rate, channels, RATE, 1)
            self._ref_at = start
            self._ref_next = start
        assert self._ref_at is not None and self._ref_next is not None
        self._ref_next += round(len(pcm) / channels * RATE / rate)
        mono = self._resampler.process(pcm)
        self._store(self._ref_at, mono)
        self._ref_at += len(mono)

    def _store(self, begin: int, mono: np.ndarray) -> None:
        for offset in range(0, len(mono), _RING // 2):
            part = mono[offset : offset + _RING // 2]
            i = (begin + offset) % _RING
            first = min(len(part), _RING - i)
            self._ring[i : i + first] = part[:first]
            self._ring[: len(part) - first] = part[first:]
        self._written_to = max(self._written_to, begin + len(mono))

    def _take_reference(self, start: int) -> np.ndarray:
        """The reference block at absolute sample ``start``, consumed (zeros where none)."""
        index = np.arange(start, start + BLOCK)
        slots = index % _RING
        fresh = (index < self._written_to) & (index >= self._written_to - _RING)
        block = np.where(fresh, self._ring[slots], 0).astype(np.int16)
        self._ring[slots] = 0
        return block

    # --- near end -----------------------------------------------------------
    def process(self, near: np.ndarray, pts: float) -> np.ndarray:
        """Cancel the echo in one ``BLOCK`` of caller audio that starts at call time ``pts``."""
        return self.cancel(near, self.reference_for(pts))

    def reference_for(self, pts: float) -> Reference:
        """The far end for the caller block at ``pts``, taken from the ring (on the event
        loop, where playback files it); ``cancel`` may then run on a worker thread."""
        block = self._take_reference(round((pts - REFERENCE_LAG_S) * RATE))
        self._ref_levels.append(level_dbfs(block))
        return Reference(block, self.reference_active, max(self._ref_levels))

    def cancel(self, near: np.ndarray, reference: Reference) -> np.ndarray:
        """AEC3 on one block with its far end (CPU work: one thread at a time per call)."""
        if near.size != BLOCK:
            raise ValueError(f"the echo canceller takes {BLOCK} samples, got {near.size}")
        far = rtc.AudioFrame(reference.block.tobytes(), RATE, 1, BLOCK)
        self._apm.process_reverse_stream(far)
        frame = rtc.AudioFrame(np.ascontiguousarray(near, np.int16).tobytes(), RATE, 1, BLOCK)
        self._apm.process_stream(frame)
        out = np.frombuffer(frame.data, dtype=np.int16).copy()
        if self._track(reference, near, out):
            out = (out.astype(np.int32) * _SUPPRESS // 1024).astype(np.int16)
            self.suppressed += 1
        return out

    def _track(self, reference: Reference, near: np.ndarray, out: np.ndarray) -> bool:
        """Update the ERLE; whether the block is (residual) echo only, to be suppressed."""
        self.blocks += 1
        if not reference.active:
            self._reply_blocks = 0
            return False
        self._reply_blocks += 1
        near_db = level_dbfs(near)
        if near_db < _FLOOR_DBFS:
            return False
        removed = near_db - level_dbfs(out)
        self.erle_db += _ERLE_SMOOTHING * (min(max(removed, 0.0), _ERLE_MAX_DB) - self.erle_db)
        # early in a reply, quieter than the bot by a line's loss, and mostly removed: what
        # is left is echo
        return (
            self._reply_blocks <= _SUPPRESS_BLOCKS
            and removed >= _ECHO_REMOVED_DB
            and near_db <= reference.recent_max_dbfs - _LINE_LOSS_DB
        )

    @property
    def reference_active(self) -> bool:
        """The bot played audio within the last ``ECHO_TAIL_S``."""
        return bool(self._ref_levels) and max(self._ref_levels) > _ACTIVE_DBFS

    @property
    def echo_loud(self) -> bool:
        """Residual echo may be loud enough for the VAD: bot audio is due back and the
        canceller has not (yet) reached ``min_erle_db``."""
        return self.reference_active and self.erle_db < self.min_erle_db


class EchoReference:
    """An ``AudioOutput`` that plays through ``output`` and hands each frame to the
    canceller as the far-end reference, at the call time it was played."""

    def __init__(self, output: AudioOutput, canceller: EchoCanceller) -> None:
        self.output = output
        self.canceller = canceller
        self.sample_rate = output.sample_rate
        self.channels = output.channels

    def write(self, pcm: np.ndarray, t: float) -> None:
        self.output.write(pcm, t)
        self.canceller.add_reference(pcm, self.sample_rate, self.channels, t)

    async def close(self) -> None:
        close = getattr(self.output, "close", None)
        if close is not None:
            result = close()
            if asyncio.iscoroutine(result):
                await result
