"""Days: spoken/ASR forms -> a weekday and a calendar date.

The canonical value of a day slot is the lower-case English weekday
(``"friday"``), which flows branch on and opening-hours tables are keyed by.
It is a ``DayValue``: a ``str`` that also carries the calendar ``date`` the
caller meant, so a booking can store the real day while every comparison with
``"friday"`` still holds.

Understood (normalised text, number words already digits):

* weekdays, with ``this`` / ``next`` / ``coming`` / ``on`` / plural ``fridays``;
  ``friday next week``; de ``diesen``, ``nächsten``, ``kommenden``, ``freitags``,
  ``freitag nächste woche``;
* relative days: today, tonight, tomorrow (night), the day after tomorrow;
  heute (abend), morgen (abend), übermorgen; counted from today: ``a week from today``,
  ``a week today``, ``in 3 days time``, ``heute in einer woche``, ``in 8 tagen`` (a week);
* dates: ``december 3rd``, ``the 3rd of december``, ``the 3rd``, ``3 december``,
  ``friday the 4th``, ``friday december 4th``; de ``am 3 dezember``, ``den 3``,
  ``freitag den 4``; a few holidays (christmas eve, new years eve, heiligabend,
  silvester ...).

Resolution against ``today``: a weekday is its next occurrence (today counts);
``next friday`` is the next Friday after today, ``friday next week`` the Friday
of next calendar week; a date without a month is the next such day of a month,
a date already past is next year's. A date whose stated weekday does not match
("friday the 5th" when the 5th is a Saturday) is no value: the bot asks again.
"""

from __future__ import annotations

