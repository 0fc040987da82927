"""Slot types as a person on the phone hears them: times, days and dates, counts (en, de)."""

from __future__ import annotations

import datetime as dt
import pickle

import pytest

from voicebot.nlu.normalize import normalize
from voicebot.nlu.slot_count import parse_count
from voicebot.nlu.slot_day import DayValue, parse_day, speak_date
from voicebot.nlu.slot_time import TimeValue, parse_time, pick_reading
from voicebot.nlu.slots import CountSlot, DaySlot, TimeSlot

TUESDAY = dt.date(2026, 12, 1)


def time_of(text: str, lang: str = "en", prefer: str | None = "evening") -> TimeValue | None:
    return parse_time(normalize(text, lang), lang, prefer)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "lang", "expected"),
    [
        ("quarter to nine", "en", "20:45"),
        ("a quarter past seven", "en", "19:15"),
        ("half eight", "en", "20:30"),  # British: half past eight
        ("half past seven", "en", "19:30"),
        ("seven thirty", "en", "19:30"),
        ("noon", "en", "12:00"),
        ("midnight", "en", "00:00"),
        ("eight-ish", "en", "20:00"),
        ("8ish", "en", "20:00"),
        ("sevenish", "en", "19:00"),
        ("round about seven", "en", "19:00"),
        ("8 pm", "en", "20:00"),
        ("eight p.m.", "en", "20:00"),
        ("8 p m m", "en", "20:00"),  # "p m" misrecognised with an extra letter
        ("20:00", "en", "20:00"),
        ("7 in the morning", "en", "07:00"),
        ("1", "en", "13:00"),
        ("around eight", "en", "20:00"),
        ("ten past seven", "en", "19:10"),
        ("nineteen hundred", "en", "19:00"),
        ("twenty five to eight", "en", "19:35"),
        ("Viertel vor neun", "de", "20:45"),
        ("halb acht", "de", "19:30"),
        ("viertel nach sieben", "de", "19:15"),
        ("dreiviertel acht", "de", "19:45"),
        ("acht Uhr abends", "de", "20:00"),
        ("20 Uhr", "de", "20:00"),
        ("gegen acht", "de", "20:00"),
        ("19:30", "de", "19:30"),
        ("sieben Uhr dreißig", "de", "19:30"),
        ("Mitternacht", "de", "00:00"),
        ("8 in the night", "en", "20:00"),
        ("half past 9 tonight", "en", "21:30"),
        ("half past 4 this evening", "en", "16:30"),
    ],
)
def test_times(text: str, lang: str, expected: str) -> None:
    assert time_of(text, lang) == expected


@pytest.mark.parametrize(
    "text",
    [
        "for four",
        "a table",
        "25 past",
        "13 am",
        "half",
        "tomorrow",
        "one tonight",  # "a table for one tonight": no evening hour
    ],
)
def test_not_times(text: str) -> None:
    assert time_of(text) is None


def test_time_readings_approximate_and_repaired() -> None:
    eight = time_of("eight")
    assert eight is not None and eight.readings == ("20:00", "08:00") and not eight.approximate
    assert time_of("eight", prefer="morning") == "08:00"
    ish = time_of("around eight-ish")
    assert ish is not None and ish.approximate
    assert time_of("8 pm") is not None and time_of("8 pm").readings == ("20:00",)  # type: ignore
    heaven = time_of("half past heaven")  # a misheard "seven"
    assert heaven == "19:30" and heaven is not None and heaven.repaired
    assert time_of("heaven") is None  # only where the phrase is clearly a time
    assert time_of("half past date") == "20:30"  # "eight"


def test_pick_reading_by_what_the_flow_knows() -> None:
    morning = time_of("eight", prefer=None)
    assert morning == "08:00"
    assert pick_reading(morning, "12:00", "23:00") == "20:00"  # the restaurant opens at noon
    assert pick_reading(time_of("eleven"), "12:00", "22:00") == "23:00"  # neither: as said
    assert pick_reading("19:30", "12:00", "22:00") == "19:30"  # a plain string is kept


