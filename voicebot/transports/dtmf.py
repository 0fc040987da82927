"""DTMF, the phone keypad: RFC 4733 telephone-events, SIP INFO bodies, and how any
transport hands a key press to the call graph (``press``).

A key press is a caller turn of its own, like typed text: ``press`` numbers it,
emits the ``dtmf`` event, interrupts the bot when its prompt allows barge-in
and queues a ``frames.Dtmf`` for the dialog. What the digits mean (a menu
choice, digits of a slot, ``#`` ending the entry) is the dialog's business.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

from voicebot.events import DtmfEvent
from voicebot.frames import DTMF_KEYS as KEYS
from voicebot.frames import Dtmf, Interrupt
from voicebot.graph import Source

INFO_TYPES = ("application/dtmf-relay", "application/dtmf")
_SIGNAL = re.compile(r"^\s*Signal\s*=\s*(\S+)", re.IGNORECASE | re.MULTILINE)


def press(source: Source, digit: str, via: str) -> bool:
    """Hand one key press to the call ``source`` feeds (any transport); False when the key
    is not a keypad key or the source is not connected yet. ``via`` says how it came:
    ``rtp`` (RFC 4733), ``info`` (SIP INFO), ``webrtc``."""
    if len(digit) != 1 or digit.upper() not in KEYS or source.outbox is None:
        return False
    digit = digit.upper()
    ctx = source.ctx
    ctx.state.turn += 1
    turn = ctx.state.turn
    now = ctx.now()
    ctx.bus.emit(DtmfEvent(digit=digit, turn=turn, via=via), t=now)
    if ctx.state.bot_speaking and not ctx.state.barge_in:
        return True  # the prompt must be heard: the key is seen, not acted on
    if ctx.state.bot_speaking:
        source.receive_control(Interrupt("dtmf", now))
    ctx.ledger.mark(turn, "final_transcript", now)
    return source.outbox.put_nowait(Dtmf(digit, turn, now))


def info_digit(content_type: str, body: str) -> str | None:
    """The key of a SIP INFO body: ``application/dtmf-relay`` ("Signal=5\\r\\nDuration=160")
    or ``application/dtmf`` (the key alone); None if it carries none."""
    kind = content_type.split(";")[0].strip().lower()
    if kind == "application/dtmf-relay":
        found = _SIGNAL.search(body)
        value = found.group(1) if found else ""
    elif kind == "application/dtmf":
        value = body.strip()
    else:
        return None
    if value.isdigit() and 10 <= int(value) < len(KEYS):  # some phones send the event code
        return KEYS[int(value)]
    return value.upper() if len(value) == 1 and value.upper() in KEYS else None


@dataclass(slots=True)
class _Event:
    timestamp: int
    digit: str
    reported: bool = False


class TelephoneEvents:
    """Turns a stream's RFC 4733 packets into key presses, one per event.

    All packets of one event share its RTP timestamp; the last ones carry the
    end bit and are sent three times. A key is reported on the first end packet
    of its event (the others are the same event, counted once), or - if every
    end packet was lost - when the next event begins.
    """

    def __init__(self) -> None:
        self._current: _Event | None = None

    def feed(self, payload: bytes, timestamp: int) -> list[str]:
        """The keys this packet completes (usually none or one)."""
        if len(payload) < 4:
            return []
        code, flags, _duration = struct.unpack("!BBH", payload[:4])
        if code >= len(KEYS):
            return []  # tones and line events (RFC 4734): not keys
        out: list[str] = []
        current = self._current
        if current is None or current.timestamp != timestamp:
            if current is not None and not current.reported:
                out.append(current.digit)  # its end packets never came
            current = self._current = _Event(timestamp, KEYS[code])
        if flags & 0x80 and not current.reported:
            current.reported = True
            out.append(current.digit)
        return out