import datetime as dt
import functools
import re

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
WEEKDAY_NAMES = {
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    "de": ("Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag", "Sonntag"),
}
_PARSED = 4096  # phrases whose reading is kept (a pure function of its words)
_MONTHS = {
    "en": (
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ),
    "de": (
        "januar",
        "februar",
        "märz",
        "april",
        "mai",
        "juni",
        "juli",
        "august",
        "september",
        "oktober",
        "november",
        "dezember",
    ),
}
_MONTH_ALIASES = {
    "en": {
        "jan": 1,
        "feb": 2,
        "mar": 3,
        "apr": 4,
        "jun": 6,
        "jul": 7,
        "aug": 8,
        "sep": 9,
        "sept": 9,
        "oct": 10,
        "nov": 11,
        "dec": 12,
    },
    "de": {"jänner": 1, "maerz": 3, "marz": 3},
}
_DAY_ALIASES = {"de": {"sonnabend": "saturday"}}
_RELATIVE = {
    "en": {
        "today": 0,
        "tonight": 0,
        "todays": 0,  # "today's (booking)", the apostrophe gone in normalising
        "tonights": 0,
        "tomorrows": 1,
        "this evening": 0,
        "this afternoon": 0,
        "tomorrow": 1,
        "tomorrow night": 1,
        "tomorrow evening": 1,
        "tomorrow afternoon": 1,
        "day after tomorrow": 2,
        "the day after tomorrow": 2,
    },
    "de": {
        "heute": 0,
        "heute abend": 0,
        "heute mittag": 0,
        "morgen": 1,
        "morgen abend": 1,
        "morgen mittag": 1,
        "übermorgen": 2,
        "übermorgen abend": 2,
        "übermorgen mittag": 2,
        "heute nachmittag": 0,
        "morgen nachmittag": 1,
    },
}
# Days counted from today: "a week from today", "in 3 days time", "heute in einer Woche".
_AMOUNT = r"(a|an|1|one|\d{1,2})"
_IN = {
    "en": re.compile(
        r"^(?:in )?" + _AMOUNT + r" (day|days|week|weeks|fortnight)(?: s)?(?: time)?"
        r"(?: (?:from )?(today|now|tomorrow|tonight))?$"
    ),
    "de": re.compile(
        r"^(?:(heute|morgen|heute abend) )?in (einer|einem|1|\d{1,2}) (tag|tagen|woche|wochen)$"
    ),
}
_TODAY_WEEK = {"en": re.compile(r"^(today|tomorrow|tonight) (week|fortnight)$")}
_UNIT_DAYS = {"day": 1, "days": 1, "week": 7, "weeks": 7, "fortnight": 14}
_UNIT_DAYS_DE = {"tag": 1, "tagen": 1, "woche": 7, "wochen": 7}
# Holidays a caller names as a day: (month, day).
_HOLIDAYS = {
    "en": {
        "christmas eve": (12, 24),
        "christmas day": (12, 25),
        "christmas": (12, 25),
        "boxing day": (12, 26),
        "new years eve": (12, 31),
        "new years day": (1, 1),
        "valentines day": (2, 14),
    },
    "de": {
        "heiligabend": (12, 24),
        "heiligen abend": (12, 24),
        "weihnachten": (12, 25),
        "1 weihnachtstag": (12, 25),
        "ersten weihnachtstag": (12, 25),
        "2 weihnachtstag": (12, 26),
        "zweiten weihnachtstag": (12, 26),
        "silvester": (12, 31),
        "neujahr": (1, 1),
        "valentinstag": (2, 14),
    },
}
# Words that may stand before a day phrase and mean nothing more.
_LEAD = {
    "en": ("on the ", "on ", "for the ", "for ", "this coming ", "this ", "coming ", "the "),
    "de": (
        "am ",
        "an dem ",
        "an einem ",
        "für den ",
        "für ",
        "den ",
        "diesen ",
        "kommenden ",
        "diesem ",
        "kommender ",
        "am kommenden ",
        "diesen kommenden ",
    ),
}
# Leads after which a bare number is a day of the month ("on the 3", "am 3"); after "for"
# it is a count ("a table for 3").
_DATE_LEADS = {
    "en": ("on the ", "on ", "the ", "for the "),
    "de": ("am ", "den ", "dem ", "an dem ", "für den ", "am kommenden "),
}
# Leads that name which week a weekday is in ("this Friday"): an explicit date
_THIS = {
    "en": ("this coming ", "this ", "coming "),
    "de": ("diesen kommenden ", "am kommenden ", "diesen ", "kommenden ", "diesem ", "kommender "),
}
_NEXT = {"en": ("next ",), "de": ("nächsten ", "nächster ", "am nächsten ")}
_NEXT_WEEK = {
    "en": (" next week",),
    "de": (" nächste woche", " nächster woche", " in der nächsten woche"),
}
_NEXT_WEEK_FIRST = {
    "en": ("next week on ", "next week "),
    "de": ("nächste woche am ", "nächster woche am ", "nächste woche ", "nächster woche "),
}
# "a week on Friday", "Friday week", "Donnerstag in einer Woche": the coming one, a week on
_WEEK_ON = {
    "en": (("a week on ", ""), ("a week from ", ""), ("", " week")),
    "de": (
        ("", " in einer woche"),
        ("", " in 1 woche"),
        ("in einer woche ", ""),
        ("", " in 8 tagen"),  # "Samstag in acht Tagen": German counts a week as eight days
        ("", " in 8 tag"),
    ),
}
# "the Saturday after next", "übernächsten Freitag": the coming one not counted
_AFTER_NEXT = {
    "en": (("", " after next"), ("next ", " after next")),
    "de": (("übernächsten ", ""), ("übernächster ", ""), ("übernächste ", "")),
}
_ORDINAL = re.compile(r"^(\d{1,2})(?:st|nd|rd|th|ten|ter)?$")

# Words a day phrase may start with, besides numbers ("#") and the names above.
_FIRST_EXTRA = {
    "en": "on for this coming next the day christmas boxing new valentines in a an".split(),
    "de": "am an für den diesen kommenden diesem kommender nächsten nächster nächste in".split(),
}


# A holiday naming an event, not its day: "the office Christmas do" is some evening in
# December (``SlotType.not_values``; "Christmas dinner" may be on the day and stays).
_EVENTS = ("party", "parties", "drinks", "bash", "night out", "get together", "social")
# "christmas do" (a party) but "Christmas, do you have ...?" (the comma lost in normalising)
_DO = tuple(f"{h} do {w}" for h in ("christmas", "xmas") for w in ("on", "for", "at", "with"))
NOT_DAYS = {
    "en": tuple(f"christmas {e}" for e in _EVENTS)
    + tuple(f"xmas {e}" for e in _EVENTS)
    + _DO
    + ("office christmas", "work christmas", "works christmas", "our christmas do"),
    "de": (),
}


