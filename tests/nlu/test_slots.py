"""Slot types: parsing ASR-style text in English and German, speaking values."""

from __future__ import annotations

import datetime as dt

import pytest

from voicebot.nlu.slots import (
    DaySlot,
    DigitsSlot,
    IntegerSlot,
    ListSlot,
    TimeSlot,
    WildcardSlot,
    speak_day,
    speak_digits,
    speak_integer,
    speak_time,
)

WEDNESDAY = dt.date(2025, 6, 4)


@pytest.mark.parametrize(
    ("text", "lang", "expected"),
    [
        ("4", "en", 4),
        ("four", "en", 4),
        ("Twenty", "en", 20),
        ("one", "en", 1),
        ("two", "en", 2),
        ("vier", "de", 4),
        ("zwei", "de", 2),
        ("eine", "de", 1),
        ("zu viert", "de", 4),
        (7, "en", 7),
        ("21", "en", None),
        ("0", "en", None),
        ("many", "en", None),
        ("four people", "en", None),
    ],
)
def test_integer(text: str | int, lang: str, expected: int | None) -> None:
    assert IntegerSlot(min=1, max=20).parse(text, lang) == expected


@pytest.mark.parametrize(
    ("text", "lang", "expected"),
    [
        ("four two one three", "en", "4213"),
        ("4 2 1 3", "en", "4213"),
        ("42 13", "en", "4213"),
        ("forty two thirteen", "en", "4213"),
        ("4213", "en", "4213"),
        ("four oh two one", "en", "4021"),
        ("double four two one", "en", "4421"),
        ("zero four two one", "en", "0421"),
        ("vier zwei eins drei", "de", "4213"),
        ("null vier zwei eins", "de", "0421"),
        ("zweiundvierzig dreizehn", "de", "4213"),
        ("four two", "en", None),  # too short
        ("4 2 1 3 5 6 7 8 9", "en", None),  # too long
        ("four two one apples", "en", None),
    ],
)
def test_digits(text: str, lang: str, expected: str | None) -> None:
    assert DigitsSlot(min_len=4, max_len=8).parse(text, lang) == expected


@pytest.mark.parametrize(
    ("text", "lang", "expected"),
    [
        ("Friday", "en", "friday"),
        ("Fridays", "en", "friday"),
        ("next Monday", "en", "monday"),
        ("today", "en", "wednesday"),
        ("tonight", "en", "wednesday"),
        ("tomorrow", "en", "thursday"),
        ("the day after tomorrow", "en", "friday"),
        ("Freitag", "de", "friday"),
        ("Sonnabend", "de", "saturday"),
        ("heute", "de", "wednesday"),
        ("morgen", "de", "thursday"),
        ("übermorgen", "de", "friday"),
        ("nächsten Dienstag", "de", "tuesday"),
        ("sonntags", "de", "sunday"),
        ("friday", "de", None),
        ("someday", "en", None),
        ("morgens", "de", None),
    ],
)
def test_day(text: str, lang: str, expected: str | None) -> None:
    assert DaySlot().parse(text, lang, today=WEDNESDAY) == expected


def test_day_relative_words_follow_the_reference_date() -> None:
    sunday = dt.date(2025, 6, 8)
    assert DaySlot().parse("tomorrow", "en", today=sunday) == "monday"
    assert DaySlot().parse("übermorgen", "de", today=sunday) == "tuesday"


EVENING = TimeSlot(prefer="evening")
PLAIN = TimeSlot()


