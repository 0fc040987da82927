"""Counts of people, as callers say them: "six of us", "just me", "me and my wife".

Parsing runs on normalised text (number words already digits). A count is the
sum of its parts, joined by and / plus / with / und / mit: a number with an
optional noun ("2 adults and 2 kids" -> 4), a person ("my wife" -> 1, "my
parents" -> 2), the caller ("me", "myself", "ich" -> 1), a couple (2).
Vague amounts ("a few of us", "ein paar") are no count: the bot asks.
"""

from __future__ import annotations

import functools
import re

from voicebot.nlu.misheard import MISHEARD_NUMBERS, NOT_A_COUNT

_PARSED = 4096  # phrases whose reading is kept (a pure function of its words)
_NOUNS = {
    "en": (
        "people persons person guests guest adults adult kids kid children child "
        "friends friend colleagues colleague pax of us seniors teenagers babies baby "
        "ladies gentlemen men women guys girls boys family members diners sons daughters "
        "grandkids grandchildren cousins brothers sisters coworkers teammates parents "
        "friends grown ups grownups toddlers teens youngsters nephews nieces "
        "grandsons granddaughters students lads folks heads others souls clients client "
        "customers customer visitors kiddies kiddos bairns weans nippers littleuns"
    ),
    "de": (
        "personen person leute leuten gäste gästen gast erwachsene erwachsenen kinder kind "
        "freunde freunden freundinnen kollegen kolleginnen leutchen mann söhne töchter "
        "enkel enkelkinder kunden kundinnen besucher baby babys kleinkind kleinkinder"
    ),
}
# Nouns that count two each: "two couples" are four people, "zwei Pärchen" vier.
_PAIRS = {
    "en": ("couples", "pairs", "married couples"),
    "de": ("pärchen", "paare", "ehepaare", "päarchen"),
}
# Words naming a group as a whole ("the 3 of us", "a couple"), whose members may follow.
_GROUP = {"en": ("of us", "couple", "pair"), "de": ("paar", "zu 2", "zu 3", "zu 4", "zu 5")}
# One person each ("my wife"); the possessive/article is optional.
_ONE = {
    "en": (
        "wife husband partner friend girlfriend boyfriend son daughter mother mom mum "
        "dad father boss colleague brother sister kid child baby fiance fiancee date "
        "grandma grandpa grandmother grandfather aunt uncle cousin neighbor neighbour "
        "plus one guest mate buddy spouse other half client customer missus missis mrs "
        "hubby wifey toddler infant newborn tot teenager teen nan nana nanna granny gran "
        "grandad granddad niece nephew godson goddaughter stepson stepdaughter carer"
    ),
    "de": (
        "frau mann partner partnerin freund freundin sohn tochter mutter mama vater papa "
        "chef chefin kollege kollegin bruder schwester kind baby verlobter verlobte oma opa "
        "tante onkel cousin cousine nachbar nachbarin begleitung kunde kundin"
    ),
}
_TWO = {
    "en": ("parents grandparents couple twins in laws"),
    "de": ("eltern grosseltern großeltern schwiegereltern zwillinge"),
}
_POSSESSIVE = {
    "en": ("my", "our", "a", "the", "his", "her"),
    "de": (
        "meine",
        "meinem",
        "meiner",
        "mein",
        "meinen",
        "unsere",
        "unser",
        "einer",
        "einem",
        "ein",
        "eine",
        "die",
        "der",
        "den",
    ),
}
_SELF = {
    "en": {
        "just me",
        "only me",
        "just myself",
        "me alone",
        "alone",
        "on my own",
        "by myself",
        "myself only",
        "just the one",
        "only one",
        "a single person",
        "solo",
        "just me myself",
    },
    "de": {
        "nur ich",
        "ich allein",
        "ich alleine",
        "allein",
        "alleine",
        "nur für mich",
        "mich allein",
        "nur mich",
        "nur ich allein",
    },
}
# The caller, counted only beside others ("me and my wife"; a bare "i" is no count).
_SELF_PART = {"en": {"me", "myself", "i", "yours truly"}, "de": {"ich", "mich", "mir"}}
# "One" as a pronoun ("it's the only one under Patel", "the one on Friday"): no count
# and no clock time is spotted inside these (``SlotType.not_values``).
PRONOUN_ONES = {
    "en": ("the only one", "the one", "that one", "this one", "one of them", "the other one"),
    "de": ("der eine", "die eine", "das eine", "die einzige", "der einzige"),
}
_ONLY = frozenset({"just", "only", "nur"})  # "only the one": one person
_JOIN = {
    "en": re.compile(r"\s+(?:and|plus|with|&|along with|together with)\s+"),
    "de": re.compile(r"\s+(?:und|plus|mit|sowie)\s+"),
}
_ZU = {
    "zweit": 2,
    "dritt": 3,
    "viert": 4,
    "fünft": 5,
    "sechst": 6,
    "siebt": 7,
    "acht": 8,
    "neunt": 9,
    "zehnt": 10,
    "elft": 11,
    "zwölft": 12,
    "2": 2,
}
_WORDS = {
    "en": {
        "one": 1,
        "a single": 1,
        "just one": 1,
        "a couple": 2,
        "a couple of": 2,
        "a pair": 2,
        "both": 2,
        "the both": 2,
        "a dozen": 12,
        "half a dozen": 6,
    },
    "de": {
        "ein": 1,
        "eine": 1,
        "einen": 1,
        "einer": 1,
        "beide": 2,
        "wir beide": 2,
        "wir zwei": 2,
        "ein pärchen": 2,
        "ein dutzend": 12,
        "ein halbes dutzend": 6,
        "halbes dutzend": 6,
    },
}
_LEAD = {
    "en": (
        "its ",
        "it is ",
        "thats ",
        "that is ",
        "that makes ",
        "so thats ",
        "there is ",
        "there are ",
        "just ",
        "only ",
        "a party of ",
        "a group of ",
        "a family of ",
        "a table of ",
        "party of ",
        "group of ",
        "family of ",
        "us ",
        "we are now ",
        "were now ",
        "we are ",
        "were ",
        "we ",
        "the ",
        "all ",
        "about ",
        "around ",
        "maybe ",
        "probably ",
    ),
    "de": (
        "nur ",
        "wir sind jetzt ",
        "wir sind doch ",
        "wir sind dann ",
        "wir wären dann ",
        "wir wären ",
        "wir sind ",
        "mir san ",  # Bavarian "we are"
        "mir sind ",
        "wir ",
        "insgesamt ",
        "etwa ",
        "ungefähr ",
        "circa ",
        "so ",
        "vielleicht ",
    ),
}