class DayValue(str):
    """A weekday name (``"friday"``) that also knows the calendar date meant.

    ``explicit``: the caller named the date ("the 19th", "tomorrow"), rather than a
    weekday whose date is the next one."""

    date: dt.date | None
    explicit: bool

    def __new__(cls, weekday: str, date: dt.date | None = None, explicit: bool = False) -> DayValue:
        value = super().__new__(cls, weekday)
        value.date = date
        value.explicit = explicit
        return value

    def __reduce__(self) -> tuple[type[DayValue], tuple[str, dt.date | None, bool]]:
        return (DayValue, (str(self), self.date, self.explicit))


def parse_day(text: str, language: str, today: dt.date | None = None) -> DayValue | None:
    """The day a normalised phrase names, or None if it is not (only) a day."""
    return _parse_day(text.strip(), language, today or dt.date.today())


@functools.lru_cache(maxsize=_PARSED)  # a turn's tiers read the same phrases
def _parse_day(text: str, language: str, today: dt.date) -> DayValue | None:
    for lead in _LEAD.get(language, ()):  # longer leads come first in each list
        if text.startswith(lead):
            found = _core(
                text[len(lead) :], language, today, led=lead in _DATE_LEADS.get(language, ())
            )
            if found is not None and not found.explicit and lead in _THIS.get(language, ()):
                found = DayValue(found, found.date, explicit=True)  # "this Wednesday"
            if found is not None:
                return found
    return _core(text, language, today)


# "two days before Christmas", "a day after the 19th"
_DAYS_FROM = {
    "en": re.compile(r"^(\d+|a|one) days? (before|after) (.+)$"),
    "de": re.compile(r"^(\d+|einen|1) tage? (vor|nach) (.+)$"),
}


def _core(text: str, language: str, today: dt.date, led: bool = False) -> DayValue | None:
    around = _DAYS_FROM.get(language)
    found = around.match(text) if around is not None else None
    if found is not None:
        n, where, rest = found.groups()
        base = _parse_day(rest, language, today)
        if base is None or base.date is None or not base.explicit:
            return None
        days = int(n) if n.isdigit() else 1
        shift = dt.timedelta(days=days if where in ("after", "nach") else -days)
        return _dated(base.date + shift, None)
    names = _weekday_names(language)
    relative = _RELATIVE.get(language, {})
    if text in relative:
        date = today + dt.timedelta(days=relative[text])
        return DayValue(WEEKDAYS[date.weekday()], date, explicit=True)
    ahead = _days_ahead(text, language)
    if ahead is not None:
        date = today + dt.timedelta(days=ahead)
        return DayValue(WEEKDAYS[date.weekday()], date, explicit=True)
    holiday = _HOLIDAYS.get(language, {}).get(text)
    if holiday is not None:
        return _dated(_next_date(today, *holiday), None)
    for suffix in _NEXT_WEEK.get(language, ()):
        if text.endswith(suffix) and text[: -len(suffix)] in names:
            day = names[text[: -len(suffix)]]
            monday = today - dt.timedelta(days=today.weekday()) + dt.timedelta(days=7)
            return DayValue(day, monday + dt.timedelta(days=WEEKDAYS.index(day)), explicit=True)
    for prefix in _NEXT_WEEK_FIRST.get(language, ()):
        if text.startswith(prefix) and text[len(prefix) :] in names:
            day = names[text[len(prefix) :]]
            monday = today - dt.timedelta(days=today.weekday()) + dt.timedelta(days=7)
            return DayValue(day, monday + dt.timedelta(days=WEEKDAYS.index(day)), explicit=True)
    for lead, tail in _WEEK_ON.get(language, ()):
        core = text[len(lead) : len(text) - len(tail)] if len(text) > len(lead + tail) else ""
        if text.startswith(lead) and text.endswith(tail) and core in names:
            day = names[core]
            date = _next_weekday(today, day) + dt.timedelta(days=7)  # on a Friday: today+7
            return DayValue(day, date, explicit=True)
    for lead, tail in _AFTER_NEXT.get(language, ()):
        core = text[len(lead) : len(text) - len(tail)] if len(text) > len(lead + tail) else ""
        if text.startswith(lead) and text.endswith(tail) and core in names:
            day = names[core]
            date = _next_weekday(today, day, skip_today=True) + dt.timedelta(days=7)
            return DayValue(day, date, explicit=True)
    for prefix in _NEXT.get(language, ()):
        if text.startswith(prefix) and text[len(prefix) :] in names:
            day = names[text[len(prefix) :]]
            return DayValue(day, _next_weekday(today, day, skip_today=True), explicit=True)
    if text in names:
        return DayValue(names[text], _next_weekday(today, names[text]))
    plural = text[:-1] if text.endswith("s") else None
    if plural and plural in names:
        return DayValue(names[plural], _next_weekday(today, names[plural]))
    return _date(text, language, today, led)