@pytest.mark.parametrize(
    ("text", "lang", "expected"),
    [
        ("half past seven in the evening", "en", "19:30"),
        ("half past 7 in the evening", "en", "19:30"),
        ("eight p m", "en", "20:00"),
        ("8 p.m.", "en", "20:00"),
        ("8pm", "en", "20:00"),
        ("7.30 pm", "en", "19:30"),
        ("19:30", "en", "19:30"),
        ("seven thirty pm", "en", "19:30"),
        ("quarter to eight", "en", "07:45"),
        ("a quarter past seven", "en", "07:15"),
        ("twenty past seven in the evening", "en", "19:20"),
        ("ten to nine pm", "en", "20:50"),
        ("nine thirty a.m.", "en", "09:30"),
        ("eight o'clock", "en", "08:00"),
        ("seven oh five p m", "en", "19:05"),
        ("noon", "en", "12:00"),
        ("midnight", "en", "00:00"),
        ("12 am", "en", "00:00"),
        ("12 pm", "en", "12:00"),
        ("one thirty pm", "en", "13:30"),
        ("11 at night", "en", "23:00"),
        ("2 at night", "en", "02:00"),
        ("nineteen hundred hours", "en", "19:00"),
        ("eighteen thirty hours", "en", "18:30"),
        ("0730 hours", "en", "07:30"),  # the 24-hour clock, literally
        ("two hours", "en", None),  # no time phrase (a duration)
        ("halb acht", "de", "07:30"),
        ("viertel nach sieben", "de", "07:15"),
        ("viertel vor acht", "de", "07:45"),
        ("dreiviertel acht", "de", "07:45"),
        ("acht Uhr abends", "de", "20:00"),
        ("zwanzig Uhr dreißig", "de", "20:30"),
        ("19.30 Uhr", "de", "19:30"),
        ("fünf nach halb acht", "de", "07:35"),
        ("zehn vor acht", "de", "07:50"),
        ("ein Uhr nachts", "de", "01:00"),
        ("halb eins", "de", "12:30"),
        ("zwölf Uhr mittags", "de", "12:00"),
        ("um ein Uhr mittags", "de", None),
        ("ein Uhr mittags", "de", "13:00"),
        ("Mitternacht", "de", "00:00"),
        ("half past", "en", None),
        ("25:00", "en", None),
        ("seven forty people", "en", None),
        ("halb acht", "en", None),
        ("13 am", "en", None),
        ("7:75", "en", None),
    ],
)
def test_time_without_preference(text: str, lang: str, expected: str | None) -> None:
    assert PLAIN.parse(text, lang) == expected


@pytest.mark.parametrize(
    ("text", "lang", "expected"),
    [
        ("halb acht", "de", "19:30"),
        ("um acht Uhr abends", "de", None),
        ("acht Uhr", "de", "20:00"),
        ("8", "en", "20:00"),
        ("half past 7", "en", "19:30"),
        ("quarter to eight", "en", "19:45"),
        ("8 am", "en", "08:00"),
        ("8 in the morning", "en", "08:00"),
        ("12", "en", "12:00"),
        ("halb acht morgens", "de", "07:30"),
        ("19:30", "en", "19:30"),
        ("viertel nach sieben", "de", "19:15"),
    ],
)
def test_time_prefer_evening(text: str, lang: str, expected: str | None) -> None:
    assert EVENING.parse(text, lang) == expected


def test_list_synonyms_per_language() -> None:
    sizes = ListSlot(
        values={
            "small": {"en": ["little", "tiny"], "de": ["klein"]},
            "large": {"en": ["big"], "de": ["groß", "gross"]},
        }
    )
    assert sizes.parse("Tiny", "en") == "small"
    assert sizes.parse("large", "en") == "large"  # the value itself always counts
    assert sizes.parse("Groß", "de") == "large"
    assert sizes.parse("klein", "en") is None
    assert sizes.speak("large", "de") == "groß"


def test_wildcard_bound() -> None:
    note = WildcardSlot(max_words=3)
    assert note.parse("Window seat, please", "en") == "window seat please"
    assert note.parse("a table by the window", "en") is None
    assert note.parse("", "en") is None


@pytest.mark.parametrize(
    ("value", "lang", "spoken"),
    [
        ("19:30", "en", "half past seven"),
        ("20:00", "en", "eight p m"),
        ("08:15", "en", "quarter past eight"),
        ("19:45", "en", "quarter to eight"),
        ("19:05", "en", "seven oh five p m"),
        ("12:00", "en", "noon"),
        ("19:30", "de", "halb acht"),
        ("20:00", "de", "acht Uhr abends"),
        ("13:00", "de", "ein Uhr"),
        ("19:15", "de", "viertel nach sieben"),
        ("19:20", "de", "neunzehn Uhr zwanzig"),
        ("00:30", "de", "halb eins"),
    ],
)
def test_speak_time(value: str, lang: str, spoken: str) -> None:
    assert speak_time(value, lang) == spoken


def test_spoken_times_parse_back() -> None:
    for value in ("19:30", "20:00", "19:45", "19:05", "18:15", "21:00"):
        assert EVENING.parse(speak_time(value, "en"), "en") == value
        assert EVENING.parse(speak_time(value, "de"), "de") == value


def test_speak_other_types() -> None:
    assert speak_integer(4, "en") == "four"
    assert speak_integer(21, "de") == "einundzwanzig"
    assert speak_digits("4213", "en") == "four two one three"
    assert speak_digits("4213", "de") == "vier zwei eins drei"
    assert speak_day("friday", "en") == "Friday"
    assert speak_day("friday", "de") == "Freitag"
    assert IntegerSlot(min=1, max=20).speak(12, "en") == "twelve"
