"""Slot types: parse (text -> canonical value or None) and speak (value -> words).

One parser per type is the single source of truth: the template matcher runs
it on what a ``{slot}`` captured, the LLM fallback on what the model returned,
and the flow engine may call it directly. Parsers accept raw text or a value
already in canonical form (``4``, ``"friday"``, ``"19:30"``), so the same call
validates both.

Finite types (integer ranges, days, value lists) also publish a ``lexicon`` of
normalised phrases; the matcher hands those to hassil as anchored slot lists,
which is faster and more precise than a wildcard. Open types (time, digits,
wildcard) are captured as bounded wildcards and then parsed.
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from voicebot.nlu.normalize import normalize
from voicebot.nlu.slot_count import PRONOUN_ONES, count_words, parse_count
from voicebot.nlu.slot_day import (
    NOT_DAYS,
    WEEKDAYS,
    DayValue,
    day_words,
    parse_day,
    speak_date,
    speak_day,
)
from voicebot.nlu.slot_time import (
    TIME_CUES,
    TIME_FIRST_WORDS,
    TIME_WORDS,
    Prefer,
    TimeValue,
    number_words,
    parse_time,
    speak_time,
)

__all__ = [
    "WEEKDAYS",
    "CountSlot",
    "DaySlot",
    "DayValue",
    "DigitsSlot",
    "IntegerSlot",
    "ListSlot",
    "SlotType",
    "TimeSlot",
    "TimeValue",
    "WildcardSlot",
    "parse_time",
    "speak_date",
    "speak_day",
    "speak_digits",
    "speak_integer",
    "speak_time",
]
# Words that are a number only with more words ("ein Uhr", "eine Person"), alone an article.
_ARTICLES = {"de": frozenset({"ein", "eine", "einen", "einer", "einem"})}
# Integer range up to which the values are enumerated as an anchored lexicon.
_MAX_LEXICON_RANGE = 2000


# How callers answer a question for a value of each type, as a recogniser writes it:
# the examples Whisper reads before the answer (``SlotType.hint``). Measured with
# ``voicebot bench understanding --contexts prompt,hints``.
HINTS: dict[str, dict[str, str]] = {
    "count": {"en": "Four people. Just the two of us.", "de": "Vier Personen. Zu zweit."},
    "day": {
        "en": "Friday. Tomorrow. Saturday the 12th.",
        "de": "Am Freitag. Morgen. Samstag, den 12.",
    },
    "time": {
        "en": "Half past seven. Quarter to eight. 8 pm.",
        "de": "Um halb acht. Viertel nach sieben. 20 Uhr.",
    },
}


class SlotType(ABC):
    """A slot's value domain. ``kind`` is the YAML ``type``."""

    kind: ClassVar[str]
    max_words: int = 8  # longest phrase a capture may be, bounding wildcard captures

    def parse(self, value: Any, language: str, *, today: dt.date | None = None) -> Any | None:
        """Canonical value from raw text or a canonical value; None when invalid."""
        if value is None or isinstance(value, bool) or isinstance(value, (list, dict)):
            return None
        return self.parse_normalized(normalize(str(value), language), language, today)

    @abstractmethod
    def parse_normalized(self, text: str, language: str, today: dt.date | None) -> Any | None:
        """Like ``parse`` on text that went through ``normalize`` already."""

    @abstractmethod
    def speak(self, value: Any, language: str) -> str:
        """How a prompt says the canonical ``value``."""

    def lexicon(self, language: str) -> list[str] | None:
        """All normalised phrases this type accepts, when finite and small; else None."""
        return None

    def not_values(self, language: str) -> tuple[str, ...]:
        """Normalised phrases that hold words of a value but name none ("the office
        christmas do", "the only one"): no value is spotted inside them."""
        return ()

    def cue_words(self, language: str) -> frozenset[str]:
        """Words that announce a value of this type right before it ("at" 8 -> a time)."""
        return frozenset()

    @property
    def open(self) -> bool:
        """Open types (times, digits, free text) are captured as bounded wildcards and
        rank below a reading with finite slots."""
        return self.lexicon("en") is None

    def describe(self) -> str:
        """One line for the LLM prompt: what values look like."""
        return self.kind

    def hint(self, language: str) -> str:
        """How callers say a value, written as a recogniser writes it, for the recogniser
        to hear an answer in its light (``asr.context: hints``); "" when nothing helps."""
        return HINTS.get(self.kind, {}).get(language, "")

    def first_words(self, language: str) -> frozenset[str] | None:
        """Words a value may start with ("#": any number); None: any word. A speed hint."""
        lexicon = self.lexicon(language)
        if lexicon is None:
            return None
        return frozenset("#" if p[0].isdigit() else p.split()[0] for p in lexicon if p)

    def words(self, language: str) -> frozenset[str] | None:
        """Words a value may contain ("#" stands for any number); None: any word at all.

        Only a hint for the fuzzy tier's prefilter, so it may be generous.
        """
        lexicon = self.lexicon(language)
        if lexicon is None:
            return None
        return frozenset("#" if w[0].isdigit() else w for p in lexicon for w in p.split())