def _days_ahead(text: str, language: str) -> int | None:
    """Days from today a counted phrase names ("a week from today" -> 7), or None. Without
    "in" it needs what it counts from ("a week today"; "2 days" alone is no day)."""
    found = _IN.get(language, re.compile("$^")).match(text)
    if language == "en" and found is not None:
        amount, unit, base = found.groups()
        if not text.startswith("in ") and base is None:
            return None
        n = 1 if amount in ("a", "an", "one") else int(amount)
        ahead = n * _UNIT_DAYS[unit] + (1 if base == "tomorrow" else 0)
        return ahead if 0 < ahead <= 62 else None
    if language == "de" and found is not None:
        base, amount, unit = found.groups()
        n = 1 if amount in ("einer", "einem") else int(amount)
        # "in acht Tagen" is a week, "in vierzehn Tagen" two
        ahead = 7 if (n, unit) == (8, "tagen") else n * _UNIT_DAYS_DE[unit]
        ahead += 1 if base == "morgen" else 0
        return ahead if 0 < ahead <= 62 else None
    week = _TODAY_WEEK.get(language)
    found = week.match(text) if week is not None else None
    if found is not None:
        base, unit = found.groups()
        return _UNIT_DAYS[unit] + (1 if base == "tomorrow" else 0)
    return None


def _date(text: str, language: str, today: dt.date, led: bool = False) -> DayValue | None:
    words = text.split()
    names = _weekday_names(language)
    weekday = None
    if words and words[0] in names:  # "friday the 4th", "freitag den 4"
        weekday = names[words[0]]
        words = words[1:]
        if words and words[0] in ("the", "den", "dem", "am", "der"):  # "samstag, der 19."
            words = words[1:]
    if not words:
        return None
    if words[0] in ("the", "den"):
        words = words[1:]
        led = True
    day = month = None
    if len(words) == 1:
        day = _ordinal(words[0], language, bare=weekday is not None or led)
    elif len(words) == 2:
        a, b = words
        if _month(a, language):  # "december 3rd"
            month, day = _month(a, language), _ordinal(b, language, bare=True)
        elif _month(b, language):  # "3 december", "3rd december"
            day, month = _ordinal(a, language, bare=True), _month(b, language)
    elif len(words) == 3 and words[1] == "of" and _month(words[2], language):
        day, month = _ordinal(words[0], language, bare=True), _month(words[2], language)
    if day is None:
        return None
    date = _next_date(today, month, day) if month else _next_monthday(today, day)
    if date is None:
        return None
    return _dated(date, weekday)


def _dated(date: dt.date | None, weekday: str | None) -> DayValue | None:
    if date is None:
        return None
    actual = WEEKDAYS[date.weekday()]
    if weekday is not None and weekday != actual:
        return None
    return DayValue(actual, date, explicit=True)


def _ordinal(word: str, language: str, bare: bool) -> int | None:
    """A day of the month: "3rd"; a bare "3" only after "on the", "am", a weekday or with a
    month ("3 december"): alone it is a count or a time far more often than a date."""
    found = _ORDINAL.match(word)
    if found is None:
        return None
    if word.isdigit() and not bare:
        return None
    n = int(found.group(1))
    return n if 1 <= n <= 31 else None


def _month(word: str, language: str) -> int | None:
    months = _MONTHS.get(language, ())
    if word in months:
        return months.index(word) + 1
    return _MONTH_ALIASES.get(language, {}).get(word)


