"""The flow engine: states, slots, confirm, hooks, re-prompts, exits, the dialog stage.

The pure flow logic runs against a tiny keyword matcher defined here (a real
``Matcher``); the reference bot's conversations go through the real template
matcher in ``test_restaurant_dialog``-style dialog tests (see the end).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.support.paths import RESTAURANT_FLOW, RESTAURANT_PIPELINE, ROOT
from voicebot.clock import FastClock
from voicebot.context import CallContext
from voicebot.dialog.flow import TRANSFER_FAILED, Bot, Conversation, FlowError
from voicebot.dialog.flow_file import read_flow
from voicebot.dialog.hooks import HookCall, hook
from voicebot.dialog.outcomes import MemoryOutcomeStore
from voicebot.dialog.stage import FlowDialog
from voicebot.events import (
    Event,
    InterruptedEvent,
    PlaybackStartedEvent,
    PlaybackStoppedEvent,
    SpeechStartedEvent,
    SpeechStoppedEvent,
)
from voicebot.frames import AudioFrame, Frame, Interrupt, ReplyText, Transcript
from voicebot.graph import INTERRUPTED, Pipeline, Source, Stage
from voicebot.nlu.match import Match, Matcher
from voicebot.nlu.slots import DaySlot, IntegerSlot, TimeSlot

SHOP = """\
flow: shop
languages: [en]
start: hello
defaults:
  silence: {timeout_ms: 5000, reprompts: 1, exit: bye_silent, say: "Hello?"}
  no_match: {reprompts: 1, exit: agent, say: "Sorry."}
global:
  repeat: "@repeat"
  agent: agent
  bye: bye
states:
  hello:
    say: "Hi."
    ask: "What do you want?"
    on: {order: ask_qty, hours: hours, slow: slow}
  ask_qty:
    collect: qty
    ask: "How many?"
    next: ask_day
  ask_day:
    collect: day
    ask: "Which day?"
    next: confirm
  confirm:
    ask: "{qty} on {day}, right?"
    confirm: {affirm: done, deny: change}
    barge_in: false
  change:
    ask: "What should change?"
    on: {inform: confirm}
  done:
    outcome: order
    say: "Ordered {qty} for {day}."
    clear: [qty, day]
    next: more
  more:
    ask: "Anything else?"
    on: {deny: bye, order: ask_qty}
  hours:
    call: {function: shop_hours, args: {table: x}, returns: {open: time}}
    branch:
      - if: {open: null}
        goto: closed
      - goto: open
  open: {say: "Open at {open}.", next: more}
  closed: {say: "Closed that day.", next: more}
  slow:
    call: {function: "tests.dialog.test_flow:slow_hook", timeout_ms: 200}
    on_error: agent
    next: more
  agent: {say: "Connecting.", transfer: desk}
  bye: {say: "Bye.", end: true}
  bye_silent: {say: "Hanging up.", end: true}