# Leads that make a bare number vague: "about 8" is a time ("make it for about 8"); as a
# count it needs what is counted ("about 8 people", "around 6 of us").
_VAGUE = {
    "en": ("about ", "around ", "maybe ", "probably ", "roughly ", "approximately "),
    "de": ("etwa ", "ungefähr ", "circa ", "so ", "vielleicht ", "gegen "),
}


@functools.lru_cache(maxsize=_PARSED)  # a turn's tiers read the same phrases
def parse_count(text: str, language: str) -> int | None:
    """The number of people a normalised phrase names, or None."""
    text = text.strip()
    if not text:
        return None
    if text.isdigit():
        return int(text)
    misheard = _misheard(text, language)
    if misheard is not None:
        return misheard
    for lead in _VAGUE.get(language, ()):
        if text.startswith(lead) and _strip_leads(text, language).isdigit():
            return None
    if text not in _SELF.get(language, ()) and any(
        f" {text}".endswith(f" {p}") and text[: -len(p)].strip() not in _ONLY
        for p in PRONOUN_ONES.get(language, ())
    ):
        return None  # "the one on Friday": which booking, not how many people
    within = _within(text, language)
    if within is not None:
        return within
    join = _JOIN.get(language)
    chunks = join.split(text) if join else [text]
    parts: list[str] = []
    for chunk in chunks:  # "me my husband" (a comma, lost in normalising): two people
        runs = _counted_runs(chunk, language)  # "2 adults 2 kids": four
        if runs != [chunk]:
            parts += runs
        else:
            parts += _segments(chunk, language) if len(chunks) > 1 else [chunk]
    if len(parts) > 1 and parts[0].isdigit() and any(_numbered(p, language) for p in parts[1:]):
        return None  # "half 9 and we are 4", "7 and 4 of us": the bare number is no part
    if (
        len(parts) > 1
        and any(f" {m} " in f" {parts[0]} " for m in _GROUP.get(language, ()))
        and not any(_numbered(p, language) for p in parts[1:])
    ):
        # "a couple, me and the missus", "the 3 of us, me, my wife and my son": the group
        # named, then who is in it - not more people
        group = _part(parts[0], language, multi=False)
        rest = [_part(p, language, multi=True) for p in parts[1:]]
        if group is not None and None not in rest and sum(r or 0 for r in rest) == group:
            return group
    total = 0
    selfs = _SELF_PART.get(language, set())
    for k, part in enumerate(parts):
        if k > 0 and part.isdigit() and not (k == 1 and _strip_leads(parts[0], language) in selfs):
            return (
                None  # "3 people and 8 (oclock)": a bare number joins no count ("me plus 2" does)
            )
        n = _part(part, language, multi=len(parts) > 1)
        if n is None:
            return None
        total += n
    return total


