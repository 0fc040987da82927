"""Typed frames: the only things that travel on the graph's edges.

Two families, told apart by the class attribute ``control``:

* data frames keep their order and are subject to an edge's overflow policy;
* control frames (``Interrupt``, ``EndOfCall``) are never
  dropped and overtake queued data.

``flushable`` data frames belong to the bot's reply (reply text, synthesized
audio); an ``Interrupt`` discards them wherever they are queued.
``droppable`` frames (real-time audio) may be dropped by a drop-oldest edge.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np


@dataclass(slots=True)
class Frame:
    control: ClassVar[bool] = False
    flushable: ClassVar[bool] = False
    droppable: ClassVar[bool] = False


# --- audio -----------------------------------------------------------------


@dataclass(slots=True)
class AudioFrame(Frame):
    """Caller audio: interleaved signed 16-bit PCM.

    ``pts`` is the frame's start on the caller's timeline (seconds since call
    start). ``voiced`` is set by the VAD stage (None before it).
    """

    droppable: ClassVar[bool] = True

    pcm: np.ndarray
    sample_rate: int
    channels: int = 1
    pts: float = 0.0
    voiced: bool | None = None

    @property
    def samples(self) -> int:
        return len(self.pcm) // self.channels

    @property
    def duration(self) -> float:
        return self.samples / self.sample_rate

    @property
    def end(self) -> float:
        return self.pts + self.duration


@dataclass(slots=True)
class BotAudioFrame(Frame):
    """Synthesized reply audio on its way to playback (mono or interleaved)."""

    flushable: ClassVar[bool] = True

    pcm: np.ndarray
    sample_rate: int
    channels: int = 1
    turn: int = 0

    @property
    def duration(self) -> float:
        return len(self.pcm) / self.channels / self.sample_rate


# --- voice activity ----------------------------------------------------------


@dataclass(slots=True)
class SpeechStarted(Frame):
    """The caller started a turn; ``t`` is the first voiced audio (pre-roll excluded)."""

    t: float
    turn: int


@dataclass(slots=True)
class SpeechStopped(Frame):
    """End of turn: ``last_voiced`` is when speech ended, ``t`` when the VAD decided."""

    t: float
    last_voiced: float
    turn: int


# --- text ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HeardWord:
    """One word of a transcript (as ``text.split()`` gives it) and the probability the
    recogniser gave it: the least sure of its tokens, punctuation aside."""

    text: str
    probability: float


SecondPass = Callable[[], Awaitable[tuple[str, tuple[int, ...]]]]
"""The turn's audio recognised again by a larger model: (transcript, its unsure words)."""


@dataclass(slots=True)
class Transcript(Frame):
    """What the caller said. ``unsure``: indexes (in ``text.split()``) of the words the
    recogniser heard with too low a probability (``asr.unsure_below``) to act on a value
    read from them. ``second_pass`` (finals, with ``asr.second_pass``): recognises the
    turn again, for the dialog to try where this transcript matched nothing."""

    text: str
    final: bool
    turn: int
    language: str = ""
    confidence: float = 1.0
    unsure: tuple[int, ...] = ()
    second_pass: SecondPass | None = None


@dataclass(slots=True)
class ReplyText(Frame):
    """Text the bot says; the TTS stage splits it into clauses."""

    flushable: ClassVar[bool] = True

    text: str
    turn: int
    barge_in: bool = True


@dataclass(slots=True)
class ReplyDone(Frame):
    """Marks the end of one reply's audio so playback can report it."""

    flushable: ClassVar[bool] = True

    turn: int


@dataclass(slots=True)
class EndOfStream(Frame):
    """Graceful end of input: ordered like data, so queued work drains first."""


DTMF_KEYS = "0123456789*#ABCD"
"""The keypad's sixteen keys, in the order of their RFC 4733 event codes (0-15)."""


@dataclass(slots=True)
class Dtmf(Frame):
    """A key the caller pressed on the keypad (``0``-``9``, ``*``, ``#``, ``A``-``D``), from any
    transport (``transports/dtmf.press``); ``turn`` is the caller turn it opens."""

    digit: str
    turn: int
    t: float = 0.0


# --- control ----------------------------------------------------------------


@dataclass(slots=True)
class Interrupt(Frame):
    """Caller barged in: drop the bot's queued reply everywhere downstream."""

    control: ClassVar[bool] = True

    reason: str = "barge_in"
    t: float = 0.0


@dataclass(slots=True)
class EndOfCall(Frame):
    """Hang-up or cancel: overtakes everything, stages stop at once."""

    control: ClassVar[bool] = True

    reason: str = "hangup"
