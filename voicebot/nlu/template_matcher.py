"""Intents from ``intents/*.yaml`` and the template matcher (exact tier, then fuzzy tier).

API summary (stable; the flow engine codes against it)::

    from voicebot.nlu.template_matcher import load_intents, TemplateMatcher

    intent_set, diags = load_intents(["intents/restaurant.yaml"])   # -> (IntentSet, [Diagnostic])
    intent_set.intents: dict[str, IntentDef]       # name -> definition
    intent_set.slot_types: dict[str, SlotType]     # definition name -> type (dialog.slots)
    intent_set.languages: tuple[str, ...]          # union of the files' `languages`
    IntentDef.name / .slots: dict[str, SlotType] (slot name -> type, from its templates)
             / .interim: bool / .languages: tuple[str, ...] / .description: str
             / .templates: dict[lang, list[str]] / .file, .line (where it is defined)

    m = TemplateMatcher(intent_set, "en", today=None)   # today: date | () -> date | None
    m.match("A table for 4 people on Friday at half past 7.", allowed={"book_table", "inform"})
      -> Match(intent="book_table", slots={"party_size": 4, "day": "friday", "time": "19:30"},
               confidence=1.0, matcher="exact", text="a table for 4 people on friday at ...")
    m.match(partial_text, allowed, interim=True)   # only `interim: true` intents, exact tier only

    SlotType.parse(text_or_value, language, today=None) -> canonical value | None
    SlotType.speak(value, language) -> str          # e.g. TimeSlot: "19:30" -> "half past seven"
    voicebot.nlu.slots: speak_integer, speak_digits, speak_day, speak_time

Canonical slot values: integer -> int; digits -> str of digits; day -> lower-case English
weekday ("friday"); time -> "HH:MM" (24 h); list -> the canonical value string; wildcard ->
the normalized words.

Modules: ``intent_file`` (YAML format, first pass) and ``intent_compile`` (templates,
diagnostics) load; ``templates`` parses with hassil; ``normalize`` and ``slots`` /
``slot_time`` make text and values comparable; ``wordgraph`` (exact tier) and ``fuzzy``
match; ``llm`` is the optional fallback; ``voicebot.bench.match`` measures.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection
from typing import Any

from voicebot.nlu.fuzzy import MAX_EDITS, FuzzyResult, align, edits_for, prefilter, similar_words
from voicebot.nlu.intent_compile import load_intents
from voicebot.nlu.intent_file import IntentDef, IntentSet
from voicebot.nlu.match import Match, Matcher
from voicebot.nlu.normalize import normalize
from voicebot.nlu.wordgraph import (
    Entry,
    Inside,
    Template,
    first_values,
    match_exact,
    match_inside,
)

__all__ = ["IntentDef", "IntentSet", "TemplateMatcher", "load_intents"]

AMBIGUITY_MARGIN = 0.05  # fuzzy: top two intents closer than this -> no match
_CACHE_LIMIT = 256  # distinct allowed-sets kept


# slot name, start -> (end, value) of each value of that slot starting there
_SpanFinder = Callable[[str, int], list[tuple[int, Any]]]


class TemplateMatcher(Matcher):
    """Exact matching on normalised text, then the bounded fuzzy tier.

    Exact: every template path whose slot values pass their type is a
    candidate; a value that fails (party_size 50 with max 20) makes that path
    fail rather than being reported, so the caller hears no match and
    reprompts. Skip words may be left out anywhere. Candidates rank by literal
    words matched, then by fewer open (time/digits/wildcard) slots; two intents
    tied at the top -> None. Fuzzy (not on partials, see ``fuzzy.py``):
    confidence < 1, None when the best two intents are within ``margin``.
    """

    def __init__(
        self,
        intent_set: IntentSet,
        language: str,
        *,
        today: dt.date | Callable[[], dt.date] | None = None,
        fuzzy: bool = True,
        margin: float = AMBIGUITY_MARGIN,
        fuzzy_max_words: int | None = None,
    ) -> None:
        data = intent_set.compiled.get(language)
        if data is None:
            raise ValueError(
                f"the intents have no {language!r} templates "
                f"(languages: {', '.join(intent_set.languages) or 'none'})"
            )
        self.language = language
        self.intent_set = intent_set
        self.fuzzy = fuzzy
        self.margin = margin
        self.fuzzy_max_words = fuzzy_max_words  # longer utterances skip the fuzzy tier
        self._today = today
        self._graph = data.graph
        self._types = intent_set.slot_types
        self._open = frozenset(n for n, t in self._types.items() if t.open)
        self._skip: dict[str, list[tuple[str, ...]]] = {}  # first word -> skip phrases
        for phrase in data.skip_words:
            self._skip.setdefault(phrase.split()[0], []).append(tuple(phrase.split()))
        self._by_intent: dict[str, list[Template]] = {}
        for template in self._graph.templates:
            self._by_intent.setdefault(template.intent, []).append(template)
        self._vocab = sorted(
            {w for t in self._graph.templates for w in t.vocab if len(w) >= 3 and not w.isdigit()}
        )
        self._first_words = {name: t.first_words(language) for name, t in self._types.items()}
        type_words = {name: t.words(language) for name, t in self._types.items()}
        self._inner_words = type_words
        self._slot_words: dict[int, frozenset[str] | None] = {}
        for t in self._graph.templates:
            sets = [type_words[name] for name in t.slot_types]
            known = [w for w in sets if w is not None]
            self._slot_words[t.start] = (
                None if len(known) < len(sets) else frozenset().union(*known)
            )
        self._restricted: dict[frozenset[str], tuple[Entry, list[Template]]] = {}
        # the last utterance's slot spans: the tiers ask about one turn several times
        self._last_spans: tuple[tuple[str, ...], dt.date, _SpanFinder] | None = None

    def today(self) -> dt.date:
        """The reference date for "today"/"tomorrow"."""
        if self._today is None:
            return dt.date.today()
        return self._today() if callable(self._today) else self._today

    def match(
        self,
        text: str,
        allowed: Collection[str] | None = None,
        *,
        interim: bool = False,
        expect: str | None = None,
        fuzzy: bool | None = None,
    ) -> Match | None:
        """The exact tier, then (``fuzzy``, default: as constructed) the fuzzy tier."""
        norm = normalize(text, self.language)
        words = norm.split()
        if not words:
            return None
        entry, templates = self._candidates(allowed, interim)
        if not templates:
            return None
        spans = self._spans(words)
        best = match_exact(self._graph, entry, words, spans, self._open, self._skips(words), expect)
        if best:
            ranked = sorted(best.items(), key=lambda item: item[1][:2], reverse=True)
            if len(ranked) > 1 and ranked[0][1][:2] == ranked[1][1][:2]:
                return None  # two intents fit equally well
            name, (_, _, slots) = ranked[0]
            return Match(name, first_values(slots), 1.0, "exact", norm)
        if (
            interim
            or not (self.fuzzy if fuzzy is None else fuzzy)
            or (self.fuzzy_max_words is not None and len(words) > self.fuzzy_max_words)
        ):
            return None
        return self._fuzzy(norm, words, templates, spans)

    def match_fuzzy(self, text: str, allowed: Collection[str] | None = None) -> Match | None:
        """The fuzzy tier alone (the exact tier found nothing)."""
        norm = normalize(text, self.language)
        words = norm.split()
        _, templates = self._candidates(allowed, False)
        if (
            not words
            or not templates
            or (self.fuzzy_max_words is not None and len(words) > self.fuzzy_max_words)
        ):
            return None
        return self._fuzzy(norm, words, templates, self._spans(words))

    def inside(self, words: list[str], allowed: Collection[str]) -> list[Inside]:
        """Templates of ``allowed`` matched by a stretch of ``words`` (normalised)."""
        entry, templates = self._candidates(allowed, False)
        if not templates or not words:
            return []
        return match_inside(self._graph, entry, words, self._spans(words), self._skips(words))

    def vocabulary(self) -> dict[str, frozenset[str]]:
        """Intent -> the words its templates have."""
        cached = getattr(self, "_vocabulary", None)
        if cached is None:
            words: dict[str, set[str]] = {}
            for t in self._graph.templates:
                words.setdefault(t.intent, set()).update(t.vocab)
            cached = {intent: frozenset(w) for intent, w in words.items()}
            self._vocabulary = cached
        return cached

    def distinctive(self) -> dict[str, str]:
        """Template words used by exactly one intent -> that intent."""
        cached = getattr(self, "_distinctive", None)
        if cached is None:
            owners: dict[str, set[str]] = {}
            for t in self._graph.templates:
                for word in t.vocab:
                    owners.setdefault(word, set()).add(t.intent)
            cached = {w: next(iter(o)) for w, o in owners.items() if len(o) == 1}
            self._distinctive = cached
        return cached

    def _candidates(
        self, allowed: Collection[str] | None, interim: bool
    ) -> tuple[Entry, list[Template]]:
        key = frozenset(self._by_intent if allowed is None else allowed) | (
            {"\0interim"} if interim else set()
        )
        hit = self._restricted.get(key)
        if hit is None:
            if len(self._restricted) >= _CACHE_LIMIT:
                self._restricted.clear()
            defs = self.intent_set.intents
            names = sorted(
                n for n in key if n in self._by_intent and (not interim or defs[n].interim)
            )
            templates = [t for n in names for t in self._by_intent[n]]
            entry = Entry.of(templates)
            hit = self._restricted[key] = (entry, templates)
        return hit

    def _spans(self, words: list[str]) -> _SpanFinder:
        """Slot spans of this utterance: (end, value) per start, each span parsed once
        (and once per turn: the same words ask again)."""
        key, today = tuple(words), self.today()
        last = self._last_spans
        if last is not None and last[0] == key and last[1] == today:
            return last[2]
        finder = self._span_finder(words, today)
        self._last_spans = (key, today, finder)
        return finder

    def _span_finder(self, words: list[str], today: dt.date) -> _SpanFinder:
        cache: dict[tuple[str, int], list[tuple[int, Any]]] = {}
        types, lang, n = self._types, self.language, len(words)
        starts, inner = self._first_words, self._inner_words
        tokens = ["#" if w[0].isdigit() else w for w in words]

        def spans(name: str, i: int) -> list[tuple[int, Any]]:
            found = cache.get((name, i))
            if found is None:
                slot = types[name]
                found = []  # stored once filled: a thread sharing the memo never sees it half-made
                first = starts[name]
                if i >= n or (first is not None and tokens[i] not in first):
                    cache[(name, i)] = found
                    return found
                limit = min(n, i + slot.max_words)
                allowed = inner[name]
                if allowed is not None:  # a value only spans words its type may contain
                    end = i + 1
                    while end < limit and tokens[end] in allowed:
                        end += 1
                    limit = end
                for j in range(i + 1, limit + 1):
                    value = slot.parse_normalized(" ".join(words[i:j]), lang, today)
                    if value is not None:
                        found.append((j, value))
                cache[(name, i)] = found
            return found

        return spans

    def _skips(self, words: list[str]) -> dict[int, list[int]]:
        """Position -> ends of the skip phrases starting there."""
        skips: dict[int, list[int]] = {}
        for i, word in enumerate(words):
            for phrase in self._skip.get(word, ()):
                if tuple(words[i : i + len(phrase)]) == phrase:
                    skips.setdefault(i, []).append(i + len(phrase))
        return skips

    def _fuzzy(
        self,
        norm: str,
        words: list[str],
        templates: list[Template],
        spans: Callable[[str, int], list[tuple[int, Any]]],
    ) -> Match | None:
        skipped: set[int] = set()
        for i, ends in self._skips(words).items():
            for j in ends:
                skipped.update(range(i, j))
        kept = [w for i, w in enumerate(words) if i not in skipped]
        if len(kept) != len(words):
            words, spans = kept, self._spans(kept)
        if not words:
            return None
        similar = similar_words(words, self._vocab)
        candidates = prefilter(templates, words, similar, self._slot_words)
        best: dict[str, FuzzyResult] = {}
        # Iterative deepening: most mishearings are one edit, and a one-edit DP is
        # cheap; any result found bounds what the remaining templates may cost.
        for budget in (1.0, MAX_EDITS):
            for template in candidates:
                found = align(self._graph, template, words, spans, similar, budget)
                if found is None:
                    continue
                old = best.get(found.intent)
                if old is None or (found.confidence, found.literals) > (
                    old.confidence,
                    old.literals,
                ):
                    best[found.intent] = found
                best_confidence = max(r.confidence for r in best.values())
                budget = min(budget, edits_for(best_confidence - self.margin))
            if best:
                break
        if not best:
            return None
        ranked = sorted(best.values(), key=lambda r: (r.confidence, r.literals), reverse=True)
        if len(ranked) > 1 and ranked[0].confidence - ranked[1].confidence < self.margin:
            return None
        top = ranked[0]
        return Match(top.intent, top.slots, top.confidence, "fuzzy", norm)