# "we're 6 with grandma": a total, then who is in it (with a number after "with", more
# people: "4 adults with 2 kids")
_WITH = {"en": re.compile(r"\s+with\s+"), "de": re.compile(r"\s+mit\s+")}


def _within(text: str, language: str) -> int | None:
    """The total of "<total> with <unnumbered people>" (None: not that shape)."""
    with_ = _WITH.get(language)
    parts = with_.split(text, maxsplit=1) if with_ else []
    if len(parts) != 2 or not any(w.isdigit() for w in parts[0].split()):
        return None
    if _numbered(parts[1], language):
        return None
    total = parse_count(parts[0], language)
    nouns = set(_strip_leads(parts[0], language).split()[1:])
    if total is None or (nouns and not nouns & _TOTALS.get(language, frozenset())):
        return None  # "2 adults with my mum": adults are a part, the mum one more
    join = _JOIN.get(language)
    rest = join.split(parts[1]) if join else [parts[1]]
    if any(_part(p, language, multi=True) is None for p in rest):
        return None
    return total


def _misheard(text: str, language: str) -> int | None:
    """ "free kids", "sick of us": a number word the recogniser misheard, before a
    people noun (never an everyday word here: "for people" is four only where the
    normaliser finds no other reading, ``normalize.py``)."""
    word, _, rest = text.partition(" ")
    digit = MISHEARD_NUMBERS.get(language, {}).get(word)
    if digit is None or word in NOT_A_COUNT or not rest:
        return None
    nouns = set(_NOUNS.get(language, "").split())
    if rest not in nouns and rest != "of us":
        return None
    return int(digit)


def _numbered(part: str, language: str) -> bool:
    """The part holds a number of its own ("4 of us", "zu viert")."""
    words = part.split()
    return any(w[:1].isdigit() for w in words) or (
        language == "de" and any(w in _ZU for w in words[1:])
    )


def _counted_runs(chunk: str, language: str) -> list[str]:
    """ "2 adults 2 kids" (the comma lost in normalising): one run per number with the
    nouns it counts, when the chunk is nothing else; else the chunk whole."""
    runs: list[list[str]] = []
    for word in chunk.split():
        if word.isdigit() and runs and len(runs[-1]) > 1:
            runs.append([word])
        elif runs or word.isdigit():
            if not runs:
                runs.append([])
            runs[-1].append(word)
        else:
            return [chunk]
    pieces = [" ".join(r) for r in runs]
    if len(pieces) < 2 or not all(
        r[0].isdigit() and len(r) > 1 and _is_noun_phrase(" ".join(r[1:]), language) for r in runs
    ):
        return [chunk]
    if len(set(pieces)) == 1:
        return pieces[:1]  # "4 people, 4 people": said twice, not eight
    nouns = [" ".join(r[1:]) for r in runs]
    totals = _TOTALS.get(language, frozenset())
    if len(set(nouns)) < len(nouns) or any(set(n.split()) & totals for n in nouns):
        # "6 people 2 kids", "2 people 7 people": a total and a part of it, or a
        # number said again - no sum to trust (the bot asks)
        return [chunk]
    return pieces


def _segments(chunk: str, language: str) -> list[str]:
    """Split a list of people said without "and" at each new person ("me my husband")."""
    possessive = set(_POSSESSIVE.get(language, ()))
    starts = possessive | _SELF_PART.get(language, set())
    out: list[list[str]] = []
    for word in _strip_leads(chunk, language).split():
        if not out or (word in starts and out[-1][-1] not in possessive):
            out.append([word])
        else:
            out[-1].append(word)
    return [" ".join(w) for w in out]


def _strip_leads(text: str, language: str) -> str:
    for _ in range(3):  # up to three lead words ("just the 2 of us")
        for lead in _LEAD.get(language, ()):
            if text.startswith(lead) and len(text) > len(lead):
                text = text[len(lead) :]
                break
        else:
            break
    return text


