"""A turn cut into the requests a caller strung together (``voicebot/nlu/clauses.py``)."""

from __future__ import annotations

import pytest

from voicebot.nlu.clauses import clauses, is_question, joined


def _parts(text: str, language: str = "en") -> list[str]:
    words = text.split()
    return [" ".join(words[a:b]) for a, b in clauses(text, language)]


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        (
            "Eight, and can you also tell me if you open on Mondays?",
            ["Eight,", "can you also tell me if you open on Mondays?"],
        ),
        ("Yes please. What time do you close?", ["Yes please.", "What time do you close?"]),
        (
            "Friday at eight and are you open on monday",
            ["Friday at eight", "are you open on monday"],
        ),
        (
            "a table for four, what time do you close",
            ["a table for four,", "what time do you close"],
        ),
        ("Um acht, und haben Sie montags offen?", ["Um acht,", "haben Sie montags offen?"]),
        (
            "Half seven - oh, and is there wheelchair access?",
            ["Half seven", "oh,", "is there wheelchair access?"],
        ),
    ],
)
def test_a_question_strung_onto_an_answer_is_its_own_clause(text: str, parts: list[str]) -> None:
    language = "de" if text.startswith("Um") else "en"
    assert _parts(text, language) == parts


@pytest.mark.parametrize(
    "text",
    [
        "Uh, no, Saturday, not Friday",  # commas inside one answer
        "me and my wife and our two kids",  # no question after the and
        "a table for two and a high chair",
        "",
    ],
)
def test_one_request_stays_whole(text: str) -> None:
    assert clauses(text, "en") == [(0, len(text.split()))]


def test_the_joined_rest_keeps_the_original_word_positions() -> None:
    text = "Eight, and can you tell me your hours?"
    words = text.split()
    rest, kept = joined(words, [clauses(text, "en")[0]])
    assert (rest, kept) == ("Eight,", [0])
    question, kept = joined(words, clauses(text, "en")[1:])
    assert question == "can you tell me your hours?" and kept == [2, 3, 4, 5, 6, 7]


@pytest.mark.parametrize(
    ("text", "asks"),
    [
        ("is there wheelchair access?", True),
        ("and will you be doing a Christmas menu", True),
        ("haben Sie einen Kinderstuhl da", True),
        ("On Thursday, please,", False),
        ("six is too early,", False),
        ("und darf man einen Hund mitbringen", True),
        ("Machen Sie das.", False),  # a German verb first and a full stop: it tells
        ("Machen Sie das auch?", True),
        ("Haben Sie einen Parkplatz.", True),  # a question written without its mark
    ],
)
def test_a_stretch_asks_by_its_question_mark_or_its_lead(text: str, asks: bool) -> None:
    language = "de" if "Sie" in text or "darf" in text else "en"
    assert is_question(text, language) is asks
