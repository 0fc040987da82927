"""A whole text through a TTS engine at a chosen rate, clause by clause, as it is produced.

What the speech API and ``voicebot speak`` stream: the text is split like the TTS
stage splits replies (a short first clause, so first audio comes early), and the
engine's chunks are resampled on the way out.
"""

from __future__ import annotations

from voicebot.audio.resample import StreamResampler
from voicebot.tts.base import PcmChunks, TtsEngine
from voicebot.tts.split import split_clauses
from voicebot.tts.stage import FIRST_MAX_CHARS, FIRST_MIN_CHARS


async def speak_pcm(engine: TtsEngine, text: str, rate: int) -> PcmChunks:
    """int16 mono chunks of ``text`` at ``rate``."""
    resampler = (
        None if engine.sample_rate == rate else StreamResampler(engine.sample_rate, 1, rate, 1)
    )
    for clause in split_clauses(text, FIRST_MIN_CHARS, first_max_chars=FIRST_MAX_CHARS):
        chunks = engine.synthesize(clause)
        try:
            async for chunk in chunks:
                out = chunk if resampler is None else resampler.process(chunk)
                if len(out):
                    yield out
        finally:
            await chunks.aclose()
    if resampler is not None and len(tail := resampler.flush()):
        yield tail
