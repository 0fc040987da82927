"""What the stages of one call share: ids, clock, events, turn ledger, live state."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from voicebot.clock import Clock
from voicebot.events import EventBus, TurnLedger
from voicebot.runtime import LoopLagMonitor


@dataclass
class CallState:
    """Mutable facts one stage learns and another needs, kept in one place.

    Playback owns ``bot_speaking`` and ``barge_in``; the VAD reads them to
    decide whether caller speech is a barge-in, and owns ``hold_playback``. The
    dialog owns ``asr_context`` and ``asr_hint``.
    """

    bot_speaking: bool = False
    barge_in: bool = True
    # The VAD holds the bot's audio while a possible barge-in is being confirmed
    # (``vad.hold_on_onset``); playback sends nothing while it is set.
    hold_playback: bool = False
    turn: int = 0
    # What the bot last asked, for the recogniser to read the answer in its light; the
    # dialog stage writes it, the ASR stage reads it when a turn starts.
    asr_context: str | None = None
    # How callers answer that question ("Half past seven. Quarter to eight. 8 pm."), for
    # ``asr.context: hints``; the dialog stage writes it with ``asr_context``.
    asr_hint: str | None = None


@dataclass
class CallContext:
    clock: Clock
    call_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    bus: EventBus = field(init=False)
    ledger: TurnLedger = field(init=False)
    lag: LoopLagMonitor = field(default_factory=LoopLagMonitor)
    state: CallState = field(default_factory=CallState)
    transport: str = "file"  # how the caller is connected: "file", "webrtc", "sip"

    def __post_init__(self) -> None:
        self.bus = EventBus(self.call_id, self.clock)
        self.ledger = TurnLedger(self.bus)

    def now(self) -> float:
        return self.clock.now()