"""

SILENCE = np.zeros(320, np.int16)
INTENTS = {"order", "hours", "slow", "inform", "affirm", "deny", "repeat", "agent", "bye"}
HOOK_THREADS: list[str] = []


@hook("shop_hours")
def shop_hours(call: HookCall) -> dict[str, Any]:
    HOOK_THREADS.append(threading.current_thread().name)
    return {"open": "09:30"} if call.values.get("day") != "sunday" else {}


def slow_hook(call: HookCall) -> dict[str, Any]:
    time.sleep(1.0)
    return {}


class KeywordMatcher(Matcher):
    """Intent = a keyword in the text (if allowed); ``name=value`` words become slots."""

    language = "en"
    interim_intents = frozenset({"agent"})

    def __init__(self) -> None:
        self.allowed: list[frozenset[str]] = []

    def match(
        self,
        text: str,
        allowed: Collection[str] | None = None,
        *,
        interim: bool = False,
        expect: str | None = None,
    ) -> Match | None:
        self.allowed.append(frozenset(allowed or ()))
        words = text.lower().replace(",", " ").split()
        slots: dict[str, Any] = {}
        for word in words:
            if "=" in word:
                key, value = word.split("=", 1)
                slots[key] = int(value) if value.isdigit() else value
        for intent in sorted(INTENTS):
            if intent in words and (allowed is None or intent in allowed):
                if interim and intent not in self.interim_intents:
                    continue
                return Match(intent, slots, 1.0, "exact", text)
        if slots and not interim and (allowed is None or "inform" in allowed):
            return Match("inform", slots, 0.9, "fuzzy", text)
        return None


def make_bot(tmp_path: Path, text: str = SHOP) -> Bot:
    path = tmp_path / "shop_flow.yaml"
    path.write_text(text)
    src, diags = read_flow([path])
    assert not [d for d in diags if d.severity == "error"], diags
    collectors = {"qty": frozenset({"order", "inform"}), "day": frozenset({"order", "inform"})}
    speakers = {"qty": IntegerSlot().speak, "day": DaySlot().speak, "open": TimeSlot().speak}
    return Bot(src.flow, collectors, speakers, frozenset(INTENTS))


class Recorder:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def __call__(self, event: Event) -> None:
        self.events.append({"type": event.event_type, **event.fields()})

    def of(self, type: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == type]


@pytest.fixture
def conv(tmp_path):
    rec = Recorder()
    store = MemoryOutcomeStore()
    matcher = KeywordMatcher()
    c = Conversation(make_bot(tmp_path), matcher, store, call_id="c1", emit=rec)
    return c, rec, store, matcher


async def test_slots_given_early_skip_their_questions(conv):
    c, rec, _, _ = conv
    assert (await c.start()).text == "Hi. What do you want?"
    step = await c.hear("order qty=4")
    assert step.text == "Which day?" and step.state == "ask_day"  # "How many?" skipped
    step = await c.hear("day=friday")
    assert step.text == "four on Friday, right?" and step.state == "confirm"
    assert step.barge_in is False
    assert [(e["from"], e["to"]) for e in rec.of("state")] == [
        (None, "hello"),
        ("hello", "ask_day"),
        ("ask_day", "confirm"),
    ]
    intents = rec.of("intent")
    assert intents[0] == {
        "type": "intent",
        "turn": 0,
        "name": "order",
        "slots": {"qty": 4},
        "confidence": 1.0,
        "matcher": "exact",
        "text": "order qty=4",
    }
    assert intents[1]["matcher"] == "fuzzy" and intents[1]["name"] == "inform"


async def test_affirm_commits_the_outcome_before_the_reply(conv):
    c, rec, store, _ = conv
    await c.start()
    await c.hear("order qty=2 day=monday")
    step = await c.hear("affirm")
    assert [o.slots for o in store.outcomes] == [{"qty": 2, "day": "monday"}]
    assert step.outcomes[0].id == 1 and step.outcomes[0].call_id == "c1"
    assert step.text == "Ordered two for Monday. Anything else?"
    assert rec.of("outcome")[0]["slots"] == {"qty": 2, "day": "monday"}
    assert c.slots == {}  # cleared after the booking prompt: a new order starts fresh
    step = await c.hear("order")
    assert step.text == "How many?"


async def test_deny_then_change_one_slot_reconfirms(conv):
    c, _, store, _ = conv
    await c.start()
    await c.hear("order qty=2 day=monday")
    assert (await c.hear("deny")).text == "What should change?"
    step = await c.hear("day=tuesday")
    assert step.text == "two on Tuesday, right?" and not store.outcomes


async def test_only_accepted_intents_are_candidates(conv):
    c, _, _, matcher = conv
    await c.start()
    await c.hear("order")
    step = await c.hear("affirm")  # not accepted here -> no match
    assert step.text == "Sorry. How many?"
    # ask_qty collects qty: intents carrying it, plus the global handlers
    assert matcher.allowed[-1] == {"order", "inform", "repeat", "agent", "bye"}


async def test_no_match_reprompts_then_exits(conv):
    c, rec, _, _ = conv
    await c.start()
    assert (await c.hear("mumble")).text == "Sorry. What do you want?"
    step = await c.hear("mumble again")
    assert step.text == "Connecting." and step.ended == "transfer"
    assert [e["count"] for e in rec.of("no_match")] == [1, 2]
    assert rec.of("transfer") == [
        {
            "type": "transfer",
            "turn": 0,
            "target": "desk",
            "slots": {},
            "apology": TRANSFER_FAILED["en"],  # said if the transport cannot transfer
        }
    ]
    assert (await c.hear("hello?")).text == ""  # the call is over


async def test_silence_reprompts_then_exits(conv):
    c, rec, _, _ = conv
    await c.start()
    assert c.silence_timeout() == 5.0
    assert (await c.silence()).text == "Hello? What do you want?"
    step = await c.silence()
    assert step.text == "Hanging up." and step.ended == "end"
    assert c.silence_timeout() is None
    assert [e["count"] for e in rec.of("silence_timeout")] == [1, 2]


async def test_silence_without_exit_stops_reprompting(tmp_path):
    text = SHOP.replace("reprompts: 1, exit: bye_silent, ", "reprompts: 1, ")
    c = Conversation(make_bot(tmp_path, text), KeywordMatcher(), MemoryOutcomeStore(), call_id="c")
    await c.start()
    assert (await c.silence()).text == "Hello? What do you want?"
    assert c.silence_timeout() is None
    assert (await c.silence()).text == ""


async def test_repeat_says_the_last_prompt_again(conv):
    c, _, _, _ = conv
    await c.start()
    await c.hear("order qty=3")
    assert (await c.hear("repeat")).text == "Which day?"
    assert c.state_name == "ask_day"


async def test_hooks_give_values_to_prompts_and_branches(conv):
    c, _, _, _ = conv
    await c.start()
    step = await c.hear("hours")
    assert step.text == "Open at half past nine. Anything else?"
    assert HOOK_THREADS and HOOK_THREADS[-1] != threading.main_thread().name  # off the loop
    await c.hear("order day=sunday")
    c.state_name = "hello"
    step = await c.hear("hours")
    assert step.text.startswith("Closed that day.")


async def test_hook_timeout_goes_to_on_error(conv):
    c, rec, _, _ = conv
    await c.start()
    started = time.monotonic()
    step = await c.hear("slow")
    assert time.monotonic() - started < 0.8
    assert step.text == "Connecting." and step.ended == "transfer"
    err = rec.of("flow_error")[0]
    assert err["state"] == "slow" and "timed out" in err["message"] and err["goto"] == "agent"


async def test_failing_commit_without_on_error_raises(tmp_path):
    class BrokenStore(MemoryOutcomeStore):
        async def commit(self, outcome):
            raise OSError("disk full")

    c = Conversation(make_bot(tmp_path), KeywordMatcher(), BrokenStore(), call_id="c")
    await c.start()
    await c.hear("order qty=1 day=friday")
    with pytest.raises(FlowError, match="disk full"):
        await c.hear("affirm")


async def test_interim_intents_only_on_partials(conv):
    c, rec, _, _ = conv
    await c.start()
    assert c.match_interim("order qty=2") is None  # order is not interim
    match = c.match_interim("agent please")
    assert match is not None
    step = await c.hear_interim(match)
    assert step.ended == "transfer" and rec.of("intent")[-1]["interim"] is True


# --- the dialog stage in a graph (no audio) ---------------------------------------


class ScriptedCaller(Source):
    """Says each (time, text) as a caller turn: speech events on the bus, then a transcript.

    Like a caller's audio, it sends a (silent) frame every 20 ms, so the fast clock
    sees frames in flight and moves in ticks (``FastClock`` can overshoot a tick
    when a sleeper is added while it settles and nothing is in flight).
    """

    def __init__(self, lines: list[tuple[float, str]], end: float) -> None:
        super().__init__()
        self.lines = lines
        self.end = end

    async def _wait(self, until: float) -> None:
        clock = self.ctx.clock
        while clock.now() < until:
            await clock.sleep_until(min(until, clock.now() + 0.02))
            await self.push(AudioFrame(SILENCE, 16000, 1, clock.now()))

    async def produce(self) -> None:
        for at, text in self.lines:
            await self._wait(at)
            self.ctx.state.turn += 1
            turn = self.ctx.state.turn
            self.ctx.bus.emit(SpeechStartedEvent(turn=turn))
            await self._wait(at + 0.2)
            await self.push(Transcript(text.split()[0], False, turn))  # a partial
            await self._wait(at + 0.5)
            self.ctx.bus.emit(SpeechStoppedEvent(turn=turn, last_voiced=at + 0.5))
            await self.push(Transcript(text, True, turn))
        await self._wait(self.end)


class Speaker(Stage):
    """Plays each reply for 0.1 s per word on the call clock, reporting like playback does."""

    name = "playback"

    def __init__(self, per_word: float) -> None:
        super().__init__()
        self.per_word = per_word
        self.said: list[tuple[float, str]] = []

    async def process(self, frame: Frame) -> None:
        if isinstance(frame, ReplyText):
            bus, clock, state = self.ctx.bus, self.ctx.clock, self.ctx.state
            self.said.append((round(clock.now(), 2), frame.text))
            bus.emit(PlaybackStartedEvent(turn=frame.turn))
            state.bot_speaking, state.barge_in = True, frame.barge_in
            until = clock.now() + self.per_word * len(frame.text.split())
            if await self.interruptible(clock.sleep_until(until)) is INTERRUPTED:
                bus.emit(InterruptedEvent(turn=frame.turn, heard_ms=0, dropped_ms=0, text=""))
                return
            state.bot_speaking = False
            bus.emit(PlaybackStoppedEvent(turn=frame.turn, played_ms=0))

    def on_interrupt(self, frame: Interrupt) -> None:
        self.ctx.state.bot_speaking = False


async def run_graph(bot: Bot, lines: list[tuple[float, str]], end: float, per_word: float = 0.1):
    clock = FastClock()
    ctx = CallContext(clock)
    pipeline = Pipeline(ctx)
    caller = ScriptedCaller(lines, end)
    dialog = FlowDialog(bot, KeywordMatcher(), MemoryOutcomeStore(), hang_up=pipeline.hang_up)
    speaker = Speaker(per_word)
    pipeline.connect(caller, dialog)
    pipeline.connect(dialog, speaker)
    events: list[dict[str, Any]] = []
    ctx.bus.subscribe(events.append)
    reason = await asyncio.wait_for(pipeline.run(), 30)
    return reason, events, speaker.said


async def test_stage_times_silence_from_the_end_of_the_prompt_and_hangs_up(tmp_path):
    bot = make_bot(tmp_path)
    reason, events, said = await run_graph(bot, [], end=60.0)
    # "Hi. What do you want?" plays 0.5 s; 5 s of silence; re-prompt (0.5 s); 5 s; goodbye.
    assert [text for _, text in said] == [
        "Hi. What do you want?",
        "Hello? What do you want?",
        "Hanging up.",
    ]
    assert said[1][0] == pytest.approx(5.5, abs=0.05)
    assert said[2][0] == pytest.approx(11.0, abs=0.05)
    assert reason == "bot_hangup"
    ended = events[-1]
    assert ended["type"] == "call_ended" and ended["reason"] == "bot_hangup"
    assert ended["t"] == pytest.approx(11.2, abs=0.05)  # after the goodbye was played
    assert [e["count"] for e in events if e["type"] == "silence_timeout"] == [1, 2]


async def test_stage_caller_speech_resets_the_silence_timer(tmp_path):
    bot = make_bot(tmp_path)
    reason, events, said = await run_graph(bot, [(4.0, "order qty=2"), (9.0, "agent")], 60.0)
    texts = [text for _, text in said]
    assert texts == ["Hi. What do you want?", "Which day?", "Connecting."]
    assert reason == "transfer"
    assert not [e for e in events if e["type"] == "silence_timeout"]
    intent = next(e for e in events if e["type"] == "intent")
    assert intent["turn"] == 1 and intent["name"] == "order"
    assert [e["type"] for e in events if e["type"] in ("intent", "state", "reply")][:4] == [
        "state",
        "reply",
        "intent",
        "state",
    ]


async def test_stage_interim_intent_interrupts_the_prompt(tmp_path):
    """ "agent" in a partial transcript cuts the (non-barge-in) confirmation at once."""
    bot = make_bot(tmp_path)
    # 0.5 s a word: the greeting plays 0-2.5 s, the confirmation 3.5-5.5 s.
    lines = [(3.0, "order qty=2 day=friday"), (4.0, "agent now please")]
    reason, events, said = await run_graph(bot, lines, 30.0, per_word=0.5)
    assert [text for _, text in said] == [
        "Hi. What do you want?",
        "two on Friday, right?",
        "Connecting.",
    ]
    assert said[2][0] == pytest.approx(4.2, abs=0.05)  # at the partial, not the final
    (interrupted,) = [e for e in events if e["type"] == "interrupted"]
    assert interrupted["t"] == pytest.approx(4.2, abs=0.05)
    agent = [e for e in events if e["type"] == "intent" and e["name"] == "agent"]
    assert len(agent) == 1 and agent[0]["interim"] is True  # the final was not acted on again
    assert reason == "transfer"


async def test_stage_speech_over_a_non_barge_in_prompt_is_ignored(tmp_path):
    bot = make_bot(tmp_path)
    # The confirmation (barge_in: false) plays 3.5-5.5 s; "affirm" starts at 4.0 during it.
    lines = [(3.0, "order qty=2 day=friday"), (4.0, "affirm"), (7.0, "affirm")]
    reason, events, _ = await run_graph(bot, lines, 12.0, per_word=0.5)
    outcomes = [e for e in events if e["type"] == "outcome"]
    assert len(outcomes) == 1 and outcomes[0]["turn"] == 3
    assert [e["turn"] for e in events if e["type"] == "intent"] == [1, 3]
    assert reason == "completed"


# --- validation of flow files alone -----------------------------------------------


def test_reference_flow_is_clean():
    _, diags = read_flow([RESTAURANT_FLOW])
    assert diags == []


def test_check_cli_on_a_flow_without_intents_warns(tmp_path):
    path = tmp_path / "shop_flow.yaml"
    path.write_text(
        SHOP.replace("function: shop_hours", "function: lookup").replace(
            '"tests.dialog.test_flow:slow_hook"', "lookup"
        )
    )
    proc = subprocess.run(
        [sys.executable, "-m", "voicebot", "check", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "W404 warning: no intent files given" in proc.stderr
    assert json.dumps(str(path))[1:-1] + ": ok (1 warning)" in proc.stdout


# --- voicebot test-dialog: the reference bots' conversation tests -------------------


def test_dialog(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "voicebot", "test-dialog", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )


test_dialog.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


def test_bundled_dialog_tests_pass():
    en, de = "intents/tests/restaurant_en.yaml", "intents/tests/restaurant_de.yaml"
    proc = test_dialog(en, de, "--list")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{en}: 58 passed, 0 failed" in proc.stdout
    assert f"{de}: 25 passed, 0 failed" in proc.stdout
    for name in (
        "silence re-prompts, then the bot says goodbye",
        "a question about the opening hours mid-booking is answered, then the bot returns",
        "a correction at the confirmation changes that value and confirms again",
        "a yes said over the read-back books nothing; the bot reads it back again",
        "a goodbye inside a longer sentence ends the call",
        "a slot word that cannot be read is asked for, the rest is kept",
        "three misunderstandings transfer to a human",
        "repeat says the last prompt again",
        "asking for a human transfers with what is known so far",
        "deny and change the day",
        'key 1 at the start books, the party size is keyed in with "#"',
        "a keyed party size ends after a pause too, and at its longest",
    ):
        assert f"ok   {name}" in proc.stdout


def test_a_failing_dialog_test_shows_a_diff(tmp_path):
    path = tmp_path / "wrong.yaml"
    path.write_text(
        f"pipeline: {RESTAURANT_PIPELINE}\n"
        "today: 2025-06-02\n"
        "tests:\n"
        "  - name: wrong time\n"
        "    steps:\n"
        "      - user: book a table for 2 on friday at 7 pm\n"
        "        slots: {party_size: 2, day: friday, time: '19:30'}\n"
        "        bot: A table for two on Friday at half past seven. Shall I book it?\n"
        "      - user: yes\n"
        "        outcome: booking\n"
        "  - name: fine\n"
        "    steps:\n"
        "      - user: bye\n"
        "        ended: true\n"
    )
    proc = test_dialog(str(path))
    assert proc.returncode == 1
    assert proc.stdout.splitlines() == [
        f"{path}:6:9: FAIL 'wrong time', step 1 (user: 'book a table for 2 on friday at 7 pm')",
        "  slots:",
        "    - expected: {'day': 'friday', 'party_size': 2, 'time': '19:30'}",
        "    + got:      {'day': 'friday', 'party_size': 2, 'time': '19:00'}",
        "  bot:",
        "    - expected: 'A table for two on Friday at half past seven. Shall I book it?'",
        "    + got:      'A table for two on Friday, June sixth, at seven p m. Shall I book it?'",
        "  bot said: 'A table for two on Friday, June sixth, at seven p m. Shall I book it?'",
        "  heard: book_table {'day': 'friday', 'party_size': 2, 'time': '19:00'} (exact); "
        "now in state 'confirm_booking', collected {'day': 'friday', 'day_date': "
        "'2025-06-06', 'party_size': 2, 'time': '19:00'}",
        "  (1 later step not run)",
        f"{path}: 1 passed, 1 failed",
    ]


def test_dialog_test_files_are_validated(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        f"pipeline: {RESTAURANT_PIPELINE}\n"
        "tests:\n"
        "  - name: typos\n"
        "    steps:\n"
        "      - user: hello\n"
        "        state: how_can_i_hlp\n"
        "        intnt: greet\n"
        "      - intent: greet\n"
        '      - dtmf: "1x"\n'
    )
    proc = test_dialog(str(path))
    assert proc.returncode == 2
    assert proc.stdout.splitlines() == [
        f"{path}:6:16: E404 unknown state 'how_can_i_hlp' (did you mean 'how_can_i_help'?)",
        f"{path}:7:9: E501 unknown key 'intnt' (did you mean 'intent'?)",
        f"{path}:8:9: E503 each step needs exactly one input: user, user_partial, dtmf or "
        "silent: true (only the first may have none: it checks the greeting)",
        f"{path}:9:15: E502 'dtmf' must be keypad keys (0-9, *, #, A-D; quote them), got '1x'",
    ]


async def test_a_states_hint_tells_the_recogniser_how_callers_answer(tmp_path):
    text = SHOP.replace(
        '    ask: "{qty} on {day}, right?"\n',
        '    ask: "{qty} on {day}, right?"\n    hint: "Yes. No, make it {day}."\n',
    )
    bot = make_bot(tmp_path, text)
    bot.hints["qty"] = lambda language: "Four. A dozen."
    c = Conversation(bot, KeywordMatcher(), MemoryOutcomeStore(), call_id="h")
    await c.start()
    assert c.asr_hint() is None  # "What do you want?" collects nothing and has no hint
    await c.hear("order")
    assert c.asr_hint() == "Four. A dozen."  # the collected slot's type says it
    await c.hear("qty=4 day=friday")
    assert c.state_name == "confirm" and c.asr_hint() == "Yes. No, make it Friday."
