"""The speech-synthesis engine interface.

An engine turns one clause of text into audio, yielding 16-bit mono PCM chunks
as soon as they exist. Splitting a reply into clauses is the TTS stage's job
(``tts/split.py``), so every engine streams at clause granularity at least.
Synthesis runs in the engine's executor, never on the event loop.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator

import numpy as np

PcmChunks = AsyncGenerator[np.ndarray, None]
"""What ``synthesize`` returns: int16 mono chunks from an async generator, which a
consumer that stops early closes with ``aclose``."""


class TtsEngine(ABC):
    name: str = "tts"
    sample_rate: int = 22050

    @abstractmethod
    def synthesize(self, text: str) -> PcmChunks:
        """Yield int16 mono chunks at ``sample_rate`` for ``text``."""

    async def warm_up(self) -> None:  # noqa: B027 - optional hook, empty by default
        """Load the voice and synthesize a word so the first reply is not slow."""
