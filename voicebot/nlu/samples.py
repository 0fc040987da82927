"""Training sentences generated from the bot's own templates (Snips NLU's idea).

``generate`` walks each template's word graph at random - every alternative
and optional part is a coin toss - and fills each slot with a value its type
accepts, spelled the ways callers say it ("half past 7", "7 30", "19:30").
Each sample knows which words are which slot, so the statistical tier learns
both the intent and which slot a value fills. ``augment`` adds what the
templates never show: polite extra words around the sentence, a dropped or
swapped word (recognition errors), and bare values answering a question.
Example sentences from the intent file are added as written (their slots are
found by the spotter, so they teach the intent only).

Everything is deterministic for a given seed, so a model trained from the same
intent files is the same model.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field

from voicebot.nlu.intent_file import IntentSet
from voicebot.nlu.normalize import normalize
from voicebot.nlu.slot_day import WEEKDAY_NAMES
from voicebot.nlu.slots import SlotType
from voicebot.nlu.wordgraph import EPS, SLOT, WORD, Template, WordGraph

PER_TEMPLATE = 80  # random walks per template (duplicates dropped)
REJECTED_SHARE = 0.15  # samples copied with a rejected value beside one of theirs
_MAX_STEPS = 200


@dataclass(slots=True)
class Sample:
    intent: str  # "" for sentences that carry no intent of the bot (the none class)
    words: list[str]
    # (start, end, slot name, definition name) of every slot value in ``words``
    slots: list[tuple[int, int, str, str]] = field(default_factory=list)
    expect: str | None = None  # the slot the bot asked for, when the sample answers one
    slots_known: bool = True  # False: an example sentence, its values not marked


def generate(
    intent_set: IntentSet, language: str, seed: int = 0, per_template: int = PER_TEMPLATE
) -> list[Sample]:
    """Random sentences of every template of ``language``, deduplicated."""
    data = intent_set.compiled[language]
    values = ValueSampler(intent_set.slot_types, language)
    out: list[Sample] = []
    seen: set[tuple[str, tuple[str, ...]]] = set()
    for template in data.graph.templates:
        # one random stream per template: a template added or changed leaves the
        # sentences of every other template as they were (a stable model to compare)
        rng = random.Random(f"{seed}/{_template_key(template)}")
        for _ in range(per_template):
            sample = _walk(data.graph, template, values, rng)
            key = (sample.intent, tuple(sample.words))
            if sample.words and key not in seen:
                seen.add(key)
                out.append(sample)
    for name, intent in intent_set.intents.items():
        for text in intent.examples.get(language, []):
            words = normalize(text, language).split()
            if words:
                out.append(Sample(name, words, slots_known=False))
    return out


def _template_key(t: Template) -> str:
    """What a template is, independent of where it stands in the intent file."""
    return "|".join(
        (t.intent, " ".join(sorted(t.vocab)), " ".join(sorted(t.slot_types)), str(t.last - t.start))
    )


def _walk(g: WordGraph, t: Template, values: ValueSampler, rng: random.Random) -> Sample:
    words: list[str] = []
    slots: list[tuple[int, int, str, str]] = []
    node = t.start
    for _ in range(_MAX_STEPS):
        if node == t.final or not g.edges[node]:
            break
        kind, payload, node = rng.choice(g.edges[node])
        if kind == WORD:
            words.append(payload)
        elif kind == SLOT:
            definition, slot = payload
            phrase = values.sample(definition, rng)
            if phrase:
                slots.append((len(words), len(words) + len(phrase), slot, definition))
                words.extend(phrase)
        elif kind != EPS:
            raise ValueError(f"unknown edge kind {kind}")
    return Sample(t.intent, words, slots)


# Words around a sentence that change nothing: politeness, hesitation, hedges.
_AROUND = {
    "en": (
        ["please"],
        ["thanks"],
        ["thank you"],
        ["if thats okay"],
        ["if possible"],
        ["if you can"],
        ["i think"],
        ["i guess"],
        ["yeah"],
        ["so"],
        ["well"],
        ["okay"],
        ["right"],
        ["hi"],
        ["hello"],
        ["if thats alright"],
        ["maybe"],
        ["let me think"],
        ["lets see"],
        ["you know"],
        ["actually"],
        ["like"],
        ["for me"],
        ["for us"],
        ["if you have room"],
        ["that would be great"],
        ["sorry"],
        ["oh"],
    ),
    "de": (
        ["bitte"],
        ["danke"],
        ["wenn das geht"],
        ["wenn möglich"],
        ["ich glaube"],
        ["ja"],
        ["also"],
        ["na ja"],
        ["gut"],
        ["okay"],
        ["hallo"],
        ["vielleicht"],
        ["mal sehen"],
        ["sagen wir"],
        ["wenn es geht"],
        ["eigentlich"],
        ["halt"],
        ["für uns"],
        ["für mich"],
        ["das wäre schön"],
        ["genau"],
        ["so"],
    ),
}


# Words a caller opens with before saying what they want: "hi, ...", "yes, ...".
_OPENERS = {
    "en": (
        "hi",
        "hello",
        "hiya",
        "hey",
        "good evening",
        "good morning",
        "good afternoon",
        "hi there",
        "hello there",
        "yes",
        "yeah",
        "okay",
        "oh",
        "um yes",
        "right",
        "hi yes",
        "hello yes",
        "ah",
    ),
    "de": (
        "hallo",
        "guten tag",
        "guten abend",
        "grüss gott",
        "servus",
        "ja",
        "ja hallo",
        "ja also",
        "okay",
        "also",
        "ach ja",
        "moin",
    ),
}


def augment(
    samples: list[Sample], intent_set: IntentSet, language: str, seed: int = 0, share: float = 0.6
) -> list[Sample]:
    """Noisy copies of a ``share`` of the samples, plus bare answers per slot."""
    around = [[normalize(w, language) for w in p] for p in _AROUND.get(language, ())]
    around = [p[0].split() for p in around if p and p[0]]
    vocab = sorted({w for s in samples for w in s.words if not w[0].isdigit()})
    openers = [normalize(o, language).split() for o in _OPENERS.get(language, ())]
    out: list[Sample] = []
    for sample in samples:
        rng = _rng_of(sample, seed + 1)  # (per sample, as the templates' streams)
        if openers and sample.words and rng.random() < 0.25 and sample.intent not in ("", "greet"):
            out.append(_wrap(sample, rng.choice(openers), True))
        if rng.random() > share or not sample.words:
            continue
        choice = rng.random()
        if choice < 0.45 and around:
            out.append(_wrap(sample, rng.choice(around), rng.random() < 0.5))
        elif choice < 0.7:
            out.append(_drop(sample, rng))
        elif vocab:
            out.append(_swap(sample, rng.choice(vocab), rng))
    values = ValueSampler(intent_set.slot_types, language)
    rejecting = _REJECTING.get(language, ())
    for sample in samples:
        rng = _rng_of(sample, seed + 2)
        if rejecting and sample.intent and sample.slots and rng.random() < REJECTED_SHARE:
            rejected = _rejected(sample, values, rng.choice(rejecting), rng)
            if rejected is not None:
                out.append(rejected)
    carriers = {
        slot: definition
        for intent in intent_set.intents
        for slot, definition in intent_set.slot_definitions(intent).items()
    }
    for slot, definition in sorted(carriers.items()):
        if intent_set.slot_types[definition].words(language) is None:
            continue  # free text cannot be answered bare
        rng = random.Random(f"{seed + 3}/{slot}/{definition}")
        for _ in range(60):
            phrase = values.sample(definition, rng)
            if not phrase:
                continue
            before = rng.choice(around) if around and rng.random() < 0.5 else []
            after = rng.choice(around) if around and rng.random() < 0.5 else []
            words = [*before, *phrase, *after]
            out.append(
                Sample(
                    "",
                    words,
                    [(len(before), len(before) + len(phrase), slot, definition)],
                    expect=slot,
                )
            )
    return out


# A value said beside the one it replaces: "friday, not thursday", "sonntag statt samstag",
# "nicht diesen donnerstag, sondern am 10": (words before the rejected value, words after
# it, whether it stands after the value meant)
_REJECTING: dict[str, tuple[tuple[str, str, bool], ...]] = {
    "en": (
        ("not", "", True),
        ("not", "", False),
        ("instead of", "", True),
        ("rather than", "", True),
        ("and not", "", True),
        ("not", "but", False),
    ),
    "de": (
        ("nicht", "", True),
        ("statt", "", True),
        ("anstatt", "", True),
        ("nicht", "", False),
        ("nicht", "sondern", False),
    ),
}


def _rejected(
    sample: Sample, values: ValueSampler, form: tuple[str, str, bool], rng: random.Random
) -> Sample | None:
    """``sample`` with a rejected value of one of its slots beside the value it means;
    the rejected value is marked as no slot (``_one_per_slot`` drops it)."""
    a, b, _, definition = rng.choice(sample.slots)
    if values.types[definition].words(values.language) is None:
        return None
    meant = sample.words[a:b]
    other = values.sample(definition, rng)
    if not other or other == meant:
        return None
    before, after, behind = form
    insert = [*before.split(), *other, *after.split()]
    at = b if behind else a
    words = [*sample.words[:at], *insert, *sample.words[at:]]
    shift = len(insert)
    slots = [(x + shift * (x >= at), y + shift * (y > at), s, d) for x, y, s, d in sample.slots]
    # the intent classifier learns from it; which value fills what, ``_one_per_slot`` decides
    return Sample(sample.intent, words, slots, sample.expect, slots_known=False)


def _wrap(sample: Sample, extra: list[str], before: bool) -> Sample:
    if before:
        shift = len(extra)
        slots = [(a + shift, b + shift, s, d) for a, b, s, d in sample.slots]
        return Sample(
            sample.intent, [*extra, *sample.words], slots, sample.expect, sample.slots_known
        )
    return Sample(
        sample.intent,
        [*sample.words, *extra],
        list(sample.slots),
        sample.expect,
        sample.slots_known,
    )


def _inside_slot(sample: Sample, i: int) -> bool:
    return any(a <= i < b for a, b, _, _ in sample.slots)


def _drop(sample: Sample, rng: random.Random) -> Sample:
    free = [i for i in range(len(sample.words)) if not _inside_slot(sample, i)]
    if len(sample.words) < 3 or not free:
        return sample
    k = rng.choice(free)
    words = sample.words[:k] + sample.words[k + 1 :]
    slots = [(a - (a > k), b - (b > k), s, d) for a, b, s, d in sample.slots]
    return Sample(sample.intent, words, slots, sample.expect, sample.slots_known)


def _swap(sample: Sample, word: str, rng: random.Random) -> Sample:
    free = [i for i in range(len(sample.words)) if not _inside_slot(sample, i)]
    if len(sample.words) < 4 or not free:
        return sample
    k = rng.choice(free)
    words = list(sample.words)
    words[k] = word
    return Sample(sample.intent, words, list(sample.slots), sample.expect, sample.slots_known)


class ValueSampler:
    """Surface forms (normalised words) of slot values, as callers say them."""

    def __init__(
        self, types: dict[str, SlotType], language: str, today: dt.date = dt.date(2026, 12, 1)
    ) -> None:
        self.types = types
        self.language = language
        self.today = today
        self._cache: dict[str, list[list[str]]] = {}

    def sample(self, definition: str, rng: random.Random) -> list[str]:
        phrases = self._cache.get(definition)
        if phrases is None:
            phrases = self._cache[definition] = self._phrases(self.types[definition])
        return list(rng.choice(phrases)) if phrases else []

    def _phrases(self, slot_type: SlotType) -> list[list[str]]:
        lang = self.language
        kind = slot_type.kind
        raw: list[str]
        if kind in ("integer", "count"):
            lo = getattr(slot_type, "min", 0)
            hi = min(getattr(slot_type, "max", 20), lo + 30)
            raw = [str(n) for n in range(lo, hi + 1)] * 3
            if kind == "count":
                raw += _COUNT_PHRASES.get(lang, [])
        elif kind == "day":
            raw = _day_phrases(lang)
        elif kind == "time":
            raw = _time_phrases(lang)
        elif kind == "digits":
            lo, hi = getattr(slot_type, "min_len", 1), getattr(slot_type, "max_len", 8)
            rng = random.Random(7)
            raw = [
                " ".join(str(rng.randint(0, 9)) for _ in range(rng.randint(lo, min(hi, 8))))
                for _ in range(30)
            ]
        elif kind == "wildcard":
            raw = ["something", "a name", "my booking", "the window seat", "a birthday"]
        else:
            raw = list(slot_type.lexicon(lang) or [])
        out = []
        for phrase in raw:
            words = normalize(phrase, lang).split()
            if words and slot_type.parse_normalized(" ".join(words), lang, self.today) is not None:
                out.append(words)
        return out


_COUNT_PHRASES = {
    "en": [
        "just me",
        "a couple of us",
        "2 of us",
        "the 2 of us",
        "4 of us",
        "6 of us",
        "me and my wife",
        "my husband and i",
        "me and a friend",
        "myself and 3 friends",
        "2 adults and 2 kids",
        "3 adults",
        "5 people",
        "a family of 4",
        "just the 2 of us",
        "me and my partner",
        "only me",
        "8 of us",
        "a party of 6",
        "a group of 10",
    ],
    "de": [
        "zu zweit",
        "zu dritt",
        "zu viert",
        "zu fünft",
        "wir sind zu zweit",
        "nur ich",
        "ich allein",
        "ich und meine frau",
        "mein mann und ich",
        "2 erwachsene und 2 kinder",
        "4 personen",
        "wir beide",
        "3 leute",
        "ich und ein freund",
        "6 personen",
    ],
}


def _day_phrases(language: str) -> list[str]:
    names = [n.lower() for n in WEEKDAY_NAMES.get(language, WEEKDAY_NAMES["en"])]
    if language == "de":
        out = names * 3 + [f"nächsten {n}" for n in names] + [f"diesen {n}" for n in names]
        out += [
            "heute",
            "morgen",
            "übermorgen",
            "heute abend",
            "morgen abend",
            "am 3 dezember",
            "den 5",
            "am 12",
            "3 dezember",
            "freitag den 4",
            "samstag den 12 dezember",
            "silvester",
            "heiligabend",
        ]
        return out
    out = names * 3 + [f"next {n}" for n in names] + [f"this {n}" for n in names]
    out += [
        "today",
        "tonight",
        "tomorrow",
        "tomorrow night",
        "the day after tomorrow",
        "december 3rd",
        "the 3rd",
        "the 5th of december",
        "december 12th",
        "the 12th",
        "friday the 4th",
        "saturday december 12th",
        "christmas eve",
        "new years eve",
        "the 21st",
        "3rd of december",
        "fridays",
        "saturdays",
        "friday next week",
    ]
    return out


def _time_phrases(language: str) -> list[str]:
    if language == "de":
        hours = range(1, 13)
        out = [str(h) for h in hours]
        out += [f"{h} uhr" for h in hours] + [f"halb {h}" for h in hours]
        out += [f"viertel nach {h}" for h in hours] + [f"viertel vor {h}" for h in hours]
        out += [f"{h} uhr 30" for h in range(12, 23)] + [f"{h}:30" for h in range(12, 23)]
        out += [f"{h} uhr abends" for h in range(5, 11)] + ["mittag", "12 uhr mittags"]
        out += [f"{h}:00" for h in range(12, 23)] + [f"{h} uhr" for h in range(13, 23)]
        return out
    hours = range(1, 13)
    out = [str(h) for h in hours] * 2
    out += [f"{h} 30" for h in hours] + [f"{h} 15" for h in hours] + [f"{h} 45" for h in hours]
    out += [f"half past {h}" for h in hours] + [f"quarter past {h}" for h in hours]
    out += [f"quarter to {h}" for h in hours] + [f"half {h}" for h in range(5, 11)]
    out += [f"{h} pm" for h in hours] + [f"{h} oclock" for h in hours]
    out += [f"{h} 30 pm" for h in hours] + [f"{h}:30" for h in range(12, 23)]
    out += [f"{h}:00" for h in range(12, 23)] + ["noon", "midday", "midnight"]
    out += [f"{h} in the evening" for h in range(5, 11)] + [f"{h} ish" for h in range(5, 10)]
    # "one" stays a word (it is also a pronoun, "a black one"): only with a time word
    out += ["one oclock", "one 30", "half past one", "quarter past one", "one pm"]
    return out


def _rng_of(sample: Sample, seed: int) -> random.Random:
    return random.Random(f"{seed}/{sample.intent}/{' '.join(sample.words)}")
