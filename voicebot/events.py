"""The events of a call (one typed definition each, see docs/events.md), their bus, and
per-turn latency accounting.

Every event is a frozen dataclass registered under its wire name. On the bus it
becomes a flat JSON object (an ``EventRecord``): ``type``, ``call_id`` and ``t``
(seconds since call start on the call clock), then the event's fields in the
order they are defined; an *optional* field is left out while it holds its
default. The same records go to the JSONL file of ``voicebot run``, to the demo
page and to the benchmarks.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, TextIO, TypeVar

from voicebot.clock import Clock

log = logging.getLogger(__name__)

EventRecord = dict[str, Any]
"""An event as it is written and sent: a flat JSON-ready object."""
Listener = Callable[[EventRecord], None]

_E = TypeVar("_E", bound="Event")
_T = TypeVar("_T")
EVENTS: dict[str, type[Event]] = {}
"""Every event class by its wire name (``type``)."""


@dataclass(frozen=True, slots=True)
class Event:
    """Base of every event: the fields of its record after ``type``, ``call_id`` and ``t``."""

    event_type: ClassVar[str]

    def fields(self) -> dict[str, Any]:
        """The record's own fields, in definition order, optional ones left out at their default."""
        out: dict[str, Any] = {}
        for name, key, optional, default in _layout(type(self)):
            value = getattr(self, name)
            if optional and value == default:
                continue
            out[key] = value
        return out


_Layout = tuple[tuple[str, str, bool, Any], ...]
_LAYOUTS: dict[type[Event], _Layout] = {}


def _layout(cls: type[Event]) -> _Layout:
    """(attribute, record key, optional, default) per field of ``cls``, computed once."""
    layout = _LAYOUTS.get(cls)
    if layout is None:
        rows = []
        for f in dataclasses.fields(cls):
            default = (
                f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            )
            rows.append((f.name, record_key(f), is_optional(f), default))
        layout = _LAYOUTS[cls] = tuple(rows)
    return layout


def record_key(f: dataclasses.Field[Any]) -> str:
    """A field's name in the record (``from`` is a keyword in Python: ``from_``)."""
    return str(f.metadata.get("key", f.name))


def is_optional(f: dataclasses.Field[Any]) -> bool:
    """Whether a field is left out of the record while it holds its default."""
    return bool(f.metadata.get("optional"))


def _optional(default: _T) -> _T:
    """A field that is left out of the record while it holds ``default``."""
    return field(default=default, metadata={"optional": True})


def _event(event_type: str) -> Callable[[type[_E]], type[_E]]:
    def register(cls: type[_E]) -> type[_E]:
        if event_type in EVENTS:
            raise ValueError(f"event type {event_type!r} defined twice")
        cls.event_type = event_type
        EVENTS[event_type] = cls
        return cls

    return register


# --- the pipeline ------------------------------------------------------------


@_event("call_started")
@dataclass(frozen=True, slots=True)
class CallStartedEvent(Event):
    """The call began (``t`` = 0)."""

    transport: str = "file"  # file | webrtc | sip: how the caller is connected


@_event("error")
@dataclass(frozen=True, slots=True)
class ErrorEvent(Event):
    """A stage raised; the call then ends with reason ``error``."""

    stage: str
    message: str
    kind: str


@_event("call_ended")
@dataclass(frozen=True, slots=True)
class CallEndedEvent(Event):
    """Always the last event of a call."""

    reason: str
    worst_loop_lag_ms: float
    loop: str
    drops: dict[str, int]
    flushed: dict[str, int]


# --- caller audio and speech recognition ---------------------------------------


@_event("speech_started")
@dataclass(frozen=True, slots=True)
class SpeechStartedEvent(Event):
    """The caller's turn started (VAD)."""

    turn: int


@_event("speech_stopped")
@dataclass(frozen=True, slots=True)
class SpeechStoppedEvent(Event):
    """The VAD decided the caller's turn is over."""

    turn: int
    last_voiced: float


@_event("transcript")
@dataclass(frozen=True, slots=True)
class TranscriptEvent(Event):
    """A partial or final transcript of a caller turn (finals carry the optional fields)."""

    final: bool
    text: str
    turn: int
    language: str | None = _optional(None)
    decode_ms: float | None = _optional(None)
    engine: str | None = _optional(None)


@_event("dtmf")
@dataclass(frozen=True, slots=True)
class DtmfEvent(Event):
    """The caller pressed a key on the phone's keypad."""

    digit: str
    turn: int
    via: str  # rtp (RFC 4733) | info (SIP INFO) | webrtc | stream (a provider's media stream)


# --- the dialog ------------------------------------------------------------------


@_event("intent")
@dataclass(frozen=True, slots=True)
class IntentEvent(Event):
    """The caller's utterance matched an intent the current state accepts."""

    turn: int
    name: str
    slots: dict[str, Any]
    confidence: float
    matcher: str
    text: str
    interim: bool = _optional(False)
    mentioned: dict[str, Any] = field(default_factory=dict, metadata={"optional": True})
    # values heard from words the recogniser was unsure of: not taken, asked for again
    unsure: dict[str, Any] = field(default_factory=dict, metadata={"optional": True})


