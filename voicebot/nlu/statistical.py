"""The statistical tier: an intent classifier and a slot filler trained from the templates.

After Snips NLU: the deterministic template parser answers first; when it
cannot, a probabilistic model trained on sentences generated from the same
templates (``samples.py``) reads phrasings no template spells out and words
the recogniser got wrong. Both models are scikit-learn logistic regressions
(CPU, milliseconds to train per thousand sentences, well calibrated
probabilities for a linear model):

* **intent**: TF-IDF of word uni/bigrams and character 2-4-grams of the
  utterance with every spotted value replaced by its type (``a table for
  @party_size_time on @day``), so "Friday" and "Saturday" look alike and an
  unseen value is no unseen word. Classes are the bot's intents plus the
  none class (``out_of_scope.py`` and the intent file's ``none_examples``).
* **slots**: every span the spotter found (``spotting.py``) is classified as
  one of the slots its type can fill, or as none, from its neighbours, its
  shape and the slot the bot asked for ("8" after "for" is a party size, after
  "at" a time, alone after "At what time?" a time).

Training takes a few seconds, so a model is built once per content of the
intent files and cached (``$VOICEBOT_CACHE/nlu/<sha256>.pkl``); a changed file
trains a new one at load time.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import re
import tempfile
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import sklearn
from sklearn.feature_extraction import DictVectorizer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, make_pipeline

from voicebot.cache_dir import cache_dir
from voicebot.nlu.intent_file import IntentSet
from voicebot.nlu.normalize import normalize
from voicebot.nlu.out_of_scope import OUT_OF_SCOPE
from voicebot.nlu.samples import Sample, augment, generate
from voicebot.nlu.spotting import Span, Spotter

log = logging.getLogger(__name__)

NONE = ""  # the class of utterances that carry no intent of the bot
OUTSIDE = "O"  # a spotted value that fills no slot
MODEL_VERSION = 6  # bump when features or training change: old caches are then ignored


@dataclass(slots=True)
class SlotGuess:
    slot: str
    span: Span
    probability: float
    readings: tuple[tuple[str, Any], ...] = ()  # (slot, value) of the other ways to read it


class StatisticalModel:
    """Both classifiers of one language, with the spotter they were trained against."""

    def __init__(self, intent_set: IntentSet, language: str) -> None:
        self.language = language
        self.slot_definitions = intent_set.slot_definitions()
        self.spotter = Spotter(
            {d: intent_set.slot_types[d] for d in set(self.slot_definitions.values())}, language
        )
        self.open_definitions = frozenset(
            d for d in set(self.slot_definitions.values()) if intent_set.slot_types[d].open
        )
        self.cues = {d: intent_set.slot_types[d].cue_words(language) for d in self.open_definitions}
        self.skip: dict[str, list[tuple[str, ...]]] = {}
        data = intent_set.compiled.get(language)
        for phrase in sorted(data.skip_words if data else [], key=lambda p: -len(p.split())):
            words = tuple(phrase.split())
            self.skip.setdefault(words[0], []).append(words)
        self.intent_model: Any = None
        self.role_model: Any = None
        self.classes: list[str] = []
        self.train_seconds = 0.0
        self.samples = 0
        # intents every template of which carries a value ("inform"): read with none,
        # they are no reading ("It's a blue one." names nothing the bot asked for)
        self.valued: frozenset[str] = frozenset()

    # --- inference ---------------------------------------------------------------
    def tokens(self, words: list[str], spans: list[Span]) -> list[str]:
        """What the intent classifier reads: values as types, the intent file's skip words
        ("please", "thank you") left out."""
        tokens = Spotter.tokens(words, spans)
        if not self.skip:
            return tokens
        out: list[str] = []
        i = 0
        while i < len(tokens):
            for phrase in self.skip.get(tokens[i], ()):
                if tuple(tokens[i : i + len(phrase)]) == phrase:
                    i += len(phrase)
                    break
            else:
                out.append(tokens[i])
                i += 1
        return out or tokens

    def intents(self, tokens: list[str]) -> dict[str, float]:
        """Class -> probability for the typed tokens (``Spotter.tokens``); NONE included.

        An utterance with no word the training sentences had is NONE outright: letter
        groups alone ("grüne giraffen" ~ "grüezi") are no evidence of an intent."""
        fast = self._fast()
        if not any(t in fast.known_words for t in tokens):
            return {c: float(c == NONE) for c in self.classes}
        probs = fast.intent(" ".join(tokens))
        return dict(zip(self.classes, (float(p) for p in probs), strict=True))

    def known_share(self, tokens: list[str]) -> float:
        """The share of the utterance's words any training sentence had (values count as
        known): low for a garbled transcript ("ich muss die Fufreiterkinen Tisch, Fufi")."""
        if not tokens:
            return 0.0
        known = self._fast().known_words
        return sum(1 for t in tokens if t.startswith("@") or t in known) / len(tokens)

    def _fast(self) -> _FastPaths:
        fast = self.__dict__.get("_fast_paths")
        if fast is None:
            fast = self.__dict__["_fast_paths"] = _FastPaths(self)
        return fast

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_fast_paths", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def slots(
        self,
        words: list[str],
        spans: list[Span],
        expect: str | None,
        wanted: Collection[str] | None = None,
        threshold: float = 0.5,
    ) -> list[SlotGuess]:
        """Which spotted spans fill which slot (``wanted``: the slots worth reporting).

        ``expect``, the slot the bot asked for, is a prior: its odds are multiplied by
        ``EXPECT_ODDS`` (a bare "8" after "At what time?" is a time, "at 7" after "For how
        many?" still a time). Overlapping spans: the most probable tiling wins; a slot
        given twice, see ``_one_per_slot``."""
        extents = _extents(spans)
        if not extents or self.role_model is None:
            return []
        keys = list(extents)
        rows = [span_features(words, a, b, extents[(a, b)]) for a, b in keys]
        fast = self._fast()
        labels = fast.role_labels
        table = [
            _with_prior(
                self._tempered(fast.role(row), labels, words, a, b, extents[(a, b)], expect),
                labels,
                self._named(words, a, labels) or self._contrasted(words, a, b, extents) or expect,
            )
            for row, (a, b) in zip(rows, keys, strict=True)
        ]
        for k, (a, b) in enumerate(keys):
            timed = self._time_talked(words, a, b, extents, expect)
            if timed is not None:  # the turn's words decide, whatever the neighbours say
                table[k] = _decided(table[k], labels, timed)
        guesses: list[SlotGuess] = []
        for (a, b), probs in zip(keys, table, strict=True):
            by_definition = {s.definition: s for s in extents[(a, b)]}
            best: SlotGuess | None = None
            readings = []
            for label, p in zip(labels, probs, strict=True):
                definition = self.slot_definitions.get(label)
                if definition not in by_definition:
                    continue
                readings.append((label, by_definition[definition].value))
                if wanted is not None and label not in wanted:
                    continue
                if best is None or p > best.probability:
                    best = SlotGuess(label, by_definition[definition], float(p))
            if best is not None and best.probability >= threshold:
                best.readings = tuple(r for r in readings if r[0] != best.slot)
                guesses.append(best)
        return _one_per_slot(
            words, _best_tiling(_whole(guesses)), self.language, [(a, b) for a, b in keys]
        )

    def _tempered(
        self,
        probs: np.ndarray,
        labels: list[str],
        words: list[str],
        a: int,
        b: int,
        group: list[Span],
        expect: str | None,
    ) -> np.ndarray:
        """A bare number two slots read ("let's go with 7", "maybe 6?") after a question
        for one of them: the filler never learnt such a number as the open slot (see
        ``_asked_only``), so its certainty that it is the other is no evidence - it is
        weighed ``UNCUED_TRUST`` against even odds of the readings, and the question
        asked decides unless the words around it clearly do ("a table for 7 people" is
        a longer value; "at 7" a cue)."""
        if expect is None or b - a != 1 or not words[a].isdigit():
            return probs
        if a > 0 and any(words[a - 1] in cues for cues in self.cues.values()):
            return probs  # "at 7": the cue says which
        definitions = {s.definition for s in group}
        if len(definitions) < 2 or self.slot_definitions.get(expect) not in definitions:
            return probs
        readings = [
            i for i, label in enumerate(labels) if self.slot_definitions.get(label) in definitions
        ]
        even = np.zeros_like(probs)
        even[readings] = 1.0 / len(readings)
        mixed: np.ndarray = UNCUED_TRUST * probs + (1.0 - UNCUED_TRUST) * even
        return mixed

    def _named(self, words: list[str], a: int, labels: list[str]) -> str | None:
        """The slot the words just before ``words[a]`` name ("the time, 8", "die
        Uhrzeit: 20 Uhr", "number of people 6"): a prior like the question asked."""
        before = [w for w in words[max(0, a - 4) : a] if w not in _NAMING_FILLERS]
        if not before:
            return None
        kind = _NAMING.get(self.language, {}).get(before[-1])
        if kind is None:
            return None
        for label in labels:
            definition = self.slot_definitions.get(label)
            slot_type = self.spotter.types.get(definition or "")
            if slot_type is not None and slot_type.kind == kind:
                return label
        return None

    def _time_talked(
        self,
        words: list[str],
        a: int,
        b: int,
        extents: dict[tuple[int, int], list[Span]],
        expect: str | None,
    ) -> str | None:
        """The time slot, for a lone number in a turn that judges a time ("nine's too
        late for us, can we do seven?": seven o'clock, not seven people)."""
        if b - a != 1 or not words[a].isdigit():
            return None
        if not time_talk(words, self.language):
            return None
        before = " " + " ".join(words[max(0, a - 3) : a])
        leads = (*_TOTALS.get(self.language, ()), *_COUNT_LEADS.get(self.language, ()))
        if any(before.endswith(f" {t}") for t in leads):
            return None  # a total or a party: "two more people, so nine", "we are 6 then"
        if expect is not None and self.slot_definitions.get(expect) in {
            s.definition for s in extents[(a, b)]
        }:
            return None  # the question asked reads it: "6, we might be late" is six people
        kinds = {self.spotter.types[s.definition].kind: s.definition for s in extents[(a, b)]}
        if "time" not in kinds or len(kinds) < 2:
            return None
        named = [label for label, d in self.slot_definitions.items() if d == kinds["time"]]
        return named[0] if len(named) == 1 and named[0] in self._fast().role_labels else None

    def _contrasted(
        self, words: list[str], a: int, b: int, extents: dict[tuple[int, int], list[Span]]
    ) -> str | None:
        """The slot of the value set against ``words[a:b]`` ("seven, not half six", "not
        half six but seven", "sieben, nicht halb sieben"): a value of one type only, next
        to this one across a negation, names the slot this one fills - a prior."""
        negations = _NEGATIONS.get(self.language, ())
        contrasts = _CONTRASTS.get(self.language, frozenset())
        mine = {s.definition for s in extents[(a, b)]}
        if len(mine) < 2:
            return None
        other: list[Span] | None = None
        for c in range(b, min(b + 3, len(words))):  # after: "seven, not half six"
            if " ".join(words[b:c]) in negations:
                ends = [e for (s, e) in extents if s == c]
                other = extents[(c, max(ends))] if ends else None  # its longest reading
                break
        if other is None:  # before: "not half six but seven"
            for (c, d), spans in extents.items():
                if d <= a and a - d <= 1 and (a == d or words[d] in contrasts):
                    if any(" ".join(words[max(0, c - len(n.split())) : c]) == n for n in negations):
                        other = spans
        definitions = {s.definition for s in other or ()}
        if len(definitions) != 1 or not definitions <= mine:
            return None
        named = [label for label, d in self.slot_definitions.items() if d in definitions]
        return named[0] if len(named) == 1 else None

    # --- training ----------------------------------------------------------------
    def _needs_asking(self, sample: Sample, a: int) -> frozenset[str]:
        """Open definitions whose value at ``a`` has no cue word before it or as its first
        word (the spotter's span may start with it: "around 8")."""
        near = {sample.words[a - 1] if a > 0 else "", sample.words[a]}
        return frozenset(
            d for d in self.open_definitions if near.isdisjoint(self.cues.get(d, frozenset()))
        )

    def fit(self, intent_set: IntentSet, seed: int = 0) -> StatisticalModel:
        started = time.perf_counter()
        lang = self.language
        samples = generate(intent_set, lang, seed=seed)
        templated = [s for s in samples if s.slots_known and s.intent]
        self.valued = frozenset(
            {s.intent for s in templated} - {s.intent for s in templated if not s.slots}
        )
        samples += augment(samples, intent_set, lang, seed=seed)
        none = [*OUT_OF_SCOPE.get(lang, ()), *intent_set.none_examples.get(lang, [])]
        none_words = [normalize(text, lang).split() for text in none]
        for words in none_words:
            samples += [Sample(NONE, words)] * 3
        texts, labels = [], []
        role_rows, role_labels = [], []
        for sample in samples:
            spans = self.spotter.find(sample.words)
            if sample.intent or not sample.slots:  # bare answers train the slot filler only
                texts.append(" ".join(self.tokens(sample.words, spans)))
                labels.append(sample.intent)
            if not sample.slots_known or (not sample.intent and not sample.slots):
                continue  # examples and off-topic sentences: which value fills what is unknown
            for (a, b), group in _extents(spans).items():
                slot = _gold_label(sample, a, b, group)
                if _asked_only(sample, slot, group, self._needs_asking(sample, a)):
                    continue
                role_rows.append(span_features(sample.words, a, b, group))
                role_labels.append(slot)
        words = TfidfVectorizer(
            analyzer="word", ngram_range=(1, 2), sublinear_tf=True, token_pattern=r"\S+"
        )
        chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True)
        self.intent_model = make_pipeline(
            FeatureUnion([("words", words), ("chars", chars)]),
            LogisticRegression(C=8.0, max_iter=3000, class_weight="balanced"),
        )
        self.intent_model.fit(texts, labels)
        self.classes = [str(c) for c in self.intent_model.classes_]
        self.role_model = None  # intents without slots: nothing to fill
        if len(set(role_labels)) > 1:
            self.role_model = make_pipeline(
                DictVectorizer(), LogisticRegression(C=4.0, max_iter=3000)
            )
            self.role_model.fit(role_rows, role_labels)
        self.samples = len(texts)
        self.train_seconds = time.perf_counter() - started
        return self


# Words before a value that reject it: "five, not four", "Sonntag statt Samstag".
_NEGATIONS = {
    "en": ("not", "never", "instead of", "rather than", "better than", "not on", "not at"),
    "de": ("nicht", "kein", "keine", "statt", "anstatt", "nicht am", "nicht um"),
}
# Words between a rejected value and the one meant: "not half six but seven".
_CONTRASTS = {"en": frozenset({"but", "rather", "instead"}), "de": frozenset({"sondern"})}
# What stands between two values of one slot the caller has not chosen between.
_UNDECIDED = {
    "en": (" or ", " or maybe ", " or perhaps ", " or even "),
    "de": (" oder ", " oder vielleicht ", " oder auch ", " beziehungsweise "),
}
_CHANGES = {
    "en": (
        "no",
        "sorry",
        "wait",
        "actually",
        "i mean",
        "i meant",
        "rather",
        "make it",
        "or",
        "oh",
        "so",
    ),
    "de": (
        "nein",
        "nee",
        "doch",
        "moment",
        "lieber",
        "ich meine",
        "ich meinte",
        "oder",
        "ach",
        "sagen wir",
        "also",
    ),
}
# Words before a value that settle an undecided "Friday or Saturday": "... let's say
# Saturday", "... ach, machen wir Samstag".
_DECIDES = {
    "en": (
        *(c for c in _CHANGES["en"] if c != "or"),
        *("lets", "lets say", "say", "go with", "take", "better", "best", "prefer"),
    ),
    "de": (
        *(c for c in _CHANGES["de"] if c != "oder"),
        *("machen wir", "nehmen wir", "besser", "am besten", "wir nehmen"),
    ),
}
# ... and words that keep it open: "Friday or Saturday, I'm not sure about Friday"
_HEDGED = {
    "en": ("not sure", "unsure", "if", "whether", "depends", "might", "maybe"),
    "de": ("nicht sicher", "ob", "weiß nicht", "vielleicht", "kommt drauf an"),
}
# Words after a number that make it a change, not the value: "14 now, 2 more people".
_INCREMENTS = {
    "en": frozenset("more extra fewer less additional".split()),
    "de": frozenset("mehr weniger zusätzlich zusätzliche weitere".split()),
}
_PAST = {"en": frozenset({"were", "was", "had"}), "de": frozenset({"waren", "war", "hatten"})}
# Words after a number of people that take them away: "2 have dropped out".
_LEAVING = {
    "en": (
        "have dropped out",
        "dropped out",
        "have pulled out",
        "pulled out",
        "backed out",
        "cant come",
        "cant make it",
        "arent coming",
        "are not coming",
        "wont be coming",
        "wont come",
        "have cancelled",
    ),
    "de": (
        "sind abgesprungen",
        "springen ab",
        "können nicht",
        "kommen nicht",
        "fallen weg",
        "fallen aus",
        "sagen ab",
        "haben abgesagt",
    ),
}
# Words right after a value that reject it: "nine? no, I said 19 hundred", "six is too
# early, make it half seven", "neun? nein, 19 uhr" (a "no" before "problem" is none).
_REJECTED_AFTER = {
    "en": (
        "no",
        "nope",
        "is too early",
        "is too late",
        "too early",
        "too late",
        "is no good",
        "doesnt work",
        "wont work",
        "is not possible",
        "is out",
        "is off",
        "is bad",
        "is no",
        "isnt good",
        "doesnt suit",
    ),
    "de": (
        "nein",
        "nee",
        "ist zu früh",
        "ist zu spät",
        "geht nicht",
        "passt nicht",
        "ist schlecht",
        "fällt aus",
        "ist nichts",
        "kann ich nicht",
    ),
}
# Words that only ever judge a time: beside them a lone number is a time.
_TIME_TALK = {
    "en": (
        "too late",
        "too early",
        "bit later",
        "bit earlier",
        "any later",
        "any earlier",
        "earlier work",  # "would earlier work? like seven?"
        "later work",
    ),
    "de": ("zu spät", "zu früh", "etwas später", "etwas früher", "bisschen später"),
}
# Words before a number that make it the party: "we are 6 then"
_COUNT_LEADS = {
    "en": ("we are", "were", "well be", "we will be", "therell be", "there will be"),
    "de": ("wir sind", "sind wir", "wir wären", "mir san", "wir werden"),
}
# "is 9 too late?": a value asked about, offered - not rejected
_ASKING_ABOUT = {"en": frozenset({"is", "would"}), "de": frozenset({"ist", "wäre"})}
_CLOCK = re.compile(r"\d\d:\d\d")
_NOT_REJECTING = frozenset("problem problems worries worry rush hurry probleme".split())
# Words before a value that sum up what came before: "me, Jim and the two boys, so
# that's five", "drei Erwachsene und ein Kind, also vier". The total stands.
_TOTALS = {
    "en": ("so", "thats", "that makes", "makes", "in total", "altogether", "all together"),
    "de": ("also", "das sind", "macht", "insgesamt", "zusammen", "sind wir"),
}
# Words before a number that say it is the new one, or the old one
_AS_NEW = {
    lang: (
        *(c for c in _CHANGES[lang] if c not in ("or", "oder", "no", "nein")),
        *_TOTALS[lang],
        *extra,
    )
    for lang, extra in (
        ("en", ("make that", "now", "thats", "which makes")),
        ("de", ("machen sie", "jetzt", "das macht", "dann sind")),
    )
}
# Words that mark a value as a limit, not the wish: "around 7, 7 30 at the latest",
# "so gegen sieben, spätestens halb acht" - the first value stands.
_LIMITS_AFTER = {"en": ("at the latest", "at the earliest", "at latest", "latest", "tops")}
_LIMITS_BEFORE = {
    "en": (
        "no later than",
        "not later than",
        "no earlier than",
        "at the latest",
        "latest",
        "in bed by",
        "home by",
        "back by",
        "out by",
        "gone by",
        "finished by",
        "done by",
    ),
    "de": ("spätestens", "frühestens", "allerspätestens", "nicht später als"),
}


def _whole(guesses: list[SlotGuess]) -> list[SlotGuess]:
    """A value read whole is not also read in pieces: "7 15" is the time 19:15, not the
    time 7 and then the time 15 (the pieces' probabilities would outweigh it)."""
    return [
        g
        for g in guesses
        if g.span.cut
        or not any(
            o is not g
            and o.slot == g.slot
            and o.span.start <= g.span.start
            and g.span.end <= o.span.end
            and o.span.end - o.span.start > g.span.end - g.span.start
            for o in guesses
        )
    ]


def _best_tiling(guesses: list[SlotGuess]) -> list[SlotGuess]:
    """The non-overlapping guesses with the largest summed probability (weighted interval
    scheduling): "for 2 tonight" is a count and a day (0.9 + 0.9), not the time "2
    tonight" (0.8) that swallows both."""
    ordered = sorted(guesses, key=lambda g: g.span.end)
    best: list[tuple[float, list[SlotGuess]]] = [(0.0, [])]  # over the first k guesses
    for k, guess in enumerate(ordered):
        j = k  # the last earlier guess ending at or before this one's start
        while j > 0 and ordered[j - 1].span.end > guess.span.start:
            j -= 1
        take = (best[j][0] + guess.probability, [*best[j][1], guess])
        best.append(take if take[0] > best[k][0] else best[k])
    return best[-1][1]


def _one_per_slot(
    words: list[str],
    taken: list[SlotGuess],
    language: str,
    extents: list[tuple[int, int]] | None = None,
) -> list[SlotGuess]:
    """One value per slot, the way a listener resolves a slot said twice.

    "five of us, not four": a value after "not" is the rejected one. "for four, no
    wait, five": after a change-of-mind word the later value stands. "the 19th, that's
    a Saturday": a named date beats a bare weekday it agrees with. A lone number closing
    the turn that repeats a word of an earlier value is the recogniser's echo ("4 adults
    and 2 children. 4"). Two different values
    with nothing to tell them apart ("it's 14 now, 2 more people") are no value: the
    bot asks rather than guesses.
    """
    negations = _NEGATIONS.get(language, ())
    increments = _INCREMENTS.get(language, frozenset())

    def negated(start: int) -> bool:
        return any(" ".join(words[max(0, start - len(n.split())) : start]) == n for n in negations)

    # a value inside a longer one that is rejected is rejected too: the "7" of "instead
    # of half 7" ("extents": every spotted span)
    rejected = [(a, b) for a, b in extents or () if negated(a)]
    kept = [
        g
        for g in taken
        if not negated(g.span.start)
        and not any(a <= g.span.start and g.span.end <= b for a, b in rejected)
        and not (g.span.end < len(words) and words[g.span.end] in increments)
        and not _leaving(words, g, language)
        and not _rejected_after(words, g, language)
    ]
    # "we were eight, but two have dropped out": the number before those who leave is
    # the old one (no value: the bot asks) unless it is said as the new one ("make it 8
    # people? a couple have dropped out")
    gone = [g for g in taken if _leaving(words, g, language)]
    if gone:
        first = min(g.span.start for g in gone)
        kept = [
            g
            for g in kept
            if not (
                g.slot in {o.slot for o in gone}
                and g.span.start < first
                and not _said_as_new(words, g, language)
            )
        ]
    by_slot: dict[str, list[SlotGuess]] = {}
    for guess in sorted(kept, key=lambda g: g.span.start):
        by_slot.setdefault(guess.slot, []).append(guess)
    out = []
    for guesses in by_slot.values():
        undecided = False
        offered: set[str] = set()
        best: SlotGuess | None = guesses[0]
        previous = guesses[0]
        for later in guesses[1:]:
            joined = " " + " ".join(words[previous.span.end : later.span.start]) + " "
            if joined in _UNDECIDED.get(language, ()):
                best = None  # "Friday or Saturday", "six or seven": not decided - ask
                undecided = True
                offered |= {str(previous.span.value), str(later.span.value)}
                previous = later
                continue
            previous = later
            if undecided:  # "Freitag oder Samstag ... ach, machen wir Samstag"
                said = f"{joined}{_lead_words(words, later)} "
                hedged = any(f" {h} " in said for h in _HEDGED.get(language, ()))
                if (str(later.span.value) in offered and not hedged) or any(
                    f" {d} " in said for d in _DECIDES.get(language, ())
                ):
                    best, undecided = later, False  # one of the two again, or decided
                continue  # "Friday or Saturday, Sunday perhaps": still open
            if best is None:
                best = later
                continue
            between = " " + " ".join(words[best.span.end : later.span.start]) + " "
            if _specific(later, best):
                best = later
            elif _specific(best, later) or str(best.span.value) == str(later.span.value):
                continue
            elif _echo(words, later, best):
                continue  # "4 adults and 2 children. 4": the recogniser repeating a word
            elif _is_limit(words, later, language):
                continue
            elif (
                _refines(later, best)
                or any(f" {c} " in between for c in _CHANGES.get(language, ()))
                or _ends_with(between + _lead_words(words, later), _TOTALS.get(language, ()))
            ):
                best = later
            else:
                best = None  # two readings, no way to choose: ask
        if best is not None:
            out.append(best)
    if time_talk(words, language):
        # "nine's too late for us, can we do 7?": a lone number is a time here, no count
        out = [g for g in out if not _lone_number_also_time(words, g)]
    # "nine o'clock. Nine.": a value that also reads as one already given is that value
    # said again, not a second slot
    given = {(g.slot, str(g.span.value)) for g in out}
    return [
        g
        for g in out
        if not any((slot, str(value)) in given and slot != g.slot for slot, value in g.readings)
    ]


def time_talk(words: list[str], language: str) -> bool:
    """The turn judges a time ("too late", "a bit earlier"): a lone number in it is one."""
    said = f" {' '.join(words)} "
    return any(f" {p} " in said for p in _TIME_TALK.get(language, ()))


def _lone_number_also_time(words: list[str], guess: SlotGuess) -> bool:
    """``guess`` is a lone number read as something else than the time it also reads as."""
    return (
        guess.span.end - guess.span.start == 1
        and words[guess.span.start].isdigit()
        and _CLOCK.fullmatch(str(guess.span.value)) is None
        and any(_CLOCK.fullmatch(str(v)) for _, v in guess.readings)
    )


def _leaving(words: list[str], guess: SlotGuess, language: str) -> bool:
    """``guess`` counts people who drop out ("a couple have dropped out"), not the party."""
    after = " ".join(words[guess.span.end : guess.span.end + 4]) + " "
    return any(after.startswith(f"{p} ") for p in _LEAVING.get(language, ()))


def _said_as_new(words: list[str], guess: SlotGuess, language: str) -> bool:
    """A change word ("make it", "actually") or a total ("so", "that makes") leads the
    value."""
    before = words[max(0, guess.span.start - 3) : guess.span.start]
    if set(before) & _PAST.get(language, frozenset()):
        return False  # "actually we were eight, but ...": the old number
    said = " " + " ".join(before) + " " + _lead_words(words, guess) + " "
    return any(f" {c} " in said for c in _AS_NEW.get(language, ()))


def _rejected_after(words: list[str], guess: SlotGuess, language: str) -> bool:
    """``guess`` is followed by words that reject it ("9 no", "6 is too early")."""
    after = words[guess.span.end : guess.span.end + 4]
    if guess.span.start > 0 and words[guess.span.start - 1] in _ASKING_ABOUT.get(language, ()):
        return False  # "is 9 too late?", "ist 9 zu spät?"
    for phrase in _REJECTED_AFTER.get(language, ()):
        n = len(phrase.split())
        if " ".join(after[:n]) == phrase:
            return not (len(after) > n and after[n] in _NOT_REJECTING)
    return False


def _lead_words(words: list[str], guess: SlotGuess) -> str:
    """The words a span starts with before its number ("so thats" of "so thats 5")."""
    lead = []
    for word in words[guess.span.start : guess.span.end]:
        if word[:1].isdigit():
            break
        lead.append(word)
    return " ".join(lead) + " " if lead else ""


def _ends_with(between: str, phrases: tuple[str, ...]) -> bool:
    return any(between.endswith(f" {p} ") for p in phrases)


def _is_limit(words: list[str], guess: SlotGuess, language: str) -> bool:
    """``guess`` is said as a limit ("7 30 at the latest", "spätestens halb 8")."""
    before = " " + " ".join(words[max(0, guess.span.start - 3) : guess.span.start]) + " "
    after = " " + " ".join(words[guess.span.end : guess.span.end + 3]) + " "
    return _ends_with(before, _LIMITS_BEFORE.get(language, ())) or any(
        after.startswith(f" {p} ") for p in _LIMITS_AFTER.get(language, ())
    )


def _echo(words: list[str], later: SlotGuess, first: SlotGuess) -> bool:
    """``later``, a lone number closing the turn, is a word of the longer ``first`` said
    again ("four adults and two children. 4": Whisper repeats what it heard last)."""
    return (
        later.span.end == len(words)
        and later.span.end - later.span.start == 1
        and first.span.end - first.span.start > 1
        and words[later.span.start] in words[first.span.start : first.span.end]
    )


def _refines(later: SlotGuess, first: SlotGuess) -> bool:
    """ "7, 7 15": the later time is the earlier hour made precise."""
    a, b = str(first.span.value), str(later.span.value)
    return (
        len(a) == len(b) == 5
        and a[2] == b[2] == ":"
        and a[:2] == b[:2]
        and a[3:] == "00"
        and b[3:] != "00"
    )


def _specific(a: SlotGuess, b: SlotGuess) -> bool:
    """``a`` says more than ``b`` about the same thing (a date agreeing with a weekday)."""
    va, vb = a.span.value, b.span.value
    return bool(
        getattr(va, "explicit", False) and not getattr(vb, "explicit", False) and str(va) == str(vb)
    )


class _FastPaths:
    """The trained linear models evaluated directly on one utterance.

    scikit-learn's ``predict_proba`` costs about 2 ms per call for a single sample
    (pipeline and sparse-matrix overhead); the same arithmetic on the fitted
    parameters - TF-IDF weights, L2 norm, ``softmax(x @ coef.T + intercept)`` -
    takes a few tens of microseconds. ``tests/nlu`` checks both agree.
    """

    def __init__(self, model: StatisticalModel) -> None:
        union, lr = model.intent_model.steps[0][1], model.intent_model.steps[-1][1]
        self.text_parts = []
        offset = 0
        for _, vec in union.transformer_list:
            self.text_parts.append(
                (vec.build_analyzer(), vec.vocabulary_, vec.idf_, offset, vec.sublinear_tf)
            )
            offset += len(vec.vocabulary_)
        self.known_words = frozenset(union.transformer_list[0][1].vocabulary_)
        self.known_words = frozenset(w for w in self.known_words if " " not in w)
        self.intent_coef = np.ascontiguousarray(lr.coef_.T)  # features x classes
        self.intent_bias = lr.intercept_
        self.role_labels: list[str] = []
        if model.role_model is not None:
            dv, rlr = model.role_model.steps[0][1], model.role_model.steps[-1][1]
            self.role_vocab = dv.vocabulary_
            self.role_coef = np.ascontiguousarray(rlr.coef_.T)
            self.role_bias = rlr.intercept_
            self.role_labels = [str(c) for c in rlr.classes_]

    def intent(self, text: str) -> np.ndarray:
        index: list[int] = []
        values: list[float] = []
        for analyze, vocab, idf, offset, sublinear in self.text_parts:
            counts: dict[int, int] = {}
            for gram in analyze(text):
                j = vocab.get(gram)
                if j is not None:
                    counts[j] = counts.get(j, 0) + 1
            if not counts:
                continue
            cols = np.fromiter(counts, dtype=np.int64, count=len(counts))
            tf = np.fromiter(counts.values(), dtype=np.float64, count=len(counts))
            if sublinear:
                tf = np.log(tf) + 1.0
            weights = tf * idf[cols]
            norm = float(np.sqrt(weights @ weights)) or 1.0
            index.extend((cols + offset).tolist())
            values.extend((weights / norm).tolist())
        scores = self.intent_bias.copy()
        if index:
            scores += np.asarray(values) @ self.intent_coef[index]
        return _softmax(scores)

    def role(self, row: dict[str, float]) -> np.ndarray:
        scores = self.role_bias.copy()
        for name, value in row.items():
            j = self.role_vocab.get(name)
            if j is not None:
                scores += value * self.role_coef[j]
        return _softmax(scores)


def _softmax(scores: np.ndarray) -> np.ndarray:
    if scores.shape[0] == 1:  # two classes: sklearn's binary model has one score column
        p = 1.0 / (1.0 + np.exp(-scores[0]))
        return np.array([1.0 - p, p])
    e = np.exp(scores - scores.max())
    probs: np.ndarray = e / e.sum()
    return probs


def _asked_only(sample: Sample, slot: str, group: list[Span], uncued: frozenset[str]) -> bool:
    """A value two types accept, filling the open one without a cue word ("make it 5" as a
    time): true of the sentence only when the bot asked for that slot, which the slot
    filler is not told (``expect`` is a prior at decision time). Learning from it would
    make bare numbers times, where the exact tier, and a person, read a count."""
    if sample.expect is not None or slot == OUTSIDE or len(group) < 2:
        return False
    gold = {d for _, _, s, d in sample.slots if s == slot}
    return bool(gold & uncued)


# Words naming the slot a value after them fills, by slot type kind.
_NAMING = {
    "en": {
        "time": "time",
        "hour": "time",
        "day": "day",
        "date": "day",
        "number": "count",
        "size": "count",
    },
    "de": {
        "uhrzeit": "time",
        "zeit": "time",
        "tag": "day",
        "datum": "day",
        "personenzahl": "count",
        "anzahl": "count",
    },
}
_NAMING_FILLERS = frozenset(
    "the is to at should be will then please of ist soll auf dann bitte die der das".split()
)
UNCUED_TRUST = 0.8  # the filler's say on a bare number two asked-for slots read
EXPECT_ODDS = 20.0  # how much more likely a value fills the slot just asked for
DECIDED = 0.9  # a slot the turn's own words decide ("too late": a lone number is a time)


def _decided(probs: np.ndarray, labels: list[str], label: str) -> np.ndarray:
    """``label`` at ``DECIDED``, the other labels sharing the rest as they stood."""
    i = labels.index(label)
    rest = probs.sum() - probs[i]
    out: np.ndarray = probs * ((1 - DECIDED) / rest if rest > 0 else 0.0)
    out[i] = DECIDED
    return out


def _with_prior(probs: np.ndarray, labels: list[str], expect: str | None) -> np.ndarray:
    if expect is None or expect not in labels:
        return probs
    boosted = probs.copy()
    boosted[labels.index(expect)] *= EXPECT_ODDS
    normalized: np.ndarray = boosted / boosted.sum()
    return normalized


def _gold_label(sample: Sample, a: int, b: int, group: list[Span]) -> str:
    """The slot a spotted extent fills in a generated sample: the slot whose value overlaps
    it with the same type (the spotter's span may include a lead word the template has as
    a literal, "for friday", or a noun after it, "4 of us"), else OUTSIDE."""
    definitions = {s.definition for s in group}
    for start, end, slot, definition in sample.slots:
        if (
            definition in definitions
            and start < b
            and a < end
            and ((a <= start and end <= b) or (start <= a and b <= end))
        ):
            return slot
    return OUTSIDE


def _extents(spans: list[Span]) -> dict[tuple[int, int], list[Span]]:
    out: dict[tuple[int, int], list[Span]] = {}
    for span in spans:
        out.setdefault((span.start, span.end), []).append(span)
    return out


def _shape(word: str) -> str:
    return "#" if word[:1].isdigit() else word


def span_features(words: list[str], a: int, b: int, group: list[Span]) -> dict[str, float]:
    """What the slot filler sees of the span ``words[a:b]``."""
    n = len(words)
    left1 = words[a - 1] if a >= 1 else "<s>"
    left2 = words[a - 2] if a >= 2 else "<s>"
    right1 = words[b] if b < n else "</s>"
    right2 = words[b + 1] if b + 1 < n else "</s>"
    shape = " ".join(_shape(w) for w in words[a:b])
    f: dict[str, float] = {
        f"l1={left1}": 1.0,
        f"l2={left2}": 1.0,
        f"l12={left2}_{left1}": 1.0,
        f"r1={right1}": 1.0,
        f"r2={right2}": 1.0,
        f"r12={right1}_{right2}": 1.0,
        f"shape={shape}": 1.0,
        f"first={_shape(words[a])}": 1.0,
        f"last={_shape(words[b - 1])}": 1.0,
        f"len={min(b - a, 4)}": 1.0,
        "bare": float(a == 0 and b == n),
    }
    defs = sorted({s.definition for s in group})
    for d in defs:
        f[f"def={d}"] = 1.0
    f["defs=" + "_".join(defs)] = 1.0
    return f


# --- the cache -----------------------------------------------------------------------

_MODELS: dict[tuple[str, str], StatisticalModel] = {}


# The modules whose code shapes a trained model: a change in any of them is a new model.
_TRAINING_CODE = (
    "statistical",
    "samples",
    "spotting",
    "normalize",
    "out_of_scope",
    "slots",
    "slot_time",
    "slot_day",
    "slot_count",
    "misheard",
    "wordgraph",
    "templates",
    "intent_compile",
)


def _code_digest() -> str:
    h = hashlib.sha256()
    for name in _TRAINING_CODE:
        h.update((Path(__file__).with_name(f"{name}.py")).read_bytes())
    return h.hexdigest()


_CODE = _code_digest()


def model_key(intent_set: IntentSet, language: str) -> str:
    """The cache key: the intent files' content, the language, the training code, and
    the scikit-learn version that pickled the model."""
    h = hashlib.sha256()
    for part in (intent_set.digest, language, str(MODEL_VERSION), _CODE, sklearn.__version__):
        h.update(part.encode() + b"\0")
    return h.hexdigest()


def load_model(intent_set: IntentSet, language: str, *, cache: bool = True) -> StatisticalModel:
    """The trained model for these intent files and ``language``: from this process, from
    the disk cache, or trained now (and cached)."""
    key = model_key(intent_set, language)
    found = _MODELS.get((key, language))
    if found is not None:
        return found
    path = cache_dir() / "nlu" / f"{key}.pkl"
    model: StatisticalModel | None = None
    if cache and intent_set.digest and path.is_file():
        try:
            with path.open("rb") as f:
                model = pickle.load(f)
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError) as exc:
            log.warning("ignoring unreadable NLU cache %s: %s", path, exc)
            model = None
    if model is None:
        model = StatisticalModel(intent_set, language).fit(intent_set)
        log.info(
            "trained the statistical tier (%s): %d sentences in %.1f s",
            language,
            model.samples,
            model.train_seconds,
        )
        if cache and intent_set.digest:
            _store(path, model)
    _MODELS[(key, language)] = model
    return model


def _store(path: Path, model: StatisticalModel) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".nlu-", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            pickle.dump(model, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("could not cache the NLU model at %s: %s", path, exc)
