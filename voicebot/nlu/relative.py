"""Changes relative to what the bot holds: "an hour later", "one more person", "the day after".

A caller correcting a read-back often names the change, not the new value. A person on
the phone hears "can we make it an hour later?" after "... at half past seven" as "at
half past eight". ``resolve`` does the same before matching: each relative phrase of a
slot the conversation holds is replaced by the value it comes to, written the way the
slot types read it ("20:30", "5 people", "monday the 7th of december"), so every tier
takes it as if the caller had said it. A phrase of a slot not held yet, a change past
midnight or below one person stays as said (the bot asks).

Slots are found by their values' kinds (a ``TimeValue``-like ``HH:MM``, an integer, a
``DayValue`` with a date), so any flow's slots resolve, not only the restaurant's.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from voicebot.nlu.slot_day import WEEKDAY_NAMES, month_name
from voicebot.nlu.slot_time import number_words

# "an hour later", "eine Person mehr": the article is one
_ONE = {"en": ("a", "an"), "de": ("ein", "eine", "einen", "einer")}
_MOST = 60  # the largest amount a change names in words ("forty-five minutes later")


def _amount_words(language: str) -> dict[str, int]:
    """Number words -> amount, as the bot speaks them (one home for number words)."""
    words = dict.fromkeys(_ONE[language], 1)
    for n in range(1, _MOST + 1):
        spoken = number_words(n, language)
        words[spoken] = words[spoken.replace(" ", "-")] = n
    return words


_AMOUNTS = {language: _amount_words(language) for language in _ONE}
_N = {
    lang: r"(?P<n>\d+|" + "|".join(sorted(words, key=len, reverse=True)) + ")"
    for lang, words in _AMOUNTS.items()
}
_LATER = {"en": r"(?P<dir>later|earlier|sooner)", "de": r"(?P<dir>später|früher|eher)"}

_PAUSES = frozenset(".,;?!")
# A count change is no change next to these: "acht mehr oder weniger" (about eight),
# "sechs oder sieben mehr" (which?), "gegen acht mehr" (a time).
_VAGUE_AFTER = {"en": ("or less", "or so", "or fewer"), "de": ("oder weniger", "oder so")}
_VAGUE_BEFORE = {
    "en": frozenset({"about", "around", "at"}),
    "de": frozenset({"gegen", "um", "so", "etwa", "ab"}),
}
# ... and these between two amounts: "six or seven more", "zwei bis drei mehr"
_BETWEEN = {"en": frozenset({"or", "to"}), "de": frozenset({"oder", "bis"})}


def _vague_before(clean: list[str], n: int, language: str) -> bool:
    """The amount at word ``n`` is vague by the words before it."""
    before = clean[n - 1] if n > 0 else ""
    if before in _VAGUE_BEFORE[language]:
        return True
    return (
        before in _BETWEEN[language]
        and n > 1
        and (clean[n - 2].isdigit() or clean[n - 2] in _AMOUNTS[language])
    )


# Words after a change that reject it (then it stays as said and the bot asks).
_REJECTED_AFTER = {
    "en": ("is too", "too late", "too early", "wont work", "doesnt work", "is no good", "no"),
    "de": ("ist zu", "zu spät", "zu früh", "geht nicht", "passt nicht", "nein"),
}
_CLOSING_LEADS = frozenset({"it", "make", "be"})
_VERBS = frozenset("push move put bring shift add squeeze fit".split())
_MAKE_IT = {"en": "make it", "de": "auf"}
_MOVE = r"(push|move|put|bring|shift) (it|that|us|the booking|the reservation|the table)"
_DAYS = {lang: "|".join(n.lower() for n in names) for lang, names in WEEKDAY_NAMES.items()}
# (slot kind, pattern, minutes or days per unit) - the unit a pattern's number counts
_PATTERNS: dict[str, list[tuple[str, str, int]]] = {
    "en": [
        ("time", r"(an|one) hour and a half " + _LATER["en"], 90),
        (
            "time",
            r"(half an hour|half a hour|a half hour|half hour|30 minutes|thirty minutes) "
            + _LATER["en"],
            30,
        ),
        (
            "time",
            r"(a quarter of an hour|a quarter hour|15 minutes|fifteen minutes) " + _LATER["en"],
            15,
        ),
        ("time", _N["en"] + r" hours? " + _LATER["en"], 60),
        # "an hour" as a recogniser writes it: "and our earlier would suit us better"
        ("time", r"(and our|an our|and hour) " + _LATER["en"], 60),
        ("time", _N["en"] + r" minutes " + _LATER["en"], 1),
        # "push it back fifteen minutes", "bring it forward an hour"
        ("time", _MOVE + r" (?P<dir>back|forward) (by )?(half an hour|a half hour)", 30),
        ("time", _MOVE + r" (?P<dir>back|forward) (by )?" + _N["en"] + r" hours?", 60),
        ("time", _MOVE + r" (?P<dir>back|forward) (by )?" + _N["en"] + r" minutes", 1),
        (
            "count",
            _N["en"] + r" (?P<dir>more|extra|additional|fewer|less)"
            r"( (person|people|persons|guests?|adults?|of us|coming|joining))",
            1,
        ),
        ("count", _N["en"] + r" (person|people|guests?) (?P<dir>more|less|fewer)", 1),
        # "can you add one more?", "make it two fewer?": the people the booking holds
        ("count", r"(add|bring|squeeze in|fit in) " + _N["en"] + r" (?P<dir>more|extra)", 1),
        ("count_closing", _N["en"] + r" (?P<dir>more|fewer|less|extra)", 1),
        ("day", r"(the|a) (?P<dir>day) (after|later)(?! tomorrow)", 1),
        # "can we push it a day", "move it back two days", "bring it forward a day"
        (
            "day",
            _MOVE
            + r" ((?P<dir>back|forward) )?(by )?"
            + _N["en"]
            + r" days?(?! (before|after) \S)( (?P<dir3>earlier|sooner|later|before|after))?",
            1,
        ),
        ("day", r"(a|one) day (?P<dir>later|earlier|before)", 1),
        ("day", r"the (?P<dir>next|following|previous) day", 1),
        ("day", r"the day (?P<dir>before)(?! yesterday)", 1),
        (
            "day",
            r"(a|one) week (?P<dir>later)|the (following|next) week|the (?P<dir2>week) after",
            7,
        ),
        # "the Saturday after": that weekday after the day held (a week on if the same)
        ("weekday", r"the (?P<wd>" + _DAYS["en"] + r") after(?! next)( that)?", 0),
        ("weekday", r"the (following|next) (?P<wd>" + _DAYS["en"] + r") after( that)?", 0),
    ],
    "de": [
        ("time", r"(eine|1) (halbe stunde) " + _LATER["de"], 30),
        ("time", r"(eine viertelstunde|(eine|1) viertel stunde|15 minuten) " + _LATER["de"], 15),
        ("time", r"(eineinhalb|anderthalb) stunden " + _LATER["de"], 90),
        ("time", _N["de"] + r" stunden? " + _LATER["de"], 60),
        ("time", _N["de"] + r" minuten " + _LATER["de"], 1),
        ("count", _N["de"] + r" (person|personen|gäste?|leute)? ?(?P<dir>mehr|weniger)", 1),
        ("count", r"noch (?P<n>eine|einen|1|2|zwei) (person|personen|gast|gäste)( mehr| dazu)?", 1),
        ("day", r"(einen|1) tag (?P<dir>später|früher|danach|davor|eher)", 1),
        ("day", r"am (?P<dir>tag danach|tag darauf|nächsten tag|folgenden tag|tag davor)", 1),
        ("day", r"(eine|1) woche (?P<dir>später)|die woche (danach|darauf)", 7),
        ("weekday", r"(den|am) (?P<wd>" + _DAYS["de"] + r") (danach|darauf)", 0),
        ("weekday", r"(den|am) (darauffolgenden|darauf folgenden) (?P<wd>" + _DAYS["de"] + ")", 0),
    ],
}
_COMPILED = {
    lang: [(kind, re.compile(r"(?<!\S)(?:" + p + r")(?!\S)"), unit) for kind, p, unit in pats]
    for lang, pats in _PATTERNS.items()
}
_EARLIER = {
    "earlier",
    "before",
    "sooner",
    "forward",
    "previous",
    "fewer",
    "less",
    "früher",
    "eher",
    "weniger",
    "davor",
    "tag davor",
}
_PEOPLE = {"en": "people", "de": "Personen"}


@dataclass(frozen=True, slots=True)
class Resolved:
    """``text`` with its relative phrases replaced; ``unsure`` mapped to its words."""

    text: str
    unsure: tuple[int, ...]
    changed: tuple[str, ...]  # the slots a phrase changed
    values: str = ""  # the values the phrases came to, alone ("20:30 5 people")


def resolve(
    text: str, language: str, held: Mapping[str, Any], unsure: Collection[int] = ()
) -> Resolved:
    """Replace each relative phrase of a held slot by the value it comes to."""
    patterns = _COMPILED.get(language)
    slots = _held_by_kind(held)
    if not patterns or not slots:
        return Resolved(text, tuple(unsure), ())
    words = text.split()
    clean = [re.sub(r"[^\w:'-]", "", w.lower()) for w in words]
    joined = " ".join(clean)
    edits: list[tuple[int, int, str, str]] = []  # token start, end, replacement, slot
    for kind, pattern, unit in patterns:
        held_kind = {"weekday": "day", "count_closing": "count"}.get(kind, kind)
        if held_kind not in slots:
            continue
        slot, value = slots[held_kind]
        for m in pattern.finditer(joined):
            a = joined.count(" ", 0, m.start())
            b = a + len(m.group(0).split())
            if any(a < e and s < b for s, e, _, _ in edits):
                continue
            after = " ".join(w.replace("'", "") for w in clean[b : b + 3])
            if any(f"{after} ".startswith(f"{r} ") for r in _REJECTED_AFTER.get(language, ())):
                continue  # "an hour later is too late": rejected, not asked for
            if kind.startswith("count") and (
                _vague_before(clean, joined.count(" ", 0, m.start("n")), language)
                or any(f"{after} ".startswith(f"{v} ") for v in _VAGUE_AFTER[language])
            ):
                continue  # "so gegen acht mehr oder weniger", "six or seven more"
            if any(words[k][-1] in _PAUSES for k in range(a, b - 1)):
                continue  # a phrase never runs across a pause: "gegen 8, mehr oder weniger"
            if kind == "count_closing" and not (
                (b == len(words) or words[b - 1][-1] in _PAUSES)
                and (a == 0 or clean[a - 1] in _CLOSING_LEADS)
            ):
                continue  # "make it two fewer?"; "one more thing", "can I ask one more?" no
            if kind == "weekday":
                amount = _days_to(value.date, m.group("wd"), language)
            else:
                sign = -1 if _direction(m) in _EARLIER else 1
                amount = _amount(m, language) * unit * sign
            new = _shifted(held_kind, value, amount, language)
            if new is not None and m.group(0).split()[0] in _VERBS:
                new = f"{_MAKE_IT[language]} {new}"  # "could we push it back ..." keeps a verb
            if new is not None:
                edits.append((a, b, new, slot))
    if not edits:
        return Resolved(text, tuple(unsure), ())
    out: list[str] = []
    where: dict[int, list[int]] = {}
    k = 0
    for a, b, new, _ in sorted(edits):
        for i in range(k, a):
            where[i] = [len(out)]
            out.append(words[i])
        tail = re.sub(r"^.*?([.,!?;]*)$", r"\1", words[b - 1])
        added = new.split()
        added[-1] += tail
        for i in range(a, b):
            where[i] = list(range(len(out), len(out) + len(added)))
        out += added
        k = b
    for i in range(k, len(words)):
        where[i] = [len(out)]
        out.append(words[i])
    mapped = sorted({j for i in unsure for j in where.get(i, [])})
    return Resolved(
        " ".join(out),
        tuple(mapped),
        tuple(slot for *_, slot in edits),
        " ".join(new for _, _, new, _ in sorted(edits)),
    )


def _held_by_kind(held: Mapping[str, Any]) -> dict[str, tuple[str, Any]]:
    kinds: dict[str, tuple[str, Any]] = {}
    for slot, value in held.items():
        if value is None:
            continue
        if isinstance(value, bool):
            continue
        if isinstance(value, int):
            kinds.setdefault("count", (slot, value))
        elif isinstance(getattr(value, "date", None), dt.date):
            kinds.setdefault("day", (slot, value))
        elif isinstance(value, str) and re.fullmatch(r"\d{2}:\d{2}", value):
            kinds.setdefault("time", (slot, value))
    return kinds


def _direction(m: re.Match[str]) -> str:
    groups = m.groupdict()
    if groups.get("dir2"):
        return "later"
    if groups.get("dir3"):  # "move it two days earlier"
        return "later" if groups["dir3"] in ("later", "after") else str(groups["dir3"])
    direction = groups.get("dir") or "later"  # "push it a day": on
    if direction in ("next", "following", "day", "week", "back"):
        return "later"
    return direction


def _amount(m: re.Match[str], language: str) -> int:
    n = m.groupdict().get("n")
    if n is None:
        return 1
    return int(n) if n.isdigit() else _AMOUNTS[language].get(n, 1)


def _days_to(date: dt.date, weekday: str, language: str) -> int:
    """Days from ``date`` to the next ``weekday`` after it (7: the same weekday)."""
    names = _DAYS[language].split("|")
    ahead = (names.index(weekday) - date.weekday()) % 7
    return ahead or 7


def _shifted(kind: str, value: Any, amount: int, language: str) -> str | None:
    if kind == "time":
        hours, minutes = (int(p) for p in str(value).split(":"))
        total = hours * 60 + minutes + amount
        if not 0 <= total < 24 * 60:
            return None
        return f"{total // 60:02d}:{total % 60:02d}"
    if kind == "count":
        count = int(value) + amount
        return f"{count} {_PEOPLE[language]}" if count >= 1 else None
    date = value.date + dt.timedelta(days=amount)
    weekday = WEEKDAY_NAMES[language][date.weekday()]
    month = month_name(date.month, language)
    if language == "de":
        return f"{weekday}, den {date.day}. {month}"
    return f"{weekday} the {_ordinal(date.day)} of {month}"


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
