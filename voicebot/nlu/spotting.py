"""Slot values wherever they stand in an utterance, found by their types alone.

Templates only see a value at a template position; callers put values
anywhere ("um, Friday, if that's okay"). ``Spotter.find`` runs every finite
slot type's parser over the utterance and returns, per type and start, the
longest span it accepts ("half past 7" rather than "7"), dropping spans that
lie inside a longer span of the same type - except the part of a span before
a value of another type that overlaps its end ("on Thursday" of "on Thursday
3" in "on Thursday, 3 of us"). Which *slot* a span fills ("8" is a
party size after "for", a time after "at") is the statistical tier's question
(``statistical.py``); ``Spotter.tokens`` gives it and the intent classifier a
view of the utterance with each value replaced by its type ("a table for
@party_size_time on @day").

Free-text (wildcard) slots are never spotted: any words would do.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from voicebot.nlu.slots import SlotType


@dataclass(frozen=True, slots=True)
class Span:
    start: int
    end: int  # exclusive, in words
    definition: str  # the slot definition (type) that parsed it
    value: Any
    # a shorter reading of a longer span whose last words are another value: "on
    # Thursday" of "on Thursday 3" in "on Thursday, 3 of us" (the longer one is a date)
    cut: bool = False


class Spotter:
    """Finds slot values of ``types`` (definition name -> type) in normalised words."""

    def __init__(self, types: Mapping[str, SlotType], language: str) -> None:
        self.language = language
        self.types: dict[str, SlotType] = {}
        self._first: dict[str, frozenset[str] | None] = {}
        self._words: dict[str, frozenset[str]] = {}
        self._not: dict[str, list[tuple[str, ...]]] = {}
        for name, slot_type in types.items():
            words = slot_type.words(language)
            if words is None:
                continue  # free text: not spottable
            self.types[name] = slot_type
            self._first[name] = slot_type.first_words(language)
            self._words[name] = words
            nots = [tuple(p.split()) for p in slot_type.not_values(language)]
            if nots:
                self._not[name] = nots

    def find(self, words: list[str], today: dt.date | None = None) -> list[Span]:
        """Every value found, in utterance order (spans of different types may overlap)."""
        n = len(words)
        tokens = ["#" if w[0].isdigit() else w for w in words]
        found: list[Span] = []
        for name, slot_type in self.types.items():
            first, allowed = self._first[name], self._words[name]
            longest_end = -1  # the end of the last span kept, to drop spans inside it
            for i in range(n):
                if first is not None and tokens[i] not in first:
                    continue
                limit = i
                while limit < min(n, i + slot_type.max_words) and tokens[limit] in allowed:
                    limit += 1
                for j in range(limit, i, -1):
                    value = slot_type.parse_normalized(" ".join(words[i:j]), self.language, today)
                    if value is not None:
                        if j > longest_end:
                            found.append(Span(i, j, name, value))
                            longest_end = j
                        break
        # Every type that reads an extent exactly, even where its own longest reading
        # from there is longer ("2" is a count and a time, though "2 tonight" is a time too).
        extents = {(s.start, s.end) for s in found}
        have = {(s.start, s.end, s.definition) for s in found}
        for a, b in extents:
            text = " ".join(words[a:b])
            for name, slot_type in self.types.items():
                if (a, b, name) in have or b - a > slot_type.max_words:
                    continue
                if not all(t in self._words[name] or i == 0 for i, t in enumerate(tokens[a:b])):
                    continue
                value = slot_type.parse_normalized(text, self.language, today)
                if value is not None:
                    found.append(Span(a, b, name, value))
        found += self._cuts(words, found, today)
        # "nur eine Stunde Mittagspause", "in 2 hours": a number counting units is no
        # count of people and no clock time
        found = [
            s
            for s in found
            if not (
                s.end < n
                and words[s.end] in _UNITS
                and getattr(self.types[s.definition], "kind", "") in ("count", "time")
            )
            # "sagen wir 8", "machen wir 8": "let's say 8" - not "wir 8" (we are 8)
            and not (
                s.start > 0 and (words[s.start - 1], words[s.start]) in _LETS.get(self.language, ())
            )
            # "20 past" (the hour not heard): minutes, no clock time ("at 8 after the
            # theatre" stays 8)
            and not (
                s.end < n
                and words[s.end] in _MINUTES_OF.get(self.language, ())
                and (s.end + 1 == n or words[s.end + 1][0].isdigit())
                and getattr(self.types[s.definition], "kind", "") == "time"
            )
        ]
        if self._not:  # "the office Christmas do": no Christmas Day; "the only one": no count
            blocked = self._not_values(words)
            found = [
                s
                for s in found
                if not any(a <= s.start and s.end <= b for a, b in blocked.get(s.definition, ()))
            ]
        found.sort(key=lambda s: (s.start, -s.end, s.definition))
        return found

    def _not_values(self, words: list[str]) -> dict[str, list[tuple[int, int]]]:
        """Definition -> where in ``words`` a phrase stands that its type says names no
        value: no span of that type lies inside it (one that reaches beyond it reads
        more: "just the one" is one person, "the one o'clock" a time)."""
        out: dict[str, list[tuple[int, int]]] = {}
        for name, phrases in self._not.items():
            for phrase in phrases:
                k = len(phrase)
                for a, word in enumerate(words):
                    if word == phrase[0] and tuple(words[a : a + k]) == phrase:
                        out.setdefault(name, []).append((a, a + k))
        return out

    def _cuts(self, words: list[str], found: list[Span], today: dt.date | None) -> list[Span]:
        """Where a span's last words begin a value of another type that its own type
        cannot read ("on Thursday 3" and "3 of us", "half 8 tonight" and "tonight"), the
        span up to that value as well: the statistical tier's tiling then chooses."""
        extents = {(s.start, s.end, s.definition) for s in found}
        cuts: list[Span] = []
        for span in found:
            for other in found:
                if not (
                    span.start < other.start < span.end <= other.end
                    and other.definition != span.definition
                    and (other.start, other.end, span.definition) not in extents
                ):
                    continue
                key = (span.start, other.start, span.definition)
                if key in extents:
                    continue
                text = " ".join(words[span.start : other.start])
                value = self.types[span.definition].parse_normalized(text, self.language, today)
                if value is not None:
                    extents.add(key)
                    cuts.append(Span(span.start, other.start, span.definition, value, cut=True))
        return cuts

    @staticmethod
    def tokens(words: list[str], spans: list[Span]) -> list[str]:
        """The words with values replaced by ``@type`` tokens (longest spans first; a span
        two types accept exactly gets both names: ``@party_size_time``)."""
        by_extent: dict[tuple[int, int], set[str]] = {}
        for span in spans:
            by_extent.setdefault((span.start, span.end), set()).add(span.definition)
        taken = [False] * len(words)
        chosen: list[tuple[int, int, str]] = []
        for (start, end), names in sorted(
            by_extent.items(), key=lambda kv: (kv[0][0] - kv[0][1], kv[0][0])
        ):
            if any(taken[start:end]):
                continue
            for k in range(start, end):
                taken[k] = True
            chosen.append((start, end, "@" + "_".join(sorted(names))))
        out: list[str] = []
        marks = {start: (end, token) for start, end, token in chosen}
        i = 0
        while i < len(words):
            if i in marks:
                end, token = marks[i]
                out.append(token)
                i = end
            else:
                out.append(words[i])
                i += 1
        return out


# Nouns a number may count that are neither people nor the hour ("eine Stunde", "2 weeks").
_UNITS = frozenset(
    "hour hours minute minutes day days week weeks year years euro euros dollars pounds "
    "stunde stunden minute minuten viertelstunde tag tage tagen woche wochen jahr jahre monat "
    "monate".split()
)
# Words after a number that make it the minutes of an hour ("20 past", "zwanzig nach").
_MINUTES_OF = {"en": frozenset({"past", "after"}), "de": frozenset({"nach"})}
# A verb and "wir" that say "let's ...": no "wir" (we) opening a count after them.
_LETS = {
    "de": frozenset({("sagen", "wir"), ("machen", "wir"), ("nehmen", "wir"), ("probieren", "wir")})
}
