"""The matcher interface the dialog stage talks to.

``matcher.py`` implements it (templates, then the statistical tier trained from
them); ``llm.py`` adds an optional OpenAI-compatible fallback. The flow engine
only ever sees ``Match`` objects, so how a match was found stays swappable.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, Literal

# The read-back convention: a state that reads values back (a flow's ``confirm:``) takes a
# yes and a no by these intent names; the matcher knows a yes opening a request of its
# own is no answer, a no before values is a correction.
AFFIRM = "affirm"
DENY = "deny"
CONFIRM_INTENTS = (AFFIRM, DENY)

MatcherKind = Literal["exact", "fuzzy", "statistical", "spotted", "llm", "dtmf"]


@dataclass(slots=True)
class Match:
    intent: str
    slots: dict[str, Any] = field(default_factory=dict)
    confidence: float = 1.0
    matcher: MatcherKind = "exact"
    text: str = ""  # the normalized utterance that matched
    # Values of slots the intent does not carry, said along with it ("no, Saturday" as a
    # deny): a flow may take them as a correction.
    mentioned: dict[str, Any] = field(default_factory=dict)
    # Values read only from words the recogniser was unsure of (``nlu/unsure.py``): not
    # acted on; the flow asks for these slots again.
    unsure: dict[str, Any] = field(default_factory=dict)


class Matcher(ABC):
    """Maps an utterance (ASR output) to one intent among ``allowed``, or to nothing."""

    language: str

    @abstractmethod
    def match(
        self,
        text: str,
        allowed: Collection[str] | None = None,
        *,
        interim: bool = False,
        expect: str | None = None,
    ) -> Match | None:
        """Best match, or None when nothing fits or two intents are too close to call.

        ``allowed`` restricts the candidates (None = all intents). ``interim``:
        the text is a partial transcript; only intents marked ``interim: true``
        may match. ``expect``: the slot the bot just asked for; a reading that
        fills it wins over other readings of the same words.
        """

    async def match_async(
        self,
        text: str,
        allowed: Collection[str] | None = None,
        *,
        interim: bool = False,
        expect: str | None = None,
    ) -> Match | None:
        """Like ``match``; matchers with remote fallbacks override this."""
        return self.match(text, allowed, interim=interim, expect=expect)