@dataclass
class IntegerSlot(SlotType):
    kind: ClassVar[str] = "integer"
    min: int = 0
    max: int = 1000
    max_words: int = 4

    def parse_normalized(self, text: str, language: str, today: dt.date | None) -> int | None:
        if text.isdigit():
            n = int(text)
        else:
            n = _SMALL_WORDS.get(language, {}).get(text, -1)
        return n if self.min <= n <= self.max else None

    def speak(self, value: Any, language: str) -> str:
        return speak_integer(int(value), language)

    def lexicon(self, language: str) -> list[str] | None:
        if self.max - self.min > _MAX_LEXICON_RANGE:
            return None
        words = [w for w, n in _SMALL_WORDS.get(language, {}).items() if self.min <= n <= self.max]
        return [str(n) for n in range(self.min, self.max + 1)] + words

    def describe(self) -> str:
        return f"integer {self.min}..{self.max}"


@dataclass
class CountSlot(IntegerSlot):
    """A number of people: "4", "six of us", "just me", "me and my wife" (see ``slot_count``)."""

    kind: ClassVar[str] = "count"
    min: int = 1
    max: int = 100
    max_words: int = 12  # a list of people: "me, my husband, my sister and her 3 kids"

    def parse_normalized(self, text: str, language: str, today: dt.date | None) -> int | None:
        if text in _ARTICLES.get(language, ()):
            return None  # "das ist ein Freitag": an article, not a number
        n = parse_count(text, language)
        if n is None:
            return super().parse_normalized(text, language, today)
        return n if self.min <= n <= self.max else None

    def not_values(self, language: str) -> tuple[str, ...]:
        return PRONOUN_ONES.get(language, ())

    def lexicon(self, language: str) -> list[str] | None:
        return None

    @property
    def open(self) -> bool:
        return False  # numbers and a closed set of people phrases

    def describe(self) -> str:
        return f"number of people {self.min}..{self.max}"

    def first_words(self, language: str) -> frozenset[str] | None:
        first = count_words(language)[0]
        return first | frozenset(_SMALL_WORDS.get(language, {}))

    def words(self, language: str) -> frozenset[str] | None:
        every = count_words(language)[1]
        return every | frozenset(w for p in _SMALL_WORDS.get(language, {}) for w in p.split())


# Numbers that normalisation leaves as words because they double as articles.
_SMALL_WORDS: dict[str, dict[str, int]] = {
    "en": {"one": 1, "a single": 1, "just one": 1},
    "de": {
        "ein": 1,
        "eine": 1,
        "einen": 1,
        "einer": 1,
        "zu 2": 2,
        "zu zweit": 2,
        "zu dritt": 3,
        "zu viert": 4,
        "zu fünft": 5,
        "zu sechst": 6,
        "zu siebt": 7,
        "zu acht": 8,
        "zu neunt": 9,
        "zu zehnt": 10,
    },
}


def speak_integer(n: int, language: str) -> str:
    """Number words, e.g. 4 -> "four" / "vier"."""
    return number_words(n, language)


@dataclass
class DigitsSlot(SlotType):
    """A digit string (order number), spoken digit by digit or in groups."""

    kind: ClassVar[str] = "digits"
    min_len: int = 1
    max_len: int = 20
    max_words: int = field(default=0)

    def __post_init__(self) -> None:
        self.max_words = self.max_words or self.max_len + 2

    def parse_normalized(self, text: str, language: str, today: dt.date | None) -> str | None:
        words = _DIGIT_WORDS.get(language, {})
        out: list[str] = []
        repeat = 1
        for word in text.split():
            if word in _REPEAT.get(language, {}):
                repeat = _REPEAT[language][word]
                continue
            digits = word if word.isdigit() else words.get(word)
            if digits is None:
                return None
            out.append(digits * repeat if len(digits) == 1 else digits)
            repeat = 1
        value = "".join(out)
        return value if out and repeat == 1 and self.min_len <= len(value) <= self.max_len else None

    def speak(self, value: Any, language: str) -> str:
        return speak_digits(str(value), language)

    def describe(self) -> str:
        return f"digit string of {self.min_len}..{self.max_len} digits"

    def words(self, language: str) -> frozenset[str] | None:
        return frozenset({"#", *_DIGIT_WORDS.get(language, {}), *_REPEAT.get(language, {})})

    def first_words(self, language: str) -> frozenset[str] | None:
        return self.words(language)