def _next_weekday(today: dt.date, day: str, skip_today: bool = False) -> dt.date:
    ahead = (WEEKDAYS.index(day) - today.weekday()) % 7
    if ahead == 0 and skip_today:
        ahead = 7
    return today + dt.timedelta(days=ahead)


def _next_date(today: dt.date, month: int, day: int) -> dt.date | None:
    for year in (today.year, today.year + 1):
        try:
            date = dt.date(year, month, day)
        except ValueError:
            return None
        if date >= today:
            return date
    return None


def _next_monthday(today: dt.date, day: int) -> dt.date | None:
    year, month = today.year, today.month
    for _ in range(3):
        try:
            date = dt.date(year, month, day)
        except ValueError:
            date = None
        if date is not None and date >= today:
            return date
        month += 1
        if month > 12:
            year, month = year + 1, 1
    return None


_NAMES_CACHE: dict[str, dict[str, str]] = {}


def _weekday_names(language: str) -> dict[str, str]:
    names = _NAMES_CACHE.get(language)
    if names is None:
        names = {n.lower(): WEEKDAYS[i] for i, n in enumerate(WEEKDAY_NAMES.get(language, ()))}
        names.update({day: day for day in WEEKDAYS} if language == "en" else {})
        names.update(_DAY_ALIASES.get(language, {}))
        names = _NAMES_CACHE[language] = {k.replace("ß", "ss"): v for k, v in names.items()}
    return names


def day_words(language: str) -> tuple[frozenset[str], frozenset[str]]:
    """(words a day phrase may start with, words it may contain); "#" is any number."""
    names = set(_weekday_names(language))
    names |= {n + "s" for n in names}
    months = set(_MONTHS.get(language, ())) | set(_MONTH_ALIASES.get(language, {}))
    relative = {w for p in _RELATIVE.get(language, {}) for w in p.split()}
    holidays = {w for p in _HOLIDAYS.get(language, {}) for w in p.split()}
    leads = {w for p in (*_LEAD.get(language, ()), *_NEXT.get(language, ())) for w in p.split()}
    first = (
        names
        | months
        | {p.split()[0] for p in _RELATIVE.get(language, {})}
        | {p.split()[0] for p in _HOLIDAYS.get(language, {})}
        | set(_FIRST_EXTRA.get(language, ()))
    )
    first |= {"#"}
    every = first | relative | holidays | leads | {"of", "week", "woche", "#"}
    every |= {*_UNIT_DAYS, *_UNIT_DAYS_DE, "time", "from", "now", "one", "einer", "einem", "s"}
    every |= {"days", "day", "before", "after", "tag", "tage", "vor", "nach", "a", "einen"}
    every |= {w for p in _NEXT_WEEK.get(language, ()) for w in p.split()}
    every |= {w for pair in _WEEK_ON.get(language, ()) for p in pair for w in p.split()}
    every |= {w for pair in _AFTER_NEXT.get(language, ()) for p in pair for w in p.split()}
    first |= {p.split()[0] for p, _ in _AFTER_NEXT.get(language, ()) if p}
    return frozenset(first), frozenset(every)


def speak_day(day: str, language: str) -> str:
    """Weekday name for prompts: "friday" -> "Friday" / "Freitag"."""
    names = WEEKDAY_NAMES.get(language, WEEKDAY_NAMES["en"])
    return names[WEEKDAYS.index(str(day))]


def month_name(month: int, language: str) -> str:
    """The written name of ``month`` (1-12): "December", "Dezember"."""
    return _MONTHS.get(language, _MONTHS["en"])[month - 1].capitalize()


def speak_date(date: dt.date | str, language: str) -> str:
    """A date for prompts, in words: "December fourth" / "vierten Dezember" (after "dem")."""
    from unicode_rbnf import FormatPurpose

    from voicebot.nlu.slot_time import rbnf

    if isinstance(date, str):
        date = dt.date.fromisoformat(date)
    ordinals = rbnf(language).format_number(date.day, purpose=FormatPurpose.ORDINAL)
    month = month_name(date.month, language)
    if language == "de":
        day = ordinals.text_by_ruleset.get("spellout-ordinal-n", ordinals.text)
        return f"{day} {month}".replace("-", " ")
    return f"{month} {ordinals.text}".replace("-", " ")