@_event("no_match")
@dataclass(frozen=True, slots=True)
class NoMatchEvent(Event):
    """Nothing the current state accepts matched."""

    turn: int
    text: str
    state: str
    count: int
    reason: str | None = _optional(None)


@_event("state")
@dataclass(frozen=True, slots=True)
class StateEvent(Event):
    """The flow entered a state."""

    turn: int
    from_: str | None = field(metadata={"key": "from"})
    to: str
    resumed: bool = _optional(False)


@_event("silence_timeout")
@dataclass(frozen=True, slots=True)
class SilenceTimeoutEvent(Event):
    """The caller said nothing for the state's timeout."""

    turn: int
    state: str
    count: int


@_event("flow_error")
@dataclass(frozen=True, slots=True)
class FlowErrorEvent(Event):
    """A hook or an outcome commit failed."""

    turn: int
    state: str
    message: str
    kind: str
    goto: str | None = _optional(None)


@_event("transfer")
@dataclass(frozen=True, slots=True)
class TransferEvent(Event):
    """A ``transfer`` state was entered."""

    turn: int
    target: str
    slots: dict[str, Any]
    apology: str = _optional("")  # what the bot says if the transport cannot transfer


@_event("transfer_result")
@dataclass(frozen=True, slots=True)
class TransferResultEvent(Event):
    """A SIP call's REFER to the transfer target came to an end (after ``call_ended``)."""

    target: str
    result: str  # transferred | refused | failed | timeout | hangup
    status: int = _optional(0)  # the REFER's final response or the NOTIFY's sipfrag status


@_event("dial")
@dataclass(frozen=True, slots=True)
class DialEvent(Event):
    """A call the bot placed (``POST /calls``) was answered, or why not."""

    to: str
    status: str  # answered | busy | no_answer | failed | cancelled
    sip_status: int = _optional(0)  # the INVITE's final response (0: none came)


@_event("outcome")
@dataclass(frozen=True, slots=True)
class OutcomeEvent(Event):
    """A transaction was committed durably to the outcome store."""

    turn: int
    kind: str
    slots: dict[str, Any]
    id: int | None
    created_at: str


@_event("reply")
@dataclass(frozen=True, slots=True)
class ReplyEvent(Event):
    """The bot's reply text exists."""

    text: str
    turn: int


# --- the bot's voice ---------------------------------------------------------------


@_event("tts_first_audio")
@dataclass(frozen=True, slots=True)
class TtsFirstAudioEvent(Event):
    """The first synthesized chunk of a reply."""

    turn: int


@_event("playback_started")
@dataclass(frozen=True, slots=True)
class PlaybackStartedEvent(Event):
    """The first reply frame was handed to the transport."""

    turn: int


@_event("playback_stopped")
@dataclass(frozen=True, slots=True)
class PlaybackStoppedEvent(Event):
    """The reply finished playing."""

    turn: int
    played_ms: int


@_event("playback_held")
@dataclass(frozen=True, slots=True)
class PlaybackHeldEvent(Event):
    """The caller may be barging in: the bot's audio is held until the VAD decides."""

    turn: int


@_event("playback_resumed")
@dataclass(frozen=True, slots=True)
class PlaybackResumedEvent(Event):
    """It was no barge-in (a click, a cough): the held reply plays on."""

    turn: int
    held_ms: int


@_event("interrupted")
@dataclass(frozen=True, slots=True)
class InterruptedEvent(Event):
    """Barge-in stopped the reply."""

    turn: int
    heard_ms: int
    dropped_ms: int
    text: str


@_event("turn")
@dataclass(frozen=True, slots=True)
class TurnEvent(Event):
    """Where one answered turn's time went, in milliseconds (``None``: the stage did not happen)."""

    turn: int
    endpoint_ms: float | None
    asr_ms: float | None
    dialog_ms: float | None
    tts_ms: float | None
    playback_ms: float | None
    voice_to_voice_ms: float | None


EVENT_TYPES = frozenset(EVENTS)


# --- the bus -------------------------------------------------------------------------


class EventBus:
    """Stamps events with call id and time and hands their records to listeners.

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

    def emit(self, event: Event, t: float | None = None) -> EventRecord:
        record: EventRecord = {
            "type": event.event_type,
            "call_id": self.call_id,
            "t": round(self.clock.now() if t is None else t, 4),
            **event.fields(),
        }
        for listener in self._listeners:
            try:
                listener(record)
            except Exception:
                log.exception("event listener failed on %s", event.event_type)
        return record


class JsonlWriter:
    """Writes one JSON event per line, flushed per event so a crash loses nothing."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def __call__(self, event: EventRecord) -> None:
        self._stream.write(json.dumps(event, ensure_ascii=False) + "\n")
        self._stream.flush()


# --- latency accounting ----------------------------------------------------------------


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

    def as_event(self) -> TurnEvent:
        return TurnEvent(
            turn=self.turn,
            endpoint_ms=_ms(self.last_voiced, self.end_of_turn),
            asr_ms=_ms(self.end_of_turn, self.final_transcript),
            dialog_ms=_ms(self.final_transcript, self.reply_text),
            tts_ms=_ms(self.reply_text, self.tts_first_audio),
            playback_ms=_ms(self.tts_first_audio, self.first_playback),
            voice_to_voice_ms=_ms(self.last_voiced, self.first_playback),
        )


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
            self.bus.emit(times.as_event(), t=t)
