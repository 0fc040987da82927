"""Normalisation (``voicebot/nlu/normalize.py``): ASR text and template literals made comparable."""

from __future__ import annotations

import pytest

from voicebot.nlu.normalize import normalize


@pytest.mark.parametrize(
    ("text", "lang", "expected"),
    [
        ("For 4 people on Friday at half past 7.", "en", "for 4 people on friday at half past 7"),
        ("at 8 p.m.", "en", "at 8 pm"),
        ("Eight P.M.", "en", "8 pm"),
        ("8pm", "en", "8 pm"),
        ("7.30 pm", "en", "7:30 pm"),
        ("I I want uh a table for, um, four people", "en", "i want a table for 4 people"),
        ("I w- want to book", "en", "i want to book"),
        ("What's at eight o'clock?", "en", "whats at 8 oclock"),
        ("a table for two", "en", "a table for 2"),
        ("no one", "en", "no one"),
        ("order 4,213", "en", "order 4213"),
        (
            "Ich möchte einen Tisch für vier Personen am Freitag um halb acht reservieren.",
            "de",
            "ich möchte einen tisch für 4 personen am freitag um halb 8 reservieren",
        ),
        ("Ähm, für zwei Personen, bitte.", "de", "für 2 personen bitte"),
        ("um 19.30 Uhr", "de", "um 19:30 uhr"),
        ("Straße", "de", "strasse"),
        ("um acht", "de", "um 8"),  # "um" is a German word, not a filler
        # a full stop is a pause: no number joins across it; a dot after a digit is none
        ("Nineteen hundred. Seven in the evening.", "en", "1900 7 in the evening"),
        ("at 8 p.m. tomorrow", "en", "at 8 pm tomorrow"),
        ("am 3. Dezember um 8.", "de", "am 3 dezember um 8"),
        ("So um sechse rum, für zwoa.", "de", "so um 6 rum für 2"),  # spoken forms
    ],
)
def test_normalize(text: str, lang: str, expected: str) -> None:
    assert normalize(text, lang) == expected


def test_normalize_unicode_forms_agree() -> None:
    composed, decomposed = "Gr\u00fc\u00df Gott", "Gru\u0308\u00df Gott"
    assert normalize(composed, "de") == normalize(decomposed, "de") == "grüss gott"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("For people, Saturday, same time.", "4 people saturday same time"),
        ("To adults and to children", "2 adults and 2 children"),
        ("a table for to people tonight", "a table for 2 people tonight"),
        ("could I book for the 16th for people at 7?", "could i book for the 16th 4 people at 7"),
        ("Water past six", "quarter past 6"),
        ("order to 8 then", "quarter to 8 then"),
    ],
)
def test_a_misheard_count_or_quarter_is_repaired_where_nothing_else_fits(
    text: str, expected: str
) -> None:
    assert normalize(text, "en") == expected


@pytest.mark.parametrize(
    "text",
    [
        "a table for people with allergies",
        "do you have a menu for kids",
        "I want to talk to people",
        "we'd like to order to go",
        "it's for people who use a wheelchair",
    ],
)
def test_the_words_stay_where_they_are_the_words(text: str) -> None:
    words = normalize(text, "en").split()
    assert "4" not in words and "2" not in words and "quarter" not in words


@pytest.mark.parametrize(
    ("text", "normalized"),
    [
        ("Around one, for lunch.", "around 1 oclock for lunch"),
        ("tomorrow at one", "tomorrow at 1 oclock"),
        ("at one thirty", "at 1 30"),
        ("the one at the window", "the one at the window"),
        ("about one of your tables", "about one of your tables"),
        ("a table for one", "a table for one"),
    ],
)
def test_one_after_a_time_cue_is_the_hour(text: str, normalized: str) -> None:
    assert normalize(text, "en") == normalized


@pytest.mark.parametrize(
    ("text", "normalized"),
    [
        ("Am Samschtig, wenn das goht.", "am samstag wenn das goht"),
        ("für de Friitig", "für de freitag"),
        ("Heut noch, wenn's geht", "heute noch wenns geht"),
    ],
)
def test_regional_spellings_of_days(text: str, normalized: str) -> None:
    assert normalize(text, "de") == normalized