def _part(text: str, language: str, multi: bool) -> int | None:
    lang_words = _WORDS.get(language, {})
    if text in _SELF.get(language, ()):
        return 1
    text = _strip_leads(text, language)
    if text in _SELF.get(language, ()) or (multi and text in _SELF_PART.get(language, ())):
        return 1
    if language == "de" and text.startswith("zu ") and text[3:] in _ZU:
        return _ZU[text[3:]]
    words = text.split()
    if len(words) > 1 and words[0] in _POSSESSIVE.get(language, ()) and words[1].isdigit():
        if len(words) == 2 and language == "de":
            return None  # "den 11": a date ("also den elften"), no count without its noun
        words = words[1:]  # "our 3 kids"
        text = " ".join(words)
    if not words:
        return None
    nouns = _NOUNS.get(language, "").split()
    head = words[0]
    rest = " ".join(words[1:])
    count: int | None = int(head) if head.isdigit() else None
    if count is None:
        for phrase, n in sorted(lang_words.items(), key=lambda kv: -len(kv[0])):
            if text == phrase:
                return n
            if text.startswith(phrase + " "):
                count, rest = n, text[len(phrase) + 1 :]
                break
    if count is not None:
        if rest in _PAIRS.get(language, ()):
            return 2 * count
        if not rest or rest in nouns or _is_noun_phrase(rest, language):
            return count
        if rest in _AFTER_DIGITS.get(language, ()) and head.isdigit():
            return count  # "die 2 Kleinen" (never "einen kleinen Tisch")
        return None
    # A person beside others: "my wife", "my parents".
    if not multi:
        return 2 if text in ("a couple", "the couple") else None
    if words[0] in _POSSESSIVE.get(language, ()):
        words = words[1:]
    phrase = " ".join(words)
    if phrase in _ONE.get(language, "").split() or phrase in ("plus one", "other half"):
        return 1
    if phrase in _TWO.get(language, "").split() or phrase == "in laws":
        return 2
    return None


# Nouns that count everyone ("6 people"): a run of them is the whole party, never a
# part to add another run to ("6 people 2 kids" is six, or a question).
_TOTALS = {
    "en": frozenset(
        "people persons person guests guest pax us diners heads souls folks total".split()
    ),
    "de": frozenset("personen person leute leuten gäste gästen gast insgesamt".split()),
}
# Words that count people only after a number in digits: "die 2 Kleinen"
_AFTER_DIGITS = {"de": frozenset({"kleinen", "kurzen"})}
# Words that count people only before "ones": "2 little ones" (never "a little later").
_ONES = {"en": frozenset("little wee young small tiny".split())}


def _is_noun_phrase(text: str, language: str) -> bool:
    """ "of us", "people in total", "adults", "little ones": words that only say what is
    counted."""
    words = text.split()
    if len(words) == 2 and words[0] in _ONES.get(language, ()) and words[1] == "ones":
        return True
    nouns = set(_NOUNS.get(language, "").split()) | {
        "of",
        "us",
        "in",
        "total",
        "all",
        "insgesamt",
        "altogether",
        "now",
        "jetzt",
    }
    return all(w in nouns for w in words)


def count_words(language: str) -> tuple[frozenset[str], frozenset[str]]:
    """(words a count may start with, words it may contain); "#" is any number."""
    leads = {p.split()[0] for p in _LEAD.get(language, ())}
    selfs = {
        w for p in (*_SELF.get(language, ()), *_SELF_PART.get(language, ())) for w in p.split()
    }
    words = {w for p in _WORDS.get(language, {}) for w in p.split()}
    persons = set(_ONE.get(language, "").split()) | set(_TWO.get(language, "").split())
    first = {"#"} | leads | {p.split()[0] for p in _SELF.get(language, ())}
    first |= set(_SELF_PART.get(language, ())) | {p.split()[0] for p in _WORDS.get(language, {})}
    first |= set(_POSSESSIVE.get(language, ())) | persons
    first |= set(MISHEARD_NUMBERS.get(language, {})) - NOT_A_COUNT
    if language == "de":
        first.add("zu")
    every = (
        first
        | selfs
        | words
        | persons
        | set(_NOUNS.get(language, "").split())
        | _ONES.get(language, frozenset())
        | {w for p in _PAIRS.get(language, ()) for w in p.split()}
        | {w for p in _LEAD.get(language, ()) for w in p.split()}
    )
    every |= {"and", "plus", "with", "und", "mit", "sowie", "of", "us", "zu", *_ZU}
    every |= _AFTER_DIGITS.get(language, frozenset())
    if language in _ONES:
        every.add("ones")  # "2 little ones" (only after one of _ONES: ``_is_noun_phrase``)
    return frozenset(first), frozenset(every)
