"""Turn endpointing on top of the WebRTC voice-activity detector.

webrtcvad classifies single frames; a turn needs more: a click or cough must
not open one (``min_speech_ms`` of voiced audio within ``start_window_ms``),
a breath between phrases must not close it (``end_of_turn_ms`` of trailing
silence), and the ASR wants the audio just before the first voiced frame
(``preroll_ms``), because soft onsets are often classified as silence.

States: *silence* -> (voiced frame) -> *candidate* -> (enough voice) -> *speech*
-> (``end_of_turn_ms`` without voice) -> *silence*. A candidate whose window
passes without enough voice slides forward to its next voiced frame, or is
dropped. Each frame costs O(1) amortised.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np
import webrtcvad

_RATES = (8000, 16000, 32000, 48000)


@dataclass(slots=True, frozen=True)
class VadConfig:
    aggressiveness: int = 2
    frame_ms: int = 20
    preroll_ms: int = 300
    min_speech_ms: int = 150
    end_of_turn_ms: int = 500
    sample_rate: int = 16000
    # A candidate must gather min_speech_ms of voiced frames within this span.
    start_window_ms: int = 400

    def __post_init__(self) -> None:
        if self.aggressiveness not in (0, 1, 2, 3):
            raise ValueError(f"aggressiveness must be 0, 1, 2 or 3, got {self.aggressiveness!r}")
        if self.frame_ms not in (10, 20, 30):
            raise ValueError(f"frame_ms must be 10, 20 or 30 (webrtcvad), got {self.frame_ms!r}")
        if self.sample_rate not in _RATES:
            raise ValueError(f"sample_rate must be one of {_RATES} (webrtcvad), got {self.sample_rate!r}")
        for name in ("preroll_ms", "min_speech_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.end_of_turn_ms < self.frame_ms:
            raise ValueError(
                f"end_of_turn_ms must be at least one frame ({self.frame_ms} ms), "
                f"got {self.end_of_turn_ms!r}"
            )
        if self.start_window_ms < self.min_speech_ms:
            raise ValueError(
                f"start_window_ms ({self.start_window_ms}) must be >= min_speech_ms "
                f"({self.min_speech_ms})"
            )

    @property
    def frame_samples(self) -> int:
        return self.sample_rate * self.frame_ms // 1000


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
    """The turn ended: ``last_voiced`` is the end of its last voiced frame, ``t`` the decision."""

    last_voiced: float
    t: float


VadEvent = SpeechStart | Voice | SpeechEnd

_SILENCE, _CANDIDATE, _SPEECH = "silence", "candidate", "speech"


class Endpointer:
    """Feed exactly one frame per ``process`` call, with its start time ``pts`` (seconds)."""

    def __init__(self, config: VadConfig | None = None) -> None:
        self.config = config = config or VadConfig()
        self._vad = webrtcvad.Vad(config.aggressiveness)
        self._rate = config.sample_rate
        self._samples = config.frame_samples
        self._dur = config.frame_ms / 1000
        ms = config.frame_ms
        self._min_voiced = -(-config.min_speech_ms // ms)  # frames, rounded up
        self._window = max(config.start_window_ms // ms, self._min_voiced)  # frames
        self._eot = config.end_of_turn_ms / 1000
        self._preroll: deque[tuple[np.ndarray, float]] = deque(maxlen=-(-config.preroll_ms // ms))
        # Candidate frames as (frame, pts, voiced); _cand_voiced counts the voiced ones.
        self._cand: deque[tuple[np.ndarray, float, bool]] = deque()
        self._cand_voiced = 0
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
        """Forget all state (between calls, or after a barge-in flush)."""
        self._state = _SILENCE
        self._preroll.clear()
        self._cand.clear()
        self._cand_voiced = 0
        self._last_voiced = 0.0
        self._turn_frames = 0
        self._turn_voiced = 0

    def process(self, frame: np.ndarray, pts: float) -> list[VadEvent]:
        if frame.size != self._samples:
            raise ValueError(f"expected a frame of {self._samples} samples, got {frame.size}")
        voiced = self._vad.is_speech(frame, self._rate)
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
            events.append(SpeechEnd(self._last_voiced, pts))
        turn_frames, turn_voiced = self._turn_frames, self._turn_voiced
        self.reset()
        self._turn_frames, self._turn_voiced = turn_frames, turn_voiced
        return events

    def _in_speech(self, frame: np.ndarray, pts: float, voiced: bool) -> list[VadEvent]:
        self._preroll.append((frame, pts))
        self._turn_frames += 1
        end = pts + self._dur
        if voiced:
            self._turn_voiced += 1
            self._last_voiced = end
        elif end - self._last_voiced >= self._eot - 1e-9:
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
        self._last_voiced = next(p for _, p, v in reversed(cand) if v) + self._dur
        for f, p, _ in cand:
            self._preroll.append((f, p))
        cand.clear()
        self._cand_voiced = 0
        self._state = _SPEECH
        return SpeechStart(t, preroll)
