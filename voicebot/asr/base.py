"""The speech-recognition engine interface.

An engine knows nothing of frames or queues (``asr/stage.py`` adapts it to the
graph). Audio is 16 kHz mono float32 in [-1, 1]. Engines do their heavy work
off the event loop: ``AsrSession.partial`` and ``finish`` are coroutines that
run the whole decode in the engine's executor.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from voicebot.frames import HeardWord

SAMPLE_RATE = 16000


@dataclass(slots=True)
class AsrResult:
    text: str
    language: str = ""
    no_speech_prob: float = 0.0
    avg_logprob: float = 0.0
    decode_ms: float = 0.0
    engine: str = ""  # who answered, when a remote engine may fall back to a local one
    # one per word of ``text``, or empty where the engine gives no word probabilities
    words: tuple[HeardWord, ...] = ()


class AsrSession(ABC):
    """One caller turn: feed audio as it arrives, ask for partials, finish once."""

    @abstractmethod
    def feed(self, audio: np.ndarray) -> None:
        """Append 16 kHz mono float32 audio (cheap; called on the loop)."""

    @property
    @abstractmethod
    def duration(self) -> float:
        """Seconds of audio fed so far."""

    @abstractmethod
    async def partial(self) -> AsrResult:
        """Transcribe what was fed so far (the session stays open)."""

    @abstractmethod
    async def finish(self) -> AsrResult:
        """Final transcript of the whole turn; the session is closed after it."""


class AsrEngine(ABC):
    name: str = "asr"

    @abstractmethod
    def session(self, language: str | None = None, *, context: str | None = None) -> AsrSession:
        """One caller turn. ``context``: what the bot just asked ("At what time?"), text the
        recogniser may condition on (Whisper's prompt) so an answer is read in its light."""

    @abstractmethod
    async def transcribe(
        self, audio: np.ndarray, language: str | None = None, *, context: str | None = None
    ) -> AsrResult:
        """Transcribe a whole clip (batch use, tests, benchmarks)."""

    async def warm_up(self) -> None:  # noqa: B027 - optional hook, empty by default
        """Load models / run one tiny decode so the first call is not slow."""
