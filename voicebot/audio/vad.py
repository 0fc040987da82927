"""Turn endpointing on top of the WebRTC voice-activity detector.

webrtcvad classifies single frames; a turn needs more: a click or cough must
not open one (``min_speech_ms`` of voice within ``start_window_ms``), a breath
between phrases must not close it (``end_of_turn_ms`` of trailing silence),
and the ASR wants the audio just before the first voiced frame
(``preroll_ms``), because soft onsets are often classified as silence.

webrtcvad keeps flagging frames as voiced after the sound stops (its
"overhang": 60-100 ms at 20 ms frames, longer after longer bursts), so a 60 ms
click reads as 140 ms of voice and a 250 ms pause as 150 ms of silence. The
overhang is measured once per mode and frame size and taken off both ends:
a start needs ``min_speech_ms`` plus the overhang of voiced frames, and
``SpeechEnd.last_voiced`` is the detector's last voiced frame end minus the
overhang its voiced run implies, so ``end_of_turn_ms`` is real trailing silence.

States: *silence* -> (voiced frame) -> *candidate* -> (enough voice) -> *speech*
-> (``end_of_turn_ms`` without voice) -> *silence*. A candidate whose window
passes without enough voice slides forward to its next voiced frame, or is
dropped. Each frame costs O(1) amortised.
"""

from __future__ import annotations

import functools
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import webrtcvad

from voicebot.config import VadSettings


@dataclass(slots=True)
class SpeechStart:
    """A turn began at ``t`` (start of its first voiced frame).

    ``preroll`` holds ``(frame, pts)`` in order: up to ``preroll_ms`` of audio
    before ``t``, then every frame from ``t`` up to and including the one that
    confirmed the turn. Frames after it arrive as ``Voice`` events.
    """

    t: float
    preroll: list[tuple[np.ndarray, float]] = field(repr=False)


@dataclass(slots=True)
class Voice:
    """One frame inside a turn, with webrtcvad's verdict on it."""

    frame: np.ndarray = field(repr=False)
    pts: float
    voiced: bool


@dataclass(slots=True)
class SpeechEnd:
    """The turn ended.

    ``last_voiced`` is the end of the last voiced frame less the detector's
    overhang (where the voice really stopped); ``t`` is the end of the frame at
    which the end was decided, ``last_voiced + end_of_turn_ms`` to within a frame.
    """

    last_voiced: float
    t: float


VadEvent = SpeechStart | Voice | SpeechEnd

_SILENCE, _CANDIDATE, _SPEECH = "silence", "candidate", "speech"