@pytest.mark.parametrize(
    ("text", "lang", "weekday", "date"),
    [
        ("friday", "en", "friday", "2026-12-04"),
        ("Tuesday", "en", "tuesday", "2026-12-01"),
        ("next Friday", "en", "friday", "2026-12-04"),
        ("next Tuesday", "en", "tuesday", "2026-12-08"),
        ("this Saturday", "en", "saturday", "2026-12-05"),
        ("the day after tomorrow", "en", "thursday", "2026-12-03"),
        ("tomorrow", "en", "wednesday", "2026-12-02"),
        ("tonight", "en", "tuesday", "2026-12-01"),
        ("December 3rd", "en", "thursday", "2026-12-03"),
        ("the 3rd", "en", "thursday", "2026-12-03"),
        ("the third of December", "en", "thursday", "2026-12-03"),
        ("on the 19th", "en", "saturday", "2026-12-19"),
        ("Friday the 18th", "en", "friday", "2026-12-18"),
        ("friday next week", "en", "friday", "2026-12-11"),
        ("a week on friday", "en", "friday", "2026-12-11"),
        ("friday week", "en", "friday", "2026-12-11"),
        ("next week friday", "en", "friday", "2026-12-11"),
        ("nächste woche samstag", "de", "saturday", "2026-12-12"),
        ("nächste woche am samstag", "de", "saturday", "2026-12-12"),
        ("Samstag, der Neunzehnte", "de", "saturday", "2026-12-19"),
        ("the Saturday after next", "en", "saturday", "2026-12-12"),
        ("übernächsten Freitag", "de", "friday", "2026-12-11"),
        ("Samstag in acht Tagen", "de", "saturday", "2026-12-12"),  # a week, said as 8 days
        ("two days before Christmas", "en", "wednesday", "2026-12-23"),
        ("zwei Tage nach Heiligabend", "de", "saturday", "2026-12-26"),
        ("tonight's", "en", "tuesday", "2026-12-01"),
        ("next week on friday", "en", "friday", "2026-12-11"),
        ("tuesday week", "en", "tuesday", "2026-12-08"),  # said on a Tuesday: a week today
        ("donnerstag in einer woche", "de", "thursday", "2026-12-10"),
        ("Christmas Eve", "en", "thursday", "2026-12-24"),
        ("the 2nd of January", "en", "saturday", "2027-01-02"),  # past this year: next year's
        ("übermorgen", "de", "thursday", "2026-12-03"),
        ("nächsten Freitag", "de", "friday", "2026-12-04"),
        ("am dritten Dezember", "de", "thursday", "2026-12-03"),
        ("Heiligabend", "de", "thursday", "2026-12-24"),
        ("morgen abend", "de", "wednesday", "2026-12-02"),
        ("Sonnabend", "de", "saturday", "2026-12-05"),
        ("freitags", "de", "friday", "2026-12-04"),
        ("a week from today", "en", "tuesday", "2026-12-08"),
        ("a week today", "en", "tuesday", "2026-12-08"),
        ("in three days' time", "en", "friday", "2026-12-04"),
        ("tomorrow week", "en", "wednesday", "2026-12-09"),
        ("in two weeks", "en", "tuesday", "2026-12-15"),
        ("heute in einer Woche", "de", "tuesday", "2026-12-08"),
        ("in acht Tagen", "de", "tuesday", "2026-12-08"),  # a week, as German says it
        ("in drei Tagen", "de", "friday", "2026-12-04"),
        ("übermorgen Abend", "de", "thursday", "2026-12-03"),
    ],
)
def test_days_and_dates(text: str, lang: str, weekday: str, date: str) -> None:
    value = parse_day(normalize(text, lang), lang, TUESDAY)
    assert value == weekday
    assert value is not None and value.date == dt.date.fromisoformat(date)


@pytest.mark.parametrize(
    "text", ["friday the 5th", "the 32nd", "tuesday", "3", "a week", "two days", "for a week"]
)
def test_not_days(text: str) -> None:
    if text == "tuesday":  # a weekday is a day; its date is today
        assert parse_day(text, "en", TUESDAY).date == TUESDAY  # type: ignore[union-attr]
        return
    assert parse_day(normalize(text, "en"), "en", TUESDAY) is None  # the 5th is a Saturday


def test_day_value_is_a_weekday_that_knows_its_date() -> None:
    value = DayValue("friday", dt.date(2026, 12, 4), explicit=True)
    assert value == "friday" and {"day": value} == {"day": "friday"}
    again = pickle.loads(pickle.dumps(value))
    assert again == "friday" and again.date == value.date and again.explicit
    assert parse_day("tomorrow", "en", TUESDAY).explicit  # type: ignore[union-attr]
    assert not parse_day("friday", "en", TUESDAY).explicit  # type: ignore[union-attr]
    assert DaySlot().parse("the 3rd", "en", today=TUESDAY) == "thursday"
    assert speak_date("2026-12-04", "en") == "December fourth"
    assert speak_date(dt.date(2026, 12, 21), "en") == "December twenty first"
    assert speak_date("2026-12-04", "de") == "vierten Dezember"


