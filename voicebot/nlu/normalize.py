"""Text normalisation that makes ASR output and template literals comparable.

Utterances are normalised whole; template literals chunk by chunk with the same
rules, so a spelling choice here (``o'clock`` -> ``oclock``, ``ß`` -> ``ss``,
``four`` -> ``4``) only has to be consistent, never pretty. Steps, in order:
Unicode NFKC and lower case; ``7.30``/``19.30`` -> ``7:30``/``19:30``; digit
group commas dropped; punctuation and hyphens to spaces (a colon survives only
between digits, apostrophes are removed); number words -> digits with
``text2num`` (plus the small words it leaves alone on purpose: "two", "zwei",
"eins"); ``8 p.m.``/``8pm``/``8 p m`` -> ``8 pm`` (English); fillers (uh, um,
äh, ähm ...) and stutters ("i i want") removed. "one"/"ein" stay words: they are
articles as often as numbers, so slot parsers read them in context - except an
English "one" after a time cue that closes the turn or goes on with a time ("around
one, for lunch", "at one thirty").

Two English mishearings are repaired where the words around leave no other
reading: a count written as its homophone ("*for* people, Saturday", "a table
for *to* adults", "*to* adults and *to* children" - only before a people noun,
after a word that leads a count, and not before "with", "who" ...: "a menu for
people with allergies" stays), and "quarter" written as "water", "order" or "what a"
before "past"/"to" and an hour ("*water* past 6").
"""

from __future__ import annotations

import functools
import re
import unicodedata

from text_to_num import alpha2digit

# Languages text2num can convert; others keep their number words.
_TEXT2NUM = frozenset({"en", "de", "fr", "es", "pt", "it", "nl"})

FILLERS: dict[str, frozenset[str]] = {
    "en": frozenset({"uh", "uhm", "um", "umm", "uhh", "er", "erm", "ah", "ahh", "hmm", "hm"}),
    "de": frozenset({"äh", "ähm", "ähh", "öh", "öhm", "ehm", "hm", "hmm", "mh"}),
}

# Isolated small numbers text2num deliberately keeps as words (threshold 3).
_SMALL_NUMBERS: dict[str, dict[str, str]] = {
    "en": {"two": "2", "zero": "0"},
    "de": {
        "zwei": "2",
        "zwo": "2",
        "eins": "1",
        # spoken and southern forms: "um sechse rum", "für zwoa", "so gegen neune"
        "zwoa": "2",
        "zwoi": "2",
        "zwee": "2",
        "drü": "3",
        "dreie": "3",
        "viere": "4",
        "fünfe": "5",
        "sechse": "6",
        "sieme": "7",
        "siebene": "7",
        "siebne": "7",
        "achte": "8",
        "neune": "9",
        "elfe": "11",
        "zehne": "10",
        "zwölfe": "12",
    },
}

# Regional and spoken spellings of words the slot types read: "heut Abend", "am
# Samschtig", "für de Friitig" (Swabian, Swiss, Bavarian).
_REGIONAL: dict[str, dict[str, str]] = {
    "de": {
        "heut": "heute",
        "heit": "heute",
        "mäntig": "montag",
        "zischtig": "dienstag",
        "mittwuch": "mittwoch",
        "dunschtig": "donnerstag",
        "donnschtig": "donnerstag",
        "friitig": "freitag",
        "fritig": "freitag",
        "samschtig": "samstag",
        "samstig": "samstag",
        "sunntig": "sonntag",
        "sonnti": "sonntag",
        "persone": "personen",  # "drü Persone"
    },
}

_DOT_TIME = re.compile(r"\b([01]?\d|2[0-4])\.([0-5]\d)\b")
_DIGIT_GROUP = re.compile(r"(?<=\d),(?=\d{3}\b)")
_ATTACHED_AMPM = re.compile(r"(\d)(am|pm|a\.m\.?|p\.m\.?)(?![a-z])")
_SPACED_AMPM = re.compile(r"(\d) ([ap])(?: ?m)+\b")  # "8 p m", "8 pm m" (an extra letter)
_ATTACHED_ISH = re.compile(
    r"(\d|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve))ish\b"
)  # "8ish", "sevenish"
_ORDINAL_DOT = re.compile(r"(\d)\.(?=\s|$)")  # German "am 3. dezember"
_FRAGMENT = re.compile(r"(?<![\w-])\w+-(?=\s|$)")  # "I w- want": a cut-off word
_NON_WORD = re.compile(r"[^\w:']+|_")
_COLON_NOT_TIME = re.compile(r"(?<!\d):|:(?!\d)")
_UH_HUH = re.compile(r"\b(?:uh[ -]?huh|mm+[ -]?hmm+|mhm+)\b")  # all mean "yes"
_O_CLOCK = re.compile(r"\bo ?'? ?clock\b")
_DIGITS = re.compile(r"^[\d:]+$")
# a count's homophones (see the module docstring), the nouns after them, the words
# before them (or the start of a pause-separated stretch), and words after that make
# them prepositions again
_COUNT_HOMOPHONES = {"for": "4", "fore": "4", "to": "2", "too": "2", "tu": "2"}
_PEOPLE = frozenset("people persons adults guests children kids".split())
_COUNT_LEAD = frozenset(
    "and its is be table booking reservation reserve book were for just".split()
)
_NOT_A_COUNT_AFTER = frozenset("with who that which like under over from in".split())
_DAY_OF_MONTH = re.compile(r"^\d{1,2}(?:st|nd|rd|th)?$")
_QUARTER = re.compile(r"\b(?:water|order|porter|quota|what a)(?= (?:past|to|after) \d)")
# a sentence's full stop is a pause too ("nineteen hundred. seven in the evening" is no
# 1907), a dot after a digit is not ("am 3. dezember", "7.30")
_PAUSE = re.compile(r"[,;!?]+|(?<!\d):|:(?!\d)|(?<![\d.\s])\.+(?=\s|$)")


