"""Understanding corpora: what callers say in each state, and whether the bot got it.

A corpus file (``intents/corpus/*.yaml``) lists utterances with the dialog
state they are said in and what a person would have understood::

    language: en
    today: 2026-12-01
    written_by: "who wrote it and how (held-out sets: from the prompts only)"
    items:
      - state: confirm_booking
        context: {party_size: 4, day: friday, time: "19:30"}   # what the bot holds
        say: "No, sorry, could we make it Saturday instead?"
        intent: inform            # or none: the bot should ask again, not act
        slots: {day: saturday}    # day: weekday; date: YYYY-MM-DD when one was named

``score_turn`` puts a ``Conversation`` in that state, lets it hear the
utterance (or what a recogniser made of it), and runs a second conversation
on the labelled reading; the two must end in the same state with the same
values for a **turn success**. A turn that acts (matches an intent) but does
something else than the labelled reading, or stores a wrong or spurious value,
is a **wrong action**; a turn the bot answers with "sorry?" is a no-match. What
counts is what the bot did, not the intent's name: "no, five of us" at the
read-back, matched as a no with a value, is the correction the label says when
the call ends where the labelled reading takes it, with the same values.

Diagnostic codes: E6xx, listed with their meanings in ``voicebot.diagnostics``.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voicebot.diagnostics import ConfigError
from voicebot.dialog.bot import LoadedBot
from voicebot.dialog.flow import Conversation
from voicebot.dialog.outcomes import MemoryOutcomeStore
from voicebot.dialog.prompt import Prompt
from voicebot.events import Event, IntentEvent
from voicebot.frames import SecondPass
from voicebot.nlu.match import DENY, Match, Matcher
from voicebot.nlu.slot_day import DayValue, parse_day
from voicebot.yamlsrc import Reader, did_you_mean, load

NONE = "none"
TOP = ("language", "today", "written_by", "items")
ITEM = ("state", "context", "say", "intent", "slots")


@dataclass(slots=True)
class Item:
    state: str
    say: str
    intent: str  # NONE: nothing the bot can act on
    slots: dict[str, Any]
    context: dict[str, Any] = field(default_factory=dict)
    line: int = 0


@dataclass(slots=True)
class Corpus:
    path: str
    language: str
    today: dt.date
    written_by: str
    items: list[Item]

    @property
    def name(self) -> str:
        return Path(self.path).stem


def load_corpus(path: str | Path, loaded: LoadedBot | None = None) -> Corpus:
    """Read a corpus file; with ``loaded``, states, intents and slots are checked against
    the bot. Raises ``ConfigError`` with every problem at file:line:col."""
    src, diags = load(path)
    data = src.data
    if not isinstance(data, dict) or not isinstance(data.get("items"), list):
        raise ConfigError(
            diags
            or [
                src.diag(
                    (), "E601", "a corpus file is a mapping with 'language', 'today' and 'items'"
                )
            ]
        )
    r = Reader()
    r.diags += diags
    r.unknown_keys(src, data, (), TOP, "E602")
    today = data.get("today")
    if not isinstance(today, dt.date):
        r.err(src, ("today",), "E606", "'today' must be a date (YYYY-MM-DD)")
        today = dt.date.today()
    states = loaded.bot.flow.states if loaded else None
    intents = loaded.intents.intents if loaded else None
    slot_names = set(loaded.bot.collectors) | {"date"} if loaded else None
    items = []
    for i, node in enumerate(data["items"]):
        at = ("items", i)
        if not isinstance(node, dict):
            r.err(src, at, "E601", "an item is a mapping (state, say, intent)")
            continue
        r.unknown_keys(src, node, at, ITEM, "E602")
        state, say, intent = node.get("state"), node.get("say"), node.get("intent")
        if states is not None and state not in states:
            r.err(
                src,
                (*at, "state"),
                "E603",
                f"unknown state {state!r}{did_you_mean(state, states)}",
            )
        if intents is not None and intent != NONE and intent not in intents:
            r.err(
                src,
                (*at, "intent"),
                "E604",
                f"unknown intent {intent!r}{did_you_mean(intent, intents)}",
            )
        if not isinstance(say, str) or not say.strip():
            r.err(src, (*at, "say"), "E606", "'say' must be the caller's words")
            continue
        slots = node.get("slots") or {}
        context = node.get("context") or {}
        for section, values in (("slots", slots), ("context", context)):
            if not isinstance(values, dict):
                r.err(src, (*at, section), "E606", f"{section!r} must be a mapping")
                continue
            for name in values:
                if slot_names is not None and name not in slot_names:
                    r.err(
                        src,
                        (*at, section, name),
                        "E605",
                        f"unknown slot {name!r}{did_you_mean(name, slot_names)}",
                        key=True,
                    )
        line, _ = src.at(at)
        items.append(Item(str(state), say, str(intent), dict(slots), dict(context), line))
    if [d for d in r.diags if d.severity == "error"]:
        raise ConfigError(r.diags)
    return Corpus(
        str(path), str(data.get("language", "")), today, str(data.get("written_by", "")), items
    )


class _Gold(Matcher):
    """A matcher that "hears" the labelled reading."""

    def __init__(self, match: Match | None, language: str, today: dt.date | None = None) -> None:
        self.found = match
        self.language = language
        self._today = today or dt.date.today()

    def today(self) -> dt.date:
        """The corpus's day: the labelled reading's weekdays resolve as the bot's do."""
        return self._today

    def match(
        self,
        text: str,
        allowed: Collection[str] | None = None,
        *,
        interim: bool = False,
        expect: str | None = None,
    ) -> Match | None:
        if self.found is None or (allowed is not None and self.found.intent not in allowed):
            return None
        return self.found