@pytest.mark.parametrize(
    ("text", "lang", "expected"),
    [
        ("six of us", "en", 6),
        ("just me", "en", 1),
        ("me and my wife", "en", 2),
        ("my wife and I", "en", 2),
        ("a couple of us", "en", 2),
        ("the two of us", "en", 2),
        ("myself and three friends", "en", 4),
        ("two adults and two kids", "en", 4),
        ("two adults, two kids", "en", 4),
        ("two adults and two little ones", "en", 4),
        ("zwei Erwachsene, zwei Kinder", "de", 4),
        ("a family of five", "en", 5),
        ("four people", "en", 4),
        ("we are six", "en", 6),
        ("it's me, my husband and our three kids", "en", 5),
        ("4", "en", 4),
        ("zu zweit", "de", 2),
        ("ein halbes Dutzend", "de", 6),
        ("zwoa", "de", 2),  # the southern "zwei"
        ("wir sind zu dritt", "de", 3),
        ("ich und meine Frau", "de", 2),
        ("mein Mann und ich", "de", 2),
        ("zwei Erwachsene und zwei Kinder", "de", 4),
        ("nur ich", "de", 1),
        ("vier Personen", "de", 4),
        ("wir beide", "de", 2),
        ("so that's five", "en", 5),
        ("three grown-ups", "en", 3),
        ("around ten folks", "en", 10),
        ("about eight people", "en", 8),
        ("two couples", "en", 4),  # a couple is two people
        ("zwei Ehepaare", "de", 4),
        ("wir sind zwei Pärchen", "de", 4),
        ("me and two clients", "en", 3),
        ("me plus two", "en", 3),
        ("zu viert plus ein Baby", "de", 5),
        ("wir sind doch fünf", "de", 5),
        ("we're three now", "en", 3),
        # a number word the recogniser misheard, before a people noun
        ("free kids", "en", 3),
        ("sick of us", "en", 6),
        # the group named, then who is in it
        ("just a couple, me and the missus", "en", 2),
        ("the three of us, me, my wife and my son", "en", 3),
        ("4 of us and 4 friends", "en", 8),  # numbered members are more people
        ("we are a couple and two friends", "en", 4),
        ("four people, four people", "en", 4),  # said twice (a bad line), not eight
        ("four adults and a toddler", "en", 5),
        ("we're six with grandma", "en", 6),  # grandma is one of the six
        ("six of us with my wife", "en", 6),
        ("four adults with two kids", "en", 6),  # numbered: more people
        ("me, my husband, my sister and her three kids", "en", 6),
        ("meine Frau, ich und die zwei Kleinen", "de", 4),
        ("wir sind sechs mit Oma", "de", 6),
        ("mir sind drü Persone", "de", 3),  # Swiss
        ("mir san zu viert", "de", 4),  # Bavarian
        ("just the one", "en", 1),
        ("only the one", "en", 1),
    ],
)
def test_counts(text: str, lang: str, expected: int) -> None:
    assert parse_count(normalize(text, lang), lang) == expected


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("a few of us", "en"),
        ("i", "en"),
        ("me", "en"),
        ("my wife", "en"),
        ("some friends", "en"),
        ("ein paar", "de"),
        ("den elften", "de"),  # a date: "Freitag nächste Woche, also den elften"
        ("ich", "de"),
        ("about eight", "en"),  # "make it for about eight": a time
        ("around 8", "en"),
        ("three people and eight", "en"),  # "... and eight o'clock"
        ("gegen acht", "de"),
        ("seven and four of us", "en"),  # "half seven, and four of us": the 7 is a time
        ("neun und wir sind dann zu viert", "de"),
        ("for people with allergies", "en"),  # no four ("for people" alone is one)
        ("free", "en"),
        ("a little", "en"),  # "a little later": "little" counts only before "ones"
        ("2 little", "en"),
        ("2 ones", "en"),  # "ones" counts only after a word like "little"
        ("it's the only one", "en"),  # "one" as a pronoun
        ("einen kleinen", "de"),  # "einen kleinen Tisch": "Kleinen" counts after digits only
        ("the one", "en"),
        # a total and a part of it, or a number said again: no sum (the bot asks)
        ("six people, two kids", "en"),
        ("2 people, 7 people", "en"),
        ("vier Personen, zwei Personen", "de"),
    ],
)
def test_not_counts(text: str, lang: str) -> None:
    assert parse_count(normalize(text, lang), lang) is None


def test_count_slot_range_and_words() -> None:
    slot = CountSlot(min=1, max=20)
    assert slot.parse("a couple of us", "en") == 2
    assert slot.parse("thirty of us", "en") is None  # above max
    assert slot.parse("0", "en") is None
    assert not slot.open  # a closed phrase set: ranks like a finite slot
    assert "me" in (slot.first_words("en") or set()) and "#" in (slot.words("en") or set())
    assert TimeSlot().cue_words("en") >= {"at", "around"}


def test_a_bare_german_article_is_no_count_and_no_hour() -> None:
    # "das ist ein Freitag"; "ein Uhr" and "eine Person" still are
    assert CountSlot().parse("ein", "de") is None
    assert TimeSlot().parse("ein", "de") is None
    assert CountSlot().parse("eine Person", "de") == 1
    assert TimeSlot(prefer="evening").parse("ein Uhr", "de") == "13:00"
