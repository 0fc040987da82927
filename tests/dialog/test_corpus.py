"""How a corpus turn is scored (``voicebot/dialog/corpus.py``): success, wrong action."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from tests.support.paths import PIPELINES
from voicebot.config import load_pipeline
from voicebot.dialog.bot import LoadedBot, load_bot
from voicebot.dialog.corpus import Item, TurnScore, _Gold, score_turn
from voicebot.nlu.match import Match

BOOKED = {"party_size": 4, "day": "friday", "time": "19:30"}


@pytest.fixture(scope="module")
def loaded() -> LoadedBot:
    return load_bot(load_pipeline(PIPELINES / "restaurant.yaml"))


def _score(loaded: LoadedBot, item: Item, heard: str | None = None) -> TurnScore:
    matcher = loaded.matcher("en", dt.date(2026, 12, 1))
    return asyncio.run(score_turn(loaded, matcher, item, "en", heard))


def test_a_correction_read_as_no_with_the_value_is_the_right_action(loaded: LoadedBot) -> None:
    # the matcher reads "no, five of us" as deny with a value; the flow takes it as the
    # correction it is, so the call ends where the labelled inform takes it
    item = Item("confirm_booking", "No, five of us, not four.", "inform", {"party_size": 5}, BOOKED)
    deny = Match("deny", {}, 0.8, "spotted", "no 5 of us not 4", {"party_size": 5})
    score = asyncio.run(score_turn(loaded, _Gold(deny, "en", dt.date(2026, 12, 1)), item, "en"))
    assert score.intent == "deny" and score.success
    assert score.intent_ok and not score.wrong_action


def test_a_no_that_loses_the_new_value_asks_what_to_change_no_wrong_action(
    loaded: LoadedBot,
) -> None:
    # the caller did say no; the value was lost, and the bot asks what to change
    item = Item("confirm_booking", "No, five of us, not four.", "inform", {"party_size": 5}, BOOKED)
    score = _score(loaded, item, heard="No.")
    assert score.intent == "deny" and not score.success and score.state == "change_booking"
    assert not score.intent_ok and not score.wrong_action and not score.no_match


def test_a_no_where_the_caller_said_yes_is_a_wrong_action(loaded: LoadedBot) -> None:
    item = Item("confirm_booking", "Yes, that's right.", "affirm", {}, BOOKED)
    score = _score(loaded, item, heard="No.")
    assert score.intent == "deny" and not score.success and score.wrong_action


def test_a_wrong_value_is_a_wrong_action(loaded: LoadedBot) -> None:
    item = Item("ask_party_size", "Five of us.", "inform", {"party_size": 5})
    score = _score(loaded, item, heard="Nine of us.")
    assert score.intent == "inform" and score.intent_ok
    assert not score.success and score.wrong_action and score.slots_right == 0


def test_nothing_understood_is_a_no_match_not_a_wrong_action(loaded: LoadedBot) -> None:
    item = Item("ask_party_size", "Five of us.", "inform", {"party_size": 5})
    score = _score(loaded, item, heard="Water to salmon.")
    assert score.no_match and not score.wrong_action and not score.success


def test_a_question_answered_on_a_none_turn_is_a_wrong_action(loaded: LoadedBot) -> None:
    # the call stays where it was, but the bot answered what the caller never asked
    item = Item("ask_time", "Hmm, let me check with my wife.", "none", {}, BOOKED)
    score = _score(loaded, item, heard="When do you open?")
    assert score.intent == "opening_hours" and score.success
    assert score.wrong_action


def test_a_turn_that_only_asks_the_question_again_is_no_wrong_action(loaded: LoadedBot) -> None:
    # heard as "say that again" where the caller said nothing the bot takes: the bot asks
    # its question again, as it does for "none" - no harm done
    item = Item("ask_day", "Hmm, hang on a second.", "none", {}, {"party_size": 4})
    score = _score(loaded, item, heard="Sorry, could you say that again?")
    assert score.intent == "repeat" and score.success and not score.wrong_action


def test_an_answer_without_its_value_is_no_reading(loaded: LoadedBot) -> None:
    # "Friday or Saturday" names no day: no answer (the bot asks), not an empty "inform"
    item = Item("ask_day", "Friday or Saturday, I'm not sure.", "none", {}, {"party_size": 4})
    score = _score(loaded, item)
    assert score.intent == "none" and score.success and not score.wrong_action