@dataclass(slots=True)
class TurnScore:
    item: Item
    heard: str  # what the matcher got (the text, or a recogniser's transcript)
    intent: str  # what the bot matched (NONE: no match)
    slots: dict[str, Any]
    success: bool
    intent_ok: bool
    slots_right: int  # labelled slot values the bot stored correctly
    slots_total: int
    no_match: bool
    wrong_action: bool
    match_ms: float
    state: str = ""  # where the conversation ended
    expected_state: str = ""


def gold_values(item: Item, today: dt.date) -> dict[str, Any]:
    """The labelled slots as the values a matcher would produce (a day keeps its date)."""
    values = {k: v for k, v in item.slots.items() if k != "date"}
    if "day" in values:
        date = item.slots.get("date")
        if isinstance(date, str):
            date = dt.date.fromisoformat(date)
        if isinstance(date, dt.date):  # the date labelled: the caller named it
            values["day"] = DayValue(str(values["day"]), date, explicit=True)
        else:
            parsed = parse_day(str(values["day"]), "en", today)
            values["day"] = parsed or DayValue(str(values["day"]))
    return values


def _conversation(
    loaded: LoadedBot, matcher: Matcher, item: Item, language: str
) -> tuple[Conversation, list[Event]]:
    events: list[Event] = []
    conv = Conversation(
        loaded.bot,
        matcher,
        MemoryOutcomeStore(),
        call_id="corpus",
        emit=events.append,
        language=language,
    )
    conv.place(item.state, gold_values(Item(item.state, "", NONE, item.context), _today(matcher)))
    return conv, events


def _today(matcher: Matcher) -> dt.date:
    today = getattr(matcher, "today", None)
    return today() if callable(today) else dt.date.today()


def _said(prompt: Prompt | None, conv: Conversation) -> str:
    """``prompt`` as the conversation would say it now."""
    return prompt.render(conv.language, conv.values, conv.bot.speakers) if prompt else ""


def _canon(values: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in values.items() if v is not None}