_DIGIT_WORDS = {
    "en": {"oh": "0", "o": "0", "one": "1"},
    "de": {"null": "0", "eins": "1", "ein": "1", "zwo": "2"},
}
_REPEAT = {"en": {"double": 2, "triple": 3}, "de": {"doppel": 2}}


def speak_digits(value: str, language: str) -> str:
    """Digit by digit: "4213" -> "four two one three" / "vier zwei eins drei"."""
    return " ".join(number_words(int(d), language) for d in value if d.isdigit())


@dataclass
class DaySlot(SlotType):
    """A day: canonical is the lower-case English weekday, as a ``DayValue`` that also
    carries the calendar date (see ``slot_day``)."""

    kind: ClassVar[str] = "day"
    max_words: int = 6

    def parse_normalized(self, text: str, language: str, today: dt.date | None) -> DayValue | None:
        return parse_day(text, language, today)

    def not_values(self, language: str) -> tuple[str, ...]:
        return NOT_DAYS.get(language, ())

    def speak(self, value: Any, language: str) -> str:
        return speak_day(str(value), language)

    @property
    def open(self) -> bool:
        return False  # a closed set of phrases, however many dates it covers

    def describe(self) -> str:
        return "lower-case English weekday (e.g. friday), or today / tomorrow / a date"

    def first_words(self, language: str) -> frozenset[str] | None:
        return day_words(language)[0]

    def words(self, language: str) -> frozenset[str] | None:
        return day_words(language)[1]


@dataclass
class TimeSlot(SlotType):
    """Clock time ``HH:MM``; ``prefer`` resolves 1-11 without am/pm (see slot_time)."""

    kind: ClassVar[str] = "time"
    prefer: Prefer = None
    max_words: int = 8

    def parse_normalized(self, text: str, language: str, today: dt.date | None) -> str | None:
        if text in _ARTICLES.get(language, ()):
            return None  # a bare "ein" is no hour ("um eins", "um ein Uhr" are)
        return parse_time(text, language, self.prefer)

    def not_values(self, language: str) -> tuple[str, ...]:
        return PRONOUN_ONES.get(language, ())

    def speak(self, value: Any, language: str) -> str:
        return speak_time(str(value), language)

    def describe(self) -> str:
        return "24-hour time HH:MM, e.g. 19:30"

    def cue_words(self, language: str) -> frozenset[str]:
        return TIME_CUES.get(language, frozenset())

    def words(self, language: str) -> frozenset[str] | None:
        return TIME_WORDS.get(language, frozenset()) | {"#"}

    def first_words(self, language: str) -> frozenset[str] | None:
        return TIME_FIRST_WORDS.get(language, frozenset()) | {"#"}


@dataclass
class ListSlot(SlotType):
    """Fixed values with synonyms per language ("*": every language); canonical is the key."""

    kind: ClassVar[str] = "list"
    values: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    max_words: int = 8
    _tables: dict[str, dict[str, str]] = field(default_factory=dict, repr=False)

    def table(self, language: str) -> dict[str, str]:
        """Normalised synonym -> canonical value (the value itself always counts)."""
        table = self._tables.get(language)
        if table is None:
            table = {}
            for value, by_language in self.values.items():
                phrases = [value, *by_language.get(language, []), *by_language.get("*", [])]
                for phrase in phrases:
                    table.setdefault(normalize(phrase, language), value)
            table.pop("", None)
            self._tables[language] = table
        return table

    def parse_normalized(self, text: str, language: str, today: dt.date | None) -> str | None:
        return self.table(language).get(text)

    def speak(self, value: Any, language: str) -> str:
        by_language = self.values.get(str(value), {})
        synonyms = by_language.get(language) or by_language.get("*")
        return synonyms[0] if synonyms else str(value)

    def lexicon(self, language: str) -> list[str] | None:
        return list(self.table(language))

    def describe(self) -> str:
        return "one of: " + ", ".join(self.values)


@dataclass
class WildcardSlot(SlotType):
    """Free text of at most ``max_words`` words (a name, a note)."""

    kind: ClassVar[str] = "wildcard"
    max_words: int = 5

    def parse_normalized(self, text: str, language: str, today: dt.date | None) -> str | None:
        n = len(text.split())
        return text if 0 < n <= self.max_words else None

    def speak(self, value: Any, language: str) -> str:
        return str(value)

    def describe(self) -> str:
        return f"free text, at most {self.max_words} words"


SLOT_KINDS: dict[str, type[SlotType]] = {
    cls.kind: cls
    for cls in (IntegerSlot, CountSlot, DigitsSlot, DaySlot, TimeSlot, ListSlot, WildcardSlot)
}