@functools.lru_cache(maxsize=1024)  # (the tiers of one turn ask for the same words)
def normalize(text: str, language: str) -> str:
    """Normalised, space-separated words for matching; see the module docstring."""
    fillers = FILLERS.get(language, frozenset())
    out: list[str] = []
    for segment in _segments(text, language):
        first = len(out)
        for word in _words(segment, language):
            if word in fillers:
                continue
            if len(out) > first and word == out[-1] and not _DIGITS.match(word):
                continue  # stutter; digit repeats are meaningful ("4 4 2")
            out.append(word)
    if language == "en":
        out = _one_after_time_cue(out)
    return " ".join(out)


def _one_after_time_cue(words: list[str]) -> list[str]:
    """ "around one, for lunch", "tomorrow at one": "one" after a time cue, closing the
    utterance or before a word that goes on with a time, is the hour ("the one at the
    window", "about one of your tables" stay words)."""
    out: list[str] = []
    for i, word in enumerate(words):
        if word == "one" and i > 0 and words[i - 1] in _TIME_CUES_BEFORE_ONE:
            after = words[i + 1] if i + 1 < len(words) else ""
            if after in _WITH_THE_HOUR:
                out.append("1")  # "at one thirty", "one pm"
                continue
            if after == "" or after in _AFTER_THE_HOUR:
                out += ["1", "oclock"]  # only a time reads "1 oclock", no count
                continue
        out.append(word)
    return out


_TIME_CUES_BEFORE_ONE = frozenset("at around about by till until before after".split())
_WITH_THE_HOUR = frozenset("pm am oclock 15 30 45 ish".split())
_AFTER_THE_HOUR = frozenset(
    "please for then if tomorrow today tonight on lunch lunchtime sharp o".split()
)


def _german_ordinals() -> dict[str, str]:
    """ "zweiten" -> "2", "dritter" -> "3": every inflected ordinal 1-31 (CLDR spell-out);
    text2num reads some forms and not others."""
    from unicode_rbnf import FormatPurpose, RbnfEngine

    engine = RbnfEngine.for_language("de")
    table: dict[str, str] = {}
    for n in range(1, 32):
        result = engine.format_number(n, purpose=FormatPurpose.ORDINAL)
        for text in result.text_by_ruleset.values():
            table[text.replace("ß", "ss")] = str(n)
    return table


_ORDINALS: dict[str, dict[str, str]] = {}


def _ordinal_words(language: str) -> dict[str, str]:
    table = _ORDINALS.get(language)
    if table is None:
        table = _ORDINALS[language] = _german_ordinals() if language == "de" else {}
    return table


def _segments(text: str, language: str) -> list[str]:
    """The text cut at commas and other pauses: a word said again after a pause ("not this
    Friday, Friday the 18th") is no stutter, and number words never join across one
    ("four, five" is not 45)."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = _DOT_TIME.sub(r"\1:\2", text)
    text = _DIGIT_GROUP.sub("", text)
    return [part for part in _PAUSE.split(text) if part.strip()]


def normalize_chunk(text: str, language: str) -> str:
    """Normalise a template literal, keeping its leading/trailing space (word boundaries)."""
    core = text.strip()
    if not core:
        return text
    lead = " " if text[:1].isspace() else ""
    tail = " " if text[-1:].isspace() else ""
    body = normalize(core, language)
    if not body:
        return lead or tail
    return f"{lead}{body}{tail}"


def _words(text: str, language: str) -> list[str]:
    text = text.replace("ß", "ss").replace("’", "'").replace("‘", "'").replace("`", "'")
    if language == "en":
        text = _ATTACHED_AMPM.sub(lambda m: f"{m.group(1)} {m.group(2)[0]}m", text)
        text = _ATTACHED_ISH.sub(r"\1 ish", text)
        text = _UH_HUH.sub("uhhuh", text)
        text = _O_CLOCK.sub("oclock", text)
        text = text.replace("&", " and ")
    elif language == "de":
        text = text.replace("&", " und ")
    text = _FRAGMENT.sub(" ", text)
    text = _NON_WORD.sub(" ", text)
    text = _COLON_NOT_TIME.sub(" ", text).replace("'", "")
    text = " ".join(text.split())
    if language == "de":
        ordinals = _ordinal_words(language)
        text = " ".join(ordinals.get(w, w) for w in text.split())
    if language in _TEXT2NUM and text:
        text = _ORDINAL_DOT.sub(r"\1", alpha2digit(text, language))
    small = _SMALL_NUMBERS.get(language)
    words = text.split()
    if small:
        words = [small.get(w, w) for w in words]
    regional = _REGIONAL.get(language)
    if regional:
        words = [regional.get(w, w) for w in words]
    if language == "en":
        text = _SPACED_AMPM.sub(r"\1 \2m", " ".join(words))
        text = _QUARTER.sub("quarter", text)
        words = _counts_heard_as_words(text.split())
    return words


def _counts_heard_as_words(words: list[str]) -> list[str]:
    """English "for people" / "to adults" where the caller said four / two (see the
    module docstring)."""
    out = list(words)
    for k, word in enumerate(words):
        digit = _COUNT_HOMOPHONES.get(word)
        if digit is None or k + 1 >= len(words) or words[k + 1] not in _PEOPLE:
            continue
        if k > 0 and words[k - 1] not in _COUNT_LEAD and not _DAY_OF_MONTH.match(words[k - 1]):
            continue
        if k + 2 < len(words) and words[k + 2] in _NOT_A_COUNT_AFTER:
            continue
        out[k] = digit
    return out
