"""The event schema (see docs/events.md), its emitter, and per-turn latency accounting.

Every event is a flat JSON object with ``type``, ``call_id`` and ``t`` (seconds
since call start on the call clock). The same events go to the JSONL file of
``voicebot run``, to the demo page and to the benchmarks.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from voicebot.clock import Clock

log = logging.getLogger(__name__)

EVENT_TYPES = frozenset(
    {
        "call_started",
        "speech_started",
        "speech_stopped",
        "transcript",
        "intent",
        "no_match",
        "state",
        "silence_timeout",
        "flow_error",
        "transfer",
        "outcome",
        "reply",
        "tts_first_audio",
        "playback_started",
        "playback_stopped",
        "interrupted",
        "turn",
        "error",
        "call_ended",
    }
)

Event = dict[str, Any]
Listener = Callable[[Event], None]


class EventBus:
    """Stamps events with call id and time and hands them to listeners.

    Listeners are plain callables run on the loop; they must be quick (append
    to a list, enqueue for a socket). A failing listener is logged, never
    allowed to break the call.
    """

    def __init__(self, call_id: str, clock: Clock) -> None:
        self.call_id = call_id
        self.clock = clock
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def emit(self, type: str, t: float | None = None, **fields: Any) -> Event:
        if type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {type!r}")
        event: Event = {
            "type": type,
            "call_id": self.call_id,
            "t": round(self.clock.now() if t is None else t, 4),
            **fields,
        }
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:
                log.exception("event listener failed on %s", type)
        return event


class JsonlWriter:
    """Writes one JSON event per line, flushed per event so a crash loses nothing."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def __call__(self, event: Event) -> None:
        self._stream.write(json.dumps(event, ensure_ascii=False) + "\n")
        self._stream.flush()


def _ms(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round((b - a) * 1000, 1)


@dataclass(slots=True)
class TurnTimes:
    """Timestamps (call clock, seconds) of one caller turn's way to the bot's answer."""

    turn: int
    last_voiced: float | None = None  # caller's speech ended
    end_of_turn: float | None = None  # VAD decided the turn is over
    final_transcript: float | None = None
    reply_text: float | None = None
    tts_first_audio: float | None = None
    first_playback: float | None = None
    reported: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def as_event(self) -> dict[str, Any]:
        return {
            "turn": self.turn,
            "endpoint_ms": _ms(self.last_voiced, self.end_of_turn),
            "asr_ms": _ms(self.end_of_turn, self.final_transcript),
            "dialog_ms": _ms(self.final_transcript, self.reply_text),
            "tts_ms": _ms(self.reply_text, self.tts_first_audio),
            "playback_ms": _ms(self.tts_first_audio, self.first_playback),
            "voice_to_voice_ms": _ms(self.last_voiced, self.first_playback),
            **self.extra,
        }


class TurnLedger:
    """Collects each turn's timestamps and emits one ``turn`` event per answered turn."""

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus
        self.turns: dict[int, TurnTimes] = {}

    def get(self, turn: int) -> TurnTimes:
        times = self.turns.get(turn)
        if times is None:
            times = self.turns[turn] = TurnTimes(turn)
        return times

    def mark(self, turn: int, stage: str, t: float) -> None:
        times = self.get(turn)
        if getattr(times, stage) is None:
            setattr(times, stage, t)
        if stage == "first_playback" and not times.reported:
            times.reported = True
            self.bus.emit("turn", t=t, **times.as_event())
