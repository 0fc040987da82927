"""Clock times: spoken/ASR forms -> ``HH:MM`` (24 h), and ``HH:MM`` -> natural speech.

Parsing runs on normalised text (number words already digits), so the grammar
only has to know the time words: "half past 7", "quarter to 8", "7 30 pm",
"19:30", "halb 8", "viertel nach 7", "8 uhr abends". An hour of 1-11 without a
morning/evening marker is ambiguous; ``prefer`` decides ("evening" turns
"halb 8" into 19:30, otherwise 07:30) - that is the hook for a slot's context.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Literal

from unicode_rbnf import RbnfEngine

from voicebot.nlu.misheard import MISHEARD_NUMBERS

Prefer = Literal["evening", "morning"] | None
_Meridiem = Literal["am", "pm", "evening", "night", "noon", ""]

_PARSED = 4096  # phrases whose reading is kept (a pure function of its words)
_H = r"(\d{1,2}|one|ein)"
_M = r"(\d{1,2})"

# Trailing day-part phrases -> meridiem, longest first so "in the evening" beats "evening".
_MERIDIEM: dict[str, list[tuple[str, _Meridiem]]] = {
    "en": [
        ("in the morning", "am"),
        ("this morning", "am"),
        ("in the afternoon", "pm"),
        ("this afternoon", "pm"),
        ("in the evening", "evening"),
        ("this evening", "evening"),
        ("at night", "night"),
        ("in the night", "night"),
        ("tonight", "evening"),
        ("am", "am"),
        ("pm", "pm"),
        ("noon", "noon"),
    ],
    "de": [
        ("in der früh", "am"),
        ("am morgen", "am"),
        ("am vormittag", "am"),
        ("morgens", "am"),
        ("früh", "am"),
        ("vormittags", "am"),
        ("am nachmittag", "pm"),
        ("nachmittags", "pm"),
        ("am abend", "evening"),
        ("abends", "evening"),
        ("in der nacht", "night"),
        ("nachts", "night"),
        ("mittags", "noon"),
        ("am mittag", "noon"),
    ],
}

# Words a time phrase may contain besides numbers (a hint for the fuzzy prefilter).
TIME_WORDS: dict[str, frozenset[str]] = {
    lang: frozenset(w for phrase, _ in pairs for w in phrase.split()) | extra
    for (lang, pairs), extra in zip(
        _MERIDIEM.items(),
        (
            frozenset(
                "a half past after quarter to till til before of minute minutes oh o one "
                "noon midday midnight oclock hours".split()
            ),
            frozenset(
                "halb viertel dreiviertel nach vor minute minuten uhr ein mittag "
                "mitternacht".split()
            ),
        ),
        strict=True,
    )
}

# Words that announce a time right before it: "at 8" is a time, a bare "8" may be a count.
TIME_CUES: dict[str, frozenset[str]] = {
    "en": frozenset("at around about by until till before after from arriving".split()),
    "de": frozenset("um gegen ab bis vor nach so circa".split()),
}

# Words a time phrase can start with besides a number.
TIME_FIRST_WORDS: dict[str, frozenset[str]] = {
    "en": frozenset("a half quarter one noon midday midnight".split()),
    "de": frozenset("halb viertel dreiviertel ein mittag mitternacht".split()),
}

# (pattern, builder(groups) -> (hour, minute, is_relative_12h)). Hours from
# relative forms ("halb 8" -> 7) are always on the 12-hour dial.
_Rule = tuple[re.Pattern[str], Callable[[tuple[str, ...]], tuple[int, int] | None]]


def _hour(text: str) -> int:
    return 1 if text in ("one", "ein") else int(text)


def _before(hour: int) -> int:
    """The hour before ``hour`` on a 12-hour dial (1 -> 12)."""
    return (hour - 2) % 12 + 1


def _direct(g: tuple[str, ...]) -> tuple[int, int]:
    return _hour(g[0]), int(g[1]) if len(g) > 1 and g[1] else 0


def _hhmm(g: tuple[str, ...]) -> tuple[int, int] | None:
    digits = g[0]
    return int(digits[:-2]), int(digits[-2:])


_COMMON: list[_Rule] = [
    (re.compile(rf"^{_H}(?::(\d\d))?$"), _direct),
    (re.compile(rf"^{_H} (\d\d)$"), _direct),
    (re.compile(r"^(\d{3,4})$"), _hhmm),
]
_RULES: dict[str, list[_Rule]] = {
    "en": [
        *_COMMON,
        (re.compile(rf"^{_H} (?:oh|o) (\d)$"), _direct),
        (re.compile(rf"^(?:a )?half (?:past|after) {_H}$"), lambda g: (_hour(g[0]), 30)),
        (re.compile(rf"^half {_H}$"), lambda g: (_hour(g[0]), 30)),  # British "half seven"
        (re.compile(rf"^(?:a )?quarter (?:past|after) {_H}$"), lambda g: (_hour(g[0]), 15)),
        (
            re.compile(rf"^(?:a )?quarter (?:to|till|til|before|of) {_H}$"),
            lambda g: (_before(_hour(g[0])), 45),
        ),
        (
            re.compile(rf"^{_M}(?: minutes?)? (?:past|after) {_H}$"),
            lambda g: (_hour(g[1]), int(g[0])),
        ),
        (
            re.compile(rf"^{_M}(?: minutes?)? (?:to|till|til|before|of) {_H}$"),
            lambda g: (_before(_hour(g[1])), 60 - int(g[0])) if 0 < int(g[0]) < 60 else None,
        ),
        (re.compile(r"^(?:12 )?(?:noon|midday)$"), lambda g: (12, 0)),
        (re.compile(r"^(?:12 )?midnight$"), lambda g: (0, 0)),
    ],
    "de": [
        *_COMMON,
        (re.compile(rf"^{_H} uhr(?: {_M})?$"), _direct),
        (re.compile(rf"^{_H}:(\d\d) uhr$"), _direct),
        (re.compile(rf"^halb {_H}$"), lambda g: (_before(_hour(g[0])), 30)),
        (re.compile(rf"^viertel nach {_H}$"), lambda g: (_hour(g[0]), 15)),
        (re.compile(rf"^viertel {_H}$"), lambda g: (_before(_hour(g[0])), 15)),
        (
            re.compile(rf"^(?:viertel vor|dreiviertel|3 viertel) {_H}$"),
            lambda g: (_before(_hour(g[0])), 45),
        ),
        (
            re.compile(rf"^{_M}(?: minuten?)? nach halb {_H}$"),
            lambda g: (_before(_hour(g[1])), 30 + int(g[0])) if int(g[0]) < 30 else None,
        ),
        (
            re.compile(rf"^{_M}(?: minuten?)? vor halb {_H}$"),
            lambda g: (_before(_hour(g[1])), 30 - int(g[0])) if 0 < int(g[0]) <= 30 else None,
        ),
        (re.compile(rf"^{_M}(?: minuten?)? nach {_H}$"), lambda g: (_hour(g[1]), int(g[0]))),
        (
            re.compile(rf"^{_M}(?: minuten?)? vor {_H}$"),
            lambda g: (_before(_hour(g[1])), 60 - int(g[0])) if 0 < int(g[0]) < 60 else None,
        ),
        (re.compile(r"^(?:12 uhr )?mittag$"), lambda g: (12, 0)),
        (re.compile(r"^(?:12 uhr )?mitternacht$"), lambda g: (0, 0)),
    ],
}


class TimeValue(str):
    """``HH:MM`` that also knows the other readings of what was said.

    ``readings``: every plausible ``HH:MM`` (the value first) - "8" without am/pm is
    ("20:00", "08:00") with ``prefer: evening``; a flow may re-pick among them with
    what it knows (``pick_reading``, e.g. the opening hours). ``approximate``: the
    caller said "around eight", "eight-ish". ``repaired``: a misheard hour word was
    read as the number it sounds like ("half past heaven").
    """

    readings: tuple[str, ...]
    approximate: bool
    repaired: bool

    def __new__(
        cls,
        value: str,
        readings: tuple[str, ...] = (),
        approximate: bool = False,
        repaired: bool = False,
    ) -> TimeValue:
        out = super().__new__(cls, value)
        out.readings = readings or (value,)
        out.approximate = approximate
        out.repaired = repaired
        return out

    def __reduce__(self) -> tuple[type[TimeValue], tuple[str, tuple[str, ...], bool, bool]]:
        return (TimeValue, (str(self), self.readings, self.approximate, self.repaired))


# "around 8", "8ish", "8 or so": the time is approximate; the words are not part of it.
_APPROX_LEAD = {
    "en": (
        "around ",
        "about ",
        "roughly ",
        "approximately ",
        "circa ",
        "sometime around ",
        "somewhere around ",
        "round about ",
        "roundabout ",
        "round ",
    ),
    "de": ("gegen ", "so gegen ", "circa ", "ca ", "etwa ", "ungefähr ", "so um "),
}
_APPROX_TAIL = {
    "en": (" ish", " or so", " or thereabouts", " give or take"),
    "de": (" rum", " herum", " so rum", " circa", " ungefähr"),
}

_REPAIR_SLOTS = {
    "en": (
        re.compile(r"^((?:a )?(?:half|quarter) (?:past|after|to|till|before|of) )(\S+)$"),
        re.compile(r"^(half )(\S+)$"),
        re.compile(r"^()(\S+)( (?:pm|am|oclock|in the (?:morning|afternoon|evening)))$"),
    ),
    "de": (
        re.compile(r"^((?:halb|viertel nach|viertel vor|viertel|dreiviertel) )(\S+)$"),
        re.compile(r"^()(\S+)( uhr(?: \S+)?)$"),
    ),
}


for _lang in ("en", "de"):
    _approx = {w for p in (*_APPROX_LEAD[_lang], *_APPROX_TAIL[_lang]) for w in p.split()}
    _misheard = set(MISHEARD_NUMBERS[_lang])
    TIME_WORDS[_lang] = TIME_WORDS[_lang] | _approx | _misheard
    TIME_FIRST_WORDS[_lang] = (
        TIME_FIRST_WORDS[_lang] | {p.split()[0] for p in _APPROX_LEAD[_lang]} | _misheard
    )


@functools.lru_cache(maxsize=_PARSED)  # a turn's tiers read the same phrases
def parse_time(text: str, language: str, prefer: Prefer = None) -> TimeValue | None:
    """``HH:MM`` for a normalised time phrase, or None if it is not (only) a time."""
    text, approximate = _strip_approx(text, language)
    found = _parse_exact(text, language, prefer)
    if found is not None:
        return TimeValue(found[0], found[1], approximate)
    repaired = _repair(text, language)
    if repaired is not None:
        found = _parse_exact(repaired, language, prefer)
        if found is not None:
            return TimeValue(found[0], found[1], approximate, repaired=True)
    return None


def pick_reading(value: str, start: str, end: str) -> str:
    """Among ``value``'s readings, the first within ``[start, end]`` (``HH:MM``); else ``value``.

    How a flow applies what it knows, e.g. the day's opening hours: "at 11" for a
    restaurant open 12:00-23:00 stays 23:00, "at 1" becomes 13:00 whatever ``prefer``.
    """
    readings = getattr(value, "readings", (value,))
    for reading in readings:
        if start <= reading <= end:
            if reading == value:
                return value
            others = tuple(r for r in readings if r != reading)
            return TimeValue(
                reading,
                (reading, *others),
                getattr(value, "approximate", False),
                getattr(value, "repaired", False),
            )
    return value


def _strip_approx(text: str, language: str) -> tuple[str, bool]:
    approximate = False
    for lead in _APPROX_LEAD.get(language, ()):
        if text.startswith(lead):
            text, approximate = text[len(lead) :], True
            break
    for tail in _APPROX_TAIL.get(language, ()):
        if text.endswith(tail):
            text, approximate = text[: -len(tail)], True
            break
    return text, approximate


def _repair(text: str, language: str) -> str | None:
    table = MISHEARD_NUMBERS.get(language, {})
    for pattern in _REPAIR_SLOTS.get(language, ()):
        found = pattern.match(text)
        if found is None:
            continue
        word = found.group(2)
        if word.isdigit():
            return None
        digit = table.get(word) or _sounds_like_number(word, language)
        if digit is None:
            return None
        return found.group(1) + digit + (found.group(3) if found.lastindex == 3 else "")
    return None


def _sounds_like_number(word: str, language: str) -> str | None:
    """The hour 1-12 whose number word is closest in spelling to ``word`` (a mishearing)."""
    if len(word) < 3:
        return None
    from rapidfuzz import process
    from rapidfuzz.distance import Indel

    names = _number_names(language)
    best = process.extractOne(
        word, list(names), scorer=Indel.normalized_similarity, score_cutoff=0.7
    )
    return names[best[0]] if best else None


_NUMBER_NAMES: dict[str, dict[str, str]] = {}
# A 24-hour time said with "hours" ("nineteen hundred hours", "eighteen thirty hours");
# "2 hours" is a duration, not a time.
_HOURS = re.compile(r"^([01]\d|2[0-3]) ?([0-5]\d) hours$")


def _number_names(language: str) -> dict[str, str]:
    names = _NUMBER_NAMES.get(language)
    if names is None:
        names = _NUMBER_NAMES[language] = {number_words(n, language): str(n) for n in range(1, 13)}
    return names


def _parse_exact(text: str, language: str, prefer: Prefer) -> tuple[str, tuple[str, ...]] | None:
    rules = _RULES.get(language, _COMMON)
    text, meridiem = _split_meridiem(text, language)
    if language == "en" and text.endswith(" oclock"):
        text = text[: -len(" oclock")]
    elif language == "en" and (hours := _HOURS.match(text)):
        # "1900 hours", "0730 hours", "eighteen thirty hours": the 24-hour clock, literally
        clock = f"{int(hours.group(1)):02d}:{hours.group(2)}"
        return clock, (clock,)
    for pattern, build in rules:
        found = pattern.match(text)
        if found is None:
            continue
        parsed = build(found.groups())
        if parsed is None:
            return None
        value = _resolve(*parsed, meridiem, prefer)
        if value is None:
            return None
        readings = [value]
        if not meridiem and 1 <= parsed[0] <= 11:
            other: Prefer = "morning" if prefer == "evening" else "evening"
            alt = _resolve(*parsed, meridiem, other)
            if alt is not None and alt != value:
                readings.append(alt)
        return value, tuple(readings)
    return None


def _split_meridiem(text: str, language: str) -> tuple[str, _Meridiem]:
    for phrase, meridiem in _MERIDIEM.get(language, ()):
        if text.endswith(" " + phrase):
            return text[: -len(phrase) - 1], meridiem
    return text, ""


def _resolve(hour: int, minute: int, meridiem: _Meridiem, prefer: Prefer) -> str | None:
    if not (0 <= minute <= 59 and 0 <= hour <= 24):
        return None
    if hour == 24:
        hour = 0 if minute == 0 else -1
    elif 1 <= hour <= 12:
        hour = _twelve_hour(hour, meridiem, prefer)
    elif meridiem == "am":
        hour = -1  # "19 am"
    if hour < 0:
        return None
    return f"{hour:02d}:{minute:02d}"


def _twelve_hour(hour: int, meridiem: _Meridiem, prefer: Prefer) -> int:
    base = hour % 12  # 12 -> 0
    if meridiem == "am":
        return base
    if meridiem == "pm":
        return base + 12
    if meridiem == "evening":  # "8 tonight", "half past 4 this evening"; "1 tonight" is none
        return base + 12 if 4 <= hour <= 11 else -1
    if meridiem == "night":
        return base + 12 if hour >= 6 and hour != 12 else base
    if meridiem == "noon":
        return base + 12 if hour <= 5 else hour
    if hour == 12:
        return 12
    return base + 12 if prefer == "evening" else base


# --- speaking -------------------------------------------------------------------------

_ENGINES: dict[str, RbnfEngine] = {}


def rbnf(language: str) -> RbnfEngine:
    """The CLDR number speller for ``language`` (one per process)."""
    engine = _ENGINES.get(language)
    if engine is None:
        engine = _ENGINES[language] = RbnfEngine.for_language(language)
    return engine


def number_words(n: int, language: str, ruleset: str | None = None) -> str:
    """Cardinal number words (unicode-rbnf); hyphens become spaces for TTS."""
    result = rbnf(language).format_number(n)
    text = result.text_by_ruleset.get(ruleset or "", result.text)
    return text.replace("-", " ")


def speak_time(value: str, language: str) -> str:
    """Natural spoken form of ``HH:MM``: "half past seven", "eight p m", "halb acht"."""
    hour, minute = (int(part) for part in value.split(":"))
    h12 = hour % 12 or 12
    nxt = h12 % 12 + 1
    if language == "de":
        return _speak_de(hour, minute, h12, nxt)
    if (hour, minute) == (12, 0):
        return "noon"
    if (hour, minute) == (0, 0):
        return "midnight"

    def w(n: int) -> str:
        return number_words(n, "en")

    meridiem = "a m" if hour < 12 else "p m"
    if minute == 0:
        return f"{w(h12)} {meridiem}"
    if minute == 30:
        return f"half past {w(h12)}"
    if minute == 15:
        return f"quarter past {w(h12)}"
    if minute == 45:
        return f"quarter to {w(nxt)}"
    spoken_minute = w(minute) if minute >= 10 else f"oh {w(minute)}"
    return f"{w(h12)} {spoken_minute} {meridiem}"


def _speak_de(hour: int, minute: int, h12: int, nxt: int) -> str:
    def w(n: int) -> str:
        return number_words(n, "de")

    if (hour, minute) == (0, 0):
        return "Mitternacht"
    if minute == 0:
        part = (
            "nachts"
            if hour < 5
            else "morgens"
            if hour < 11
            else ""
            if hour < 14
            else "nachmittags"
            if hour < 18
            else "abends"
        )
        spoken = "ein" if h12 == 1 else w(h12)
        return f"{spoken} Uhr {part}".strip()
    if minute == 30:
        return f"halb {w(nxt)}"
    if minute == 15:
        return f"viertel nach {w(h12)}"
    if minute == 45:
        return f"viertel vor {w(nxt)}"
    return f"{w(hour)} Uhr {w(minute)}"
