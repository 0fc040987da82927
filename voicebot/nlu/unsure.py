"""Words the recogniser was unsure of: a value read from them is asked for, not taken.

A misheard slot word taken at face value is the commonest wrong action through a
recogniser ("a table for *forum*" -> four, "half past *heaven*" -> 7:30). The ASR stage
marks the words Whisper heard with a low probability (``asr.unsure_below``); the
utterance is then matched twice, as heard and with those words masked. A slot value
the masked reading does not give as well was read from an unsure word: it moves to
``Match.unsure`` and the flow asks for that slot again instead of filling it. An intent
the masked reading does not agree on (led to the same action) rests on an unsure word
too: it is no reading, the bot asks.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from voicebot.nlu.match import Match, Matcher

MASK = "zzz"  # a word no intent file has and normalisation keeps: a substitution


def masked(text: str, unsure: Collection[int]) -> str:
    """``text`` with its ``unsure`` words (indexes in ``text.split()``) replaced."""
    return " ".join(MASK if i in unsure else w for i, w in enumerate(text.split()))


async def match_unsure(
    matcher: Matcher,
    text: str,
    unsure: Collection[int],
    allowed: Collection[str] | None = None,
    *,
    expect: str | None = None,
) -> Match | None:
    """``matcher``'s reading of ``text``, with nothing acted on that only its ``unsure``
    words gave (see the module docstring)."""
    found = await matcher.match_async(text, allowed, expect=expect)
    if found is None or not unsure:
        return found
    probe = await matcher.match_async(masked(text, unsure), allowed, expect=expect)
    if probe is None or _action(allowed, probe.intent) != _action(allowed, found.intent):
        return None
    kept = {**probe.mentioned, **probe.slots}
    slots: dict[str, Any] = {}
    mentioned: dict[str, Any] = {}
    doubtful = dict(found.unsure)
    for source, target in ((found.slots, slots), (found.mentioned, mentioned)):
        for name, value in source.items():
            if _same(kept.get(name), value):
                target[name] = value
            else:
                doubtful[name] = value
    return Match(
        found.intent,
        slots,
        found.confidence,
        found.matcher,
        found.text,
        mentioned,
        doubtful,
    )


def _action(allowed: Collection[str] | None, intent: str) -> str:
    if isinstance(allowed, Mapping):
        return str(allowed.get(intent, intent))
    return intent


def _same(a: Any, b: Any) -> bool:
    return a is not None and a == b and getattr(a, "date", None) == getattr(b, "date", None)
