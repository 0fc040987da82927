"""Changes relative to the values held: "an hour later" (``voicebot/nlu/relative.py``)."""

from __future__ import annotations

import datetime as dt

import pytest

from voicebot.nlu.relative import resolve
from voicebot.nlu.slot_day import DayValue
from voicebot.nlu.slot_time import TimeValue

HELD = {
    "party_size": 4,
    "day": DayValue("sunday", dt.date(2026, 12, 6)),
    "time": TimeValue("19:30"),
}


@pytest.mark.parametrize(
    ("language", "text", "resolved", "changed"),
    [
        ("en", "Could we make it an hour later?", "Could we make it 20:30?", ("time",)),
        ("en", "Half an hour earlier, please.", "19:00, please.", ("time",)),
        ("en", "maybe two hours later", "maybe 21:30", ("time",)),
        ("en", "15 minutes later", "19:45", ("time",)),
        # any amount the bot can say in words, as it says them
        ("en", "forty-five minutes later", "20:15", ("time",)),
        ("en", "could we do twenty five minutes earlier", "could we do 19:05", ("time",)),
        ("en", "eleven more people", "15 people", ("party_size",)),
        ("de", "vierzig Minuten später", "20:10", ("time",)),
        ("de", "sieben Personen mehr", "11 Personen", ("party_size",)),
        ("en", "and our earlier would suit a better", "18:30 would suit a better", ("time",)),
        ("en", "Push it back an hour.", "make it 20:30.", ("time",)),
        ("en", "could we push it back fifteen minutes?", "could we make it 19:45?", ("time",)),
        ("en", "can you add one more?", "can you make it 5 people?", ("party_size",)),
        (
            "en",
            "make it two fewer? one dropped out",
            "make it 2 people? one dropped out",
            ("party_size",),
        ),
        ("en", "bring it forward an hour", "make it 18:30", ("time",)),
        (
            "en",
            "One more person, my sister is coming.",
            "5 people, my sister is coming.",
            ("party_size",),
        ),
        ("en", "two fewer people", "2 people", ("party_size",)),
        (
            "en",
            "Actually the day after, if possible.",
            "Actually Monday the 7th of December, if possible.",
            ("day",),
        ),
        ("en", "a week later?", "Sunday the 13th of December?", ("day",)),
        ("en", "the day before", "Saturday the 5th of December", ("day",)),
        ("en", "can we push it a day?", "can we make it Monday the 7th of December?", ("day",)),
        ("en", "move it back two days", "make it Tuesday the 8th of December", ("day",)),
        (
            "en",
            "could you move it a day earlier?",
            "could you make it Saturday the 5th of December?",
            ("day",),
        ),
        ("en", "I want to add one more.", "I want to make it 5 people.", ("party_size",)),
        ("en", "move it two days later", "make it Tuesday the 8th of December", ("day",)),
        ("en", "the Saturday after", "Saturday the 12th of December", ("day",)),
        ("de", "Geht es eine Stunde später?", "Geht es 20:30?", ("time",)),
        ("de", "eine halbe Stunde früher bitte", "19:00 bitte", ("time",)),
        ("de", "Eine Person mehr.", "5 Personen.", ("party_size",)),
        ("de", "noch eine Person dazu", "5 Personen", ("party_size",)),
        ("de", "zwei Personen weniger", "2 Personen", ("party_size",)),
        ("de", "Am Tag danach.", "Montag, den 7. Dezember.", ("day",)),
        # the weekday after the day held: a week on when it is the same weekday
        ("en", "no, the Sunday after", "no, Sunday the 13th of December", ("day",)),
        ("en", "the Friday after that", "Friday the 11th of December", ("day",)),
        ("de", "den Sonntag danach", "Sonntag, den 13. Dezember", ("day",)),
        ("de", "am darauffolgenden Samstag", "Samstag, den 12. Dezember", ("day",)),
    ],
)
def test_a_relative_phrase_becomes_the_value_it_comes_to(
    language: str, text: str, resolved: str, changed: tuple[str, ...]
) -> None:
    got = resolve(text, language, HELD)
    assert (got.text, got.changed) == (resolved, changed)


@pytest.mark.parametrize(
    "text",
    [
        "the day after tomorrow",  # a day of its own, not a change
        "one more thing",  # no people
        "a bit later",  # no amount: the bot asks
        "I'll call back later",
        "ten minutes after nine",  # a clock time
        "just me plus one",  # two people, not one more
        "can I ask one more?",
        "an hour later's fine",  # (the rewrite keeps to whole words)
        "move it two days before christmas",  # a day of its own (``slot_day``)
        "the Saturday after next",
    ],
)
def test_what_is_no_relative_change_stays_as_said(text: str) -> None:
    assert resolve(text, "en", HELD).text == text


@pytest.mark.parametrize(
    ("language", "text"),
    [
        ("de", "so gegen acht mehr oder weniger"),  # about eight, no eight more
        ("de", "sechs oder sieben mehr"),  # which? the bot asks
        ("de", "gegen acht mehr"),
        ("en", "six or seven more people"),
        ("en", "eight more or less"),
    ],
)
def test_a_vague_amount_is_no_count_change(language: str, text: str) -> None:
    assert resolve(text, language, HELD).text == text


def test_nothing_held_nothing_resolved() -> None:
    assert resolve("an hour later", "en", {"time": None}).text == "an hour later"
    assert resolve("one more person", "en", {}).text == "one more person"


def test_a_change_past_midnight_or_below_one_person_stays() -> None:
    late = {"time": TimeValue("23:30"), "party_size": 1}
    assert resolve("an hour later", "en", late).text == "an hour later"
    assert resolve("one less person", "en", late).text == "one less person"


def test_unsure_words_map_onto_the_value_they_gave() -> None:
    got = resolve("yes an hour later please", "en", HELD, unsure=[2, 4])
    assert got.text == "yes 20:30 please"
    assert got.unsure == (1, 2)  # "hour" gave the value; "please" moved left
    assert got.values == "20:30"


def test_a_phrase_never_runs_across_a_pause() -> None:
    assert resolve("gegen 8, mehr oder weniger", "de", HELD).text == "gegen 8, mehr oder weniger"
    assert resolve("Wir sind vier, mehr nicht", "de", HELD).text == "Wir sind vier, mehr nicht"
