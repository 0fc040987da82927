"""Unsure words: a value read only from them is asked for, an intent resting on them is none.

The matcher is the reference bot's; the second pass decodes real speech with Whisper.
"""

from __future__ import annotations

import asyncio

import numpy as np

from tests.support.paths import RESTAURANT_PIPELINE
from voicebot.asr.whisper import WhisperEngine
from voicebot.config import load_pipeline
from voicebot.dialog.bot import LoadedBot, load_bot
from voicebot.dialog.flow import Conversation
from voicebot.dialog.outcomes import MemoryOutcomeStore
from voicebot.events import Event, IntentEvent, NoMatchEvent
from voicebot.nlu.unsure import masked, match_unsure
from voicebot.samples import speak

_LOADED: list[LoadedBot] = []


def _loaded() -> LoadedBot:
    if not _LOADED:
        _LOADED.append(load_bot(load_pipeline(RESTAURANT_PIPELINE)))
    return _LOADED[0]


def _conversation(state: str, **values: object) -> tuple[Conversation, list[Event]]:
    loaded = _loaded()
    events: list[Event] = []
    conv = Conversation(
        loaded.bot, loaded.matcher("en"), MemoryOutcomeStore(), call_id="u", emit=events.append
    )
    conv.place(state, values)
    return conv, events


def test_masking_replaces_the_unsure_words_only() -> None:
    assert masked("a table for forum on Friday", {3}) == "a table for zzz on Friday"
    assert masked("a table", ()) == "a table"


def test_a_value_read_from_an_unsure_word_is_not_taken() -> None:
    loaded = _loaded()
    matcher = loaded.matcher("en")
    text = "I'd like a table for four on Friday"
    sure = asyncio.run(match_unsure(matcher, text, ()))
    assert sure is not None and sure.intent == "book_table"
    assert sure.slots["party_size"] == 4 and sure.unsure == {}
    found = asyncio.run(match_unsure(matcher, text, {5}))  # "four"
    assert found is not None and found.intent == "book_table"
    assert "party_size" not in found.slots and found.unsure == {"party_size": 4}
    assert str(found.slots["day"]) == "friday"
    # an unsure word no value was read from changes nothing
    assert asyncio.run(match_unsure(matcher, text, {0})) == sure


def test_an_intent_resting_on_an_unsure_word_is_no_match() -> None:
    loaded = _loaded()
    conv, _ = _conversation("confirm_booking", party_size=4, time="19:30")
    allowed = loaded.bot.actions(conv.state)
    matcher = loaded.matcher("en")
    assert asyncio.run(match_unsure(matcher, "yes please", (), allowed)) is not None
    assert asyncio.run(match_unsure(matcher, "yes please", {0}, allowed)) is None


def test_the_flow_asks_again_for_a_slot_heard_unsure() -> None:
    conv, events = _conversation("how_can_i_help")
    asyncio.run(conv.hear("I'd like a table for four on Friday", unsure=(5,)))
    assert "party_size" not in conv.slots and str(conv.slots["day"]) == "friday"
    assert conv.state_name == "ask_party_size"
    intent = next(e for e in events if isinstance(e, IntentEvent))
    assert intent.name == "book_table" and intent.unsure == {"party_size": 4}
    # a bare answer heard unsure: asked again
    conv, _ = _conversation("ask_time", party_size=2)
    asyncio.run(conv.hear("at half past seven", unsure=(3,)))
    assert "time" not in conv.slots and conv.state_name == "ask_time"
    asyncio.run(conv.hear("at half past seven"))
    assert str(conv.slots["time"]) == "19:30"


def test_a_turn_that_matched_nothing_is_recognised_again() -> None:
    """The first transcript is gibberish; the second pass is base decoding the real speech."""
    audio = speak("On Friday, please.", "en")
    base = WhisperEngine("base")
    calls: list[str] = []

    async def second_pass() -> tuple[str, tuple[int, ...]]:
        result = await base.transcribe(audio.astype(np.float32) / 32768, "en")
        calls.append(result.text)
        return result.text, ()

    conv, events = _conversation("ask_day", party_size=2)
    asyncio.run(conv.hear("blorp vorp", second_pass=second_pass))
    assert len(calls) == 1
    assert str(conv.slots["day"]) == "friday"
    assert not any(isinstance(e, NoMatchEvent) for e in events)
    # a turn that matched needs no second pass
    conv, _ = _conversation("ask_day", party_size=2)
    asyncio.run(conv.hear("on saturday", second_pass=second_pass))
    assert len(calls) == 1 and str(conv.slots["day"]) == "saturday"