class Endpointer:
    """Feed exactly one frame per ``process`` call, with its start time ``pts`` (seconds).

    Frames are contiguous int16 mono arrays of ``config.frame_samples`` samples.
    ``config`` is the pipeline's ``vad`` section (checked when it was made).
    """

    def __init__(self, config: VadSettings | None = None) -> None:
        self.config = config = config or VadSettings()
        self._rate = config.sample_rate
        self._samples = config.frame_samples
        self._dur = config.frame_ms / 1000
        self._eot = config.end_of_turn_ms / 1000 - 1e-9  # float slack for frame sums
        ms = config.frame_ms
        # Detector overhang (frames) after a voiced run of r frames, for r = 0, 1, 2, ...
        self._run_overhang = _run_overhang(config.aggressiveness, ms, config.sample_rate)
        min_voiced = -(-config.min_speech_ms // ms)  # frames, rounded up
        burst = _burst_overhang(config.aggressiveness, ms, config.sample_rate, min_voiced - 1)
        self._min_voiced = min_voiced + burst if min_voiced else 0
        self._window = max(config.start_window_ms // ms, min_voiced) + burst  # frames
        self._preroll: deque[tuple[np.ndarray, float]] = deque(maxlen=-(-config.preroll_ms // ms))
        # Candidate frames as (frame, pts, voiced); _cand_voiced counts the voiced ones.
        self._cand: deque[tuple[np.ndarray, float, bool]] = deque()
        self.reset()

    @property
    def state(self) -> str:
        """``"silence"``, ``"candidate"`` or ``"speech"``."""
        return self._state

    @property
    def in_speech(self) -> bool:
        return self._state is _SPEECH

    @property
    def voiced_ratio(self) -> float:
        """Share of voiced frames in the current (or last) turn: low values hint at noise."""
        return self._turn_voiced / self._turn_frames if self._turn_frames else 0.0

    def reset(self) -> None:
        """Forget all state, the detector's noise estimate included (e.g. between calls)."""
        self._vad = webrtcvad.Vad(self.config.aggressiveness)
        self.frame_voiced = False  # webrtcvad's verdict on the last frame
        self._state = _SILENCE
        self._preroll.clear()
        self._cand.clear()
        self._cand_voiced = 0
        self._run = 0  # current run of voiced frames
        self._voice_end = 0.0  # end of the last voiced frame, as the detector said
        self._last_voiced = 0.0  # ... less the overhang, once its run is over
        self._turn_frames = 0
        self._turn_voiced = 0

    def process(self, frame: np.ndarray, pts: float) -> list[VadEvent]:
        if frame.size != self._samples or frame.dtype != np.int16:
            raise ValueError(
                f"expected {self._samples} int16 samples, got {frame.size} {frame.dtype}"
            )
        # As bytes: webrtcvad takes len(buf) / 2 as the sample count.
        voiced = self._vad.is_speech(frame.view(np.uint8), self._rate)
        self.frame_voiced = voiced
        if voiced:
            self._run += 1
            self._voice_end = pts + self._dur
        elif self._run:
            table = self._run_overhang
            overhang = table[min(self._run, len(table) - 1)]
            self._last_voiced = self._voice_end - overhang * self._dur
            self._run = 0
        state = self._state
        if state is _SPEECH:
            return self._in_speech(frame, pts, voiced)
        if state is _SILENCE and not voiced:
            self._preroll.append((frame, pts))
            return []
        return self._in_candidate(frame, pts, voiced)

    def finish(self, pts: float) -> list[VadEvent]:
        """End of input at ``pts``: close an open turn; a pending candidate is dropped."""
        events: list[VadEvent] = []
        if self._state is _SPEECH:
            # Voice still running at the end of input has no overhang to take off.
            last = self._voice_end if self._run else self._last_voiced
            events.append(SpeechEnd(last, pts))
        turn_frames, turn_voiced = self._turn_frames, self._turn_voiced
        self.reset()
        self._turn_frames, self._turn_voiced = turn_frames, turn_voiced
        return events

    def _in_speech(self, frame: np.ndarray, pts: float, voiced: bool) -> list[VadEvent]:
        self._preroll.append((frame, pts))
        self._turn_frames += 1
        self._turn_voiced += voiced
        end = pts + self._dur
        if not voiced and end - self._last_voiced >= self._eot:
            self._state = _SILENCE
            return [Voice(frame, pts, voiced), SpeechEnd(self._last_voiced, end)]
        return [Voice(frame, pts, voiced)]

    def _in_candidate(self, frame: np.ndarray, pts: float, voiced: bool) -> list[VadEvent]:
        cand = self._cand
        cand.append((frame, pts, voiced))
        self._cand_voiced += voiced
        self._state = _CANDIDATE
        if self._cand_voiced >= self._min_voiced:
            return [self._start()]
        # Window over: slide the start to the next voiced frame, handing skipped
        # frames to the pre-roll; with no voiced frame left, back to silence.
        while len(cand) > self._window or (cand and not cand[0][2]):
            f, p, v = cand.popleft()
            self._cand_voiced -= v
            self._preroll.append((f, p))
        if not cand:
            self._state = _SILENCE
        return []

    def _start(self) -> SpeechStart:
        cand = self._cand
        t = cand[0][1]
        preroll = [*self._preroll, *((f, p) for f, p, _ in cand)]
        self._turn_frames = len(cand)
        self._turn_voiced = self._cand_voiced
        self._preroll.extend((f, p) for f, p, _ in cand)
        cand.clear()
        self._cand_voiced = 0
        self._state = _SPEECH
        return SpeechStart(t, preroll)


@functools.lru_cache(maxsize=64)
def _burst_overhang(aggressiveness: int, frame_ms: int, rate: int, burst_frames: int) -> int:
    """Frames webrtcvad still flags as voiced after a noise burst of ``burst_frames`` ends."""
    if burst_frames <= 0:
        return 0
    n = rate * frame_ms // 1000
    lead = 15  # frames of silence first, so the detector has settled
    rng = np.random.default_rng(0)
    burst = np.clip(rng.standard_normal(n * burst_frames) * 3000, -32768, 32767)
    probe = np.concatenate([np.zeros(n * lead), burst, np.zeros(n * 40)]).astype(np.int16)
    vad = webrtcvad.Vad(aggressiveness)
    flags = [vad.is_speech(probe[i : i + n].view(np.uint8), rate) for i in range(0, probe.size, n)]
    after = flags[lead + burst_frames :]
    return next((i for i, v in enumerate(after) if not v), len(after))


@functools.lru_cache(maxsize=16)
def _run_overhang(aggressiveness: int, frame_ms: int, rate: int) -> tuple[int, ...]:
    """Overhang to take off a detected voiced run of ``r`` frames (index ``r``).

    A burst of ``k`` frames reads as a run of ``k + h(k)``; a run of ``r`` is
    credited with ``h`` of the longest burst that fits in it, and at least one
    frame is always kept. Webrtcvad's overhang stops growing after 6 frames of
    voice; 12 bursts cover that with room to spare.
    """
    bursts = []  # (detected run, overhang) per burst length
    for k in range(1, 13):
        h = _burst_overhang(aggressiveness, frame_ms, rate, k)
        bursts.append((k + h, h))
    table = [0]
    for r in range(1, max(run for run, _ in bursts) + 1):
        fitting = max((h for run, h in bursts if run <= r), default=0)
        table.append(min(fitting, r - 1))
    return tuple(table)
