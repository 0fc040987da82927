"""The restaurant bot through ``voicebot run``: synthesized caller speech, real engines.

The caller WAV is built segment by segment: after each utterance comes enough
silence for the bot's answer (its length measured by synthesizing the expected
reply with the same voice) plus a short gap, so the caller only speaks once the
bot has finished - well inside the 7 s silence timeout.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.support.paths import RESTAURANT_PIPELINE, ROOT
from voicebot.nlu.slot_day import parse_day, speak_date
from voicebot.samples import speak
from voicebot.transports.file import write_wav

FRIDAY = parse_day("friday", "en").date  # what the bot takes "Friday" for today
assert FRIDAY is not None

RATE = 16000
GREETING = "Hello, thank you for calling Luigi's. How can I help you?"
ANSWER_LATENCY = 1.5  # end of the caller's turn -> the bot starts speaking (generous)
GAP = 2.0  # the caller answers this long after the bot has finished


def build_caller(path: Path, turns: list[tuple[str, str]], tail: float = 2.0) -> list[float]:
    """Caller audio: each (utterance, the bot's expected answer); returns utterance starts."""
    parts = [np.zeros(int((len(speak(GREETING)) / RATE + ANSWER_LATENCY + GAP) * RATE), np.int16)]
    starts = []
    t = len(parts[0]) / RATE
    for said, answer in turns:
        speech = speak(said)
        starts.append(t)
        pause = ANSWER_LATENCY + len(speak(answer)) / RATE + GAP if answer else tail
        parts += [speech, np.zeros(int(pause * RATE), np.int16)]
        t += len(speech) / RATE + pause
    write_wav(path, np.concatenate(parts), RATE)
    return starts


def run_bot(tmp: Path, caller: Path, db: Path, *extra: str) -> tuple[int, list[dict[str, Any]]]:
    events = tmp / "events.jsonl"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "voicebot",
            "run",
            str(RESTAURANT_PIPELINE),
            "-i",
            str(caller),
            "-o",
            str(tmp / "bot.wav"),
            "-e",
            str(events),
            "--outcomes-db",
            str(db),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert not proc.stderr.strip() or proc.returncode == 0, proc.stderr
    return proc.returncode, [json.loads(line) for line in events.read_text().splitlines()]


def of(events: list[dict[str, Any]], type: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == type]


BOOKING = [
    ("Hi, I would like to book a table for four people on Friday.", "At what time?"),
    (
        "Half past seven, please.",
        f"A table for four on Friday, {speak_date(FRIDAY, 'en')}, at half past seven. "
        "Shall I book it?",
    ),
    (
        "Yes, please.",
        "Done! Your table for four on Friday at half past seven is booked. "
        "Is there anything else I can do for you?",
    ),
    ("No, thank you.", ""),
]


@pytest.fixture(scope="module")
def booking_call(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("booking")
    caller = tmp / "caller.wav"
    build_caller(caller, BOOKING, tail=6.0)
    code, events = run_bot(tmp, caller, tmp / "outcomes.db", "--fast")
    return tmp, code, events


def test_booking_turn_by_turn(booking_call):
    _, code, events = booking_call
    assert code == 0
    finals = [e for e in of(events, "transcript") if e["final"]]
    assert len(finals) == 4, [f["text"] for f in finals]
    intents = {e["turn"]: e for e in of(events, "intent")}
    assert intents[1]["name"] == "book_table"
    assert intents[1]["slots"] == {"party_size": 4, "day": "friday"}
    assert intents[2]["name"] == "inform" and intents[2]["slots"] == {"time": "19:30"}
    assert intents[3]["name"] == "affirm"
    assert intents[4]["name"] == "deny"
    replies = [(e["turn"], e["text"]) for e in of(events, "reply")]
    assert replies == [
        (0, GREETING),
        (1, "At what time?"),
        (2, BOOKING[1][1]),
        (3, BOOKING[2][1]),
        (4, "Thank you for calling. Goodbye!"),
    ]
    states = [e["to"] for e in of(events, "state")]
    # ask_party_size and ask_day were skipped: the caller said both in the first turn
    assert states == [
        "welcome",
        "check_day",
        "ask_time",
        "confirm_booking",
        "booked",
        "anything_else",
        "goodbye",
    ]


def test_booking_is_committed_before_the_bot_says_so(booking_call):
    tmp, _, events = booking_call
    (outcome,) = of(events, "outcome")
    assert outcome["kind"] == "booking" and outcome["turn"] == 3
    assert outcome["slots"] == {
        "party_size": 4,
        "day": "friday",
        "day_date": FRIDAY.isoformat(),
        "time": "19:30",
    }
    done = next(e for e in of(events, "reply") if e["turn"] == 3)
    assert events.index(outcome) < events.index(done)
    listed = subprocess.run(
        [sys.executable, "-m", "voicebot", "outcomes", "--json", "--db", str(tmp / "outcomes.db")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    rows = json.loads(listed.stdout)
    assert [(r["kind"], r["slots"], r["call_id"]) for r in rows] == [
        ("booking", outcome["slots"], events[0]["call_id"])
    ]


def test_the_bot_hangs_up_after_its_goodbye_is_played(booking_call):
    _, _, events = booking_call
    ended = events[-1]
    assert ended["type"] == "call_ended" and ended["reason"] == "bot_hangup"
    goodbye_played = [e for e in of(events, "playback_stopped") if e["turn"] == 4]
    assert goodbye_played and goodbye_played[-1]["played_ms"] > 1000
    assert ended["t"] >= goodbye_played[-1]["t"]
    assert not of(events, "error") and not of(events, "no_match")


def test_silence_reprompts_then_hangs_up(tmp_path):
    """Opening hours, then the caller goes quiet: re-prompt after 7 s, then goodbye."""
    caller = tmp_path / "caller.wav"
    answer = "On Monday we are closed. Is there anything else I can do for you?"
    build_caller(caller, [("Are you open on Monday?", "")], tail=40.0)
    code, events = run_bot(tmp_path, caller, tmp_path / "o.db", "--fast")
    assert code == 0
    (intent,) = of(events, "intent")
    assert intent["name"] == "opening_hours" and intent["slots"] == {"day": "monday"}
    replies = [e["text"] for e in of(events, "reply")]
    assert replies == [
        GREETING,
        answer,
        "Are you still there? Is there anything else I can do for you?",
        "I cannot hear you, so I will hang up now. Please call again. Goodbye!",
    ]
    stops = of(events, "playback_stopped")
    timeouts = of(events, "silence_timeout")
    assert [e["count"] for e in timeouts] == [1, 2]
    for timeout, prompt_end in zip(timeouts, stops[1:3], strict=True):
        assert timeout["t"] == pytest.approx(prompt_end["t"] + 7.0, abs=0.1)
    assert events[-1]["reason"] == "bot_hangup"