async def score_turn(
    loaded: LoadedBot,
    matcher: Matcher,
    item: Item,
    language: str,
    heard: str | None = None,
    unsure: Collection[int] = (),
    second_pass: SecondPass | None = None,
) -> TurnScore:
    """Run ``item`` (or ``heard``, a transcript of it, with the ``unsure`` words the
    recogniser marked) and its labelled reading."""
    text = item.say if heard is None else heard
    today = _today(matcher)
    conv, events = _conversation(loaded, matcher, item, language)
    before = dict(conv.slots)
    accepted = item.intent in conv.accepts()  # in the item's state, before it moves on
    state = conv.state
    started = time.perf_counter()  # the matcher alone (the flow's hooks are not matching)
    matcher.match(text, loaded.bot.actions(state), expect=state.collect)
    match_ms = (time.perf_counter() - started) * 1000
    # the state's question, as first asked and as asked again
    asked = {conv.last_prompt, _said(state.reprompt, conv)}
    step = await conv.hear(text, unsure=unsure, second_pass=second_pass)
    gold_match = None if item.intent == NONE else Match(item.intent, gold_values(item, today))
    gold, _ = _conversation(loaded, _Gold(gold_match, language, today), item, language)
    gold_step = await gold.hear(item.say)
    matched = next((e for e in events if isinstance(e, IntentEvent)), None)
    intent = matched.name if matched else NONE
    got, want = _canon(conv.slots), _canon(gold.slots)
    success = conv.state_name == gold.state_name and got == want and (conv.ended == gold.ended)
    expected_action = (
        loaded.bot.route(conv.flow.states[item.state], item.intent) if accepted else None
    )
    action = loaded.bot.route(conv.flow.states[item.state], intent) if matched else None
    if matched:  # the same intent, or one the state sends to the same place
        intent_ok = accepted and (
            intent == item.intent
            # the call went where the labelled reading takes it, with the same values: a
            # "no, five of us" read as deny with a value is the correction it was
            or success
            or (
                action is not None
                and expected_action is not None
                and action[1] == expected_action[1]
                and action[1] is not None
            )
        )
    else:
        intent_ok = not accepted
    changed = {k: v for k, v in got.items() if _canon(before).get(k) != v}
    labelled = _canon(gold_values(item, today))
    if "date" in item.slots:
        labelled["day_date"] = str(item.slots["date"])
    right = sum(1 for k, v in labelled.items() if changed.get(k, _canon(before).get(k)) == v)
    wrong_value = any(k in want and want[k] != v for k, v in changed.items()) or any(
        k not in want for k in changed if not k.endswith("_date")
    )
    # a plain no where the caller said "no, <a value>" and the value was lost: the bot
    # asks what to change - the part it understood, no wrong action (nor a success)
    partial_no = (
        matched is not None
        and intent == DENY
        and DENY in (conv.flow.states[item.state].confirm or {})
        and item.intent != DENY
        and bool(item.slots)
        and not changed
        and not conv.ended
    )
    # a turn that ends where the labelled reading does, with its values, and only asks the
    # question again did nothing wrong ("Friday or Saturday" read as an answer without a
    # value); an answer, a hook or an outcome on a "none" turn is a wrong action
    asked_again = success and not step.outcomes and step.text in {gold_step.text, *asked}
    wrong_action = bool(matched) and (not intent_ok or wrong_value) and not partial_no
    wrong_action = wrong_action and not asked_again
    return TurnScore(
        item,
        text,
        intent,
        changed,
        success,
        intent_ok,
        right,
        len(labelled),
        not matched and item.intent != NONE,
        wrong_action,
        match_ms,
        conv.state_name,
        gold.state_name,
    )


@dataclass
class Summary:
    turns: int = 0
    success: int = 0
    intent_ok: int = 0
    slots_right: int = 0
    slots_total: int = 0
    no_match: int = 0
    wrong_action: int = 0
    match_ms: list[float] = field(default_factory=list)

    def add(self, s: TurnScore) -> None:
        self.turns += 1
        self.success += s.success
        self.intent_ok += s.intent_ok
        self.slots_right += s.slots_right
        self.slots_total += s.slots_total
        self.no_match += s.no_match
        self.wrong_action += s.wrong_action
        self.match_ms.append(s.match_ms)

    def rates(self) -> dict[str, float]:
        """The shares (matching times are left to the benchmark's percentile)."""
        n = max(self.turns, 1)
        return {
            "turns": self.turns,
            "turn_success": self.success / n,
            "intent_accuracy": self.intent_ok / n,
            "slot_accuracy": self.slots_right / max(self.slots_total, 1),
            "no_match_rate": self.no_match / n,
            "wrong_action_rate": self.wrong_action / n,
        }


async def score_corpus(
    loaded: LoadedBot, matcher: Matcher, corpus: Corpus, heard: dict[int, str] | None = None
) -> tuple[Summary, list[TurnScore]]:
    """Every item (``heard``: item index -> a transcript to use instead of the text)."""
    summary = Summary()
    turns = []
    for i, item in enumerate(corpus.items):
        text = heard.get(i) if heard is not None else None
        if heard is not None and text is None:
            continue
        score = await score_turn(loaded, matcher, item, corpus.language, text)
        summary.add(score)
        turns.append(score)
    return summary, turns
