"""DTMF: RFC 4733 packets and SIP INFO bodies to keys, the SDP answer, the RTP stream,
``dtmf`` keys in flow files, and key presses in the dialog stage (menu, digit entry,
barge-in). The restaurant bot's keyed conversations are in intents/tests/restaurant_*.yaml;
a real phone (baresip) pressing keys is in test_sip_call.py."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import struct
from pathlib import Path
from typing import Any

import pytest
from aiortc.rtp import RtpPacket
from aiosipua import parse_sdp

from tests.dialog.test_flow import SHOP, SILENCE, KeywordMatcher, Speaker, make_bot
from tests.support.paths import RESTAURANT_INTENTS
from voicebot.clock import FastClock
from voicebot.context import CallContext
from voicebot.dialog.bot import check_files
from voicebot.dialog.outcomes import MemoryOutcomeStore
from voicebot.dialog.stage import FlowDialog
from voicebot.events import SpeechStartedEvent, SpeechStoppedEvent
from voicebot.frames import AudioFrame, Dtmf, Transcript
from voicebot.graph import Pipeline, Source
from voicebot.nlu.slots import IntegerSlot
from voicebot.transports.dtmf import TelephoneEvents, info_digit, press
from voicebot.transports.sip.codecs import PCMU, RtpCodec
from voicebot.transports.sip.rtp import RtpStream
from voicebot.transports.sip.sdp import answer_offer
from voicebot.transports.webrtc import EventBridge


def event(code: int, end: bool = False, duration: int = 160) -> bytes:
    return struct.pack("!BBH", code, (0x80 if end else 0) | 10, duration)


# --- RFC 4733 and SIP INFO ----------------------------------------------------------------


def test_one_key_per_event_and_retransmitted_end_packets_count_once() -> None:
    events = TelephoneEvents()
    keys: list[str] = []
    for ts, code in ((1000, 5), (3000, 11)):  # "5", then "#"
        for n in range(1, 6):
            keys += events.feed(event(code, duration=160 * n), ts)
        for _ in range(3):  # the end packet, sent three times
            keys += events.feed(event(code, end=True, duration=960), ts)
    assert keys == ["5", "#"]


def test_an_event_whose_end_packets_were_lost_counts_when_the_next_begins() -> None:
    events = TelephoneEvents()
    assert events.feed(event(1), 1000) == []
    assert events.feed(event(1), 1000) == []
    assert events.feed(event(10), 2000) == ["1"]  # "*" begins: "1" was a key
    assert events.feed(event(10, end=True), 2000) == ["*"]
    assert events.feed(event(16), 3000) == []  # a tone (RFC 4734), not a key
    assert events.feed(b"\x01", 4000) == []  # too short


@pytest.mark.parametrize(
    ("content_type", "body", "key"),
    [
        ("application/dtmf-relay", "Signal=5\r\nDuration=160\r\n", "5"),
        ("application/dtmf-relay", "Signal= #\r\nDuration=250\r\n", "#"),
        ("application/dtmf-relay", "Signal=11\r\n", "#"),  # the event code, as some phones do
        ("Application/DTMF-Relay; charset=utf-8", "signal=*\r\n", "*"),
        ("application/dtmf", "7", "7"),
        ("application/dtmf", "a\r\n", "A"),
        ("application/dtmf-relay", "Duration=160\r\n", None),
        ("application/dtmf-relay", "Signal=X\r\n", None),
        ("text/plain", "Signal=5", None),
    ],
)
def test_sip_info_bodies(content_type: str, body: str, key: str | None) -> None:
    assert info_digit(content_type, body) == key


OFFER = (
    "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"
    "m=audio 4000 RTP/AVP 0 {dtmf}\r\n{rtpmap}a=sendrecv\r\n"
)


def test_the_answer_takes_telephone_event_under_the_offers_payload_type() -> None:
    offer = OFFER.format(dtmf="96", rtpmap="a=rtpmap:96 telephone-event/8000\r\n")
    answer = answer_offer(parse_sdp(offer), "127.0.0.1", 30000)
    assert answer.dtmf_payload_type == 96
    audio = answer.sdp.audio
    assert audio is not None and audio.formats == ["0", "96"]
    assert "96 telephone-event/8000" in audio.attributes["rtpmap"]
    plain = answer_offer(parse_sdp(OFFER.format(dtmf="", rtpmap="")), "127.0.0.1", 30000)
    assert plain.dtmf_payload_type is None
    assert plain.sdp.audio is not None and plain.sdp.audio.formats == ["0"]


async def test_the_rtp_stream_reports_telephone_events_apart_from_the_audio() -> None:
    codec = RtpCodec(PCMU)
    stream = await RtpStream.bind("127.0.0.1", codec, ("192.0.2.10", 4000), jitter_ms=20)
    stream.dtmf_payload_type = 101
    keys: list[str] = []
    stream.on_dtmf = keys.append
    try:
        for seq, payload in enumerate([event(4), event(4), *[event(4, end=True)] * 3]):
            packet = RtpPacket(101, sequence_number=seq, timestamp=8000, ssrc=7, payload=payload)
            stream.datagram_received(packet.serialize(), ("127.0.0.1", 5555))
        assert keys == ["4"]
        assert stream.packets_in == 0 and stream.track._frames.empty()  # no audio from them
    finally:
        stream.close()


def test_the_data_channel_takes_keys() -> None:
    pressed: list[str] = []

    def on_dtmf(key: str) -> bool:
        pressed.append(key)
        return key in "0123456789*#"

    bridge = EventBridge({}, on_hangup=lambda: None, on_text=lambda _: True, on_dtmf=on_dtmf)
    bridge._on_message(json.dumps({"type": "dtmf", "digit": "5"}))
    assert pressed == ["5"] and len(bridge._pending) == 1  # only the hello is queued
    bridge._on_message(json.dumps({"type": "dtmf", "digit": "X"}))
    bridge._on_message(json.dumps({"type": "dtmf", "digit": 5}))
    errors = [json.loads(m) for m in list(bridge._pending)[1:]]
    assert [e["error"] for e in errors] == ["key not accepted"] * 2
    assert pressed == ["5", "X"]


async def test_press_takes_keypad_keys_only() -> None:
    ctx = CallContext(FastClock())
    source = Keypad([], 0.0)
    pipeline = Pipeline(ctx)
    pipeline.connect(source, Speaker(0.1))
    assert not press(source, "X", "webrtc") and not press(source, "12", "webrtc")
    assert press(source, "a", "webrtc")  # the keypad's A
    assert source.outbox is not None
    frame = source.outbox.get_nowait()
    assert isinstance(frame, Dtmf) and frame.digit == "A" and frame.turn == 1


# --- dtmf keys in flow files ----------------------------------------------------------------

FLOW = """\
flow: keys
languages: [en]
start: welcome
global:
  human_agent: agent
states:
  welcome:
    ask: "How can I help you?"
    on: {book_table: ask_party_size}
    dtmf: {"1": book_table, "0": human_agent, "2": opening_hours, "12": book_table, "*": nope}
  ask_party_size:
    collect: party_size
    ask: "For how many people?"
    dtmf: {"9": human_agent, "#": human_agent}
    next: done
  done: {say: "Done.", end: true}
  agent: {say: "Connecting.", transfer: desk}
"""


def test_dtmf_keys_are_checked_with_their_place(tmp_path: Path) -> None:
    path = tmp_path / "keys_flow.yaml"
    path.write_text(FLOW)
    _, _, diags = check_files([path], [RESTAURANT_INTENTS])
    found = {(d.code, d.line, d.col) for d in diags}
    lines = FLOW.splitlines()

    def at(line: int, text: str) -> tuple[int, int]:
        return line, lines[line - 1].index(text) + 1

    assert ("E418", *at(10, '"12"')) in found  # not one key
    assert ("E405", *at(10, "nope")) in found  # no such intent
    assert ("W405", *at(10, "opening_hours")) in found  # not handled in welcome
    assert ("E412", *at(14, '"9"')) in found  # party_size is keyed in here
    # "1", "0" and "#" are fine (# ends an entry, but alone it may be a menu key)
    assert len(diags) == 4, diags


# --- keys in the dialog stage ---------------------------------------------------------------

KEYED_SHOP = SHOP.replace(
    """    on: {order: ask_qty, hours: hours, slow: slow}
""",
    """    on: {order: ask_qty, hours: hours, slow: slow}
    dtmf: {"1": order, "0": agent}
""",
).replace(
    """    confirm: {affirm: done, deny: change}
""",
    """    confirm: {affirm: done, deny: change}
    dtmf: {"1": affirm}
""",
)


class Keypad(Source):
    """Presses keys (``press``, as a transport does) and says lines at given times, with a
    silent audio frame every 20 ms so the fast clock moves in ticks."""

    def __init__(self, script: list[tuple[float, str, str]], end: float) -> None:
        super().__init__()
        self.script = script
        self.end = end

    async def _wait(self, until: float) -> None:
        clock = self.ctx.clock
        while clock.now() < until:
            await clock.sleep_until(min(until, clock.now() + 0.02))
            await self.push(AudioFrame(SILENCE, 16000, 1, clock.now()))

    async def produce(self) -> None:
        for at, kind, value in self.script:
            await self._wait(at)
            if kind == "key":
                assert press(self, value, "rtp")
                continue
            self.ctx.state.turn += 1
            self.ctx.bus.emit(SpeechStartedEvent(turn=self.ctx.state.turn))
            self.ctx.bus.emit(SpeechStoppedEvent(turn=self.ctx.state.turn, last_voiced=at))
            await self.push(Transcript(value, True, self.ctx.state.turn))
        await self._wait(self.end)


async def keyed_call(
    tmp_path: Path, script: list[tuple[float, str, str]], end: float
) -> tuple[list[dict[str, Any]], list[tuple[float, str]]]:
    bot = dataclasses.replace(make_bot(tmp_path, KEYED_SHOP), keyed={"qty": IntegerSlot(max=99)})
    ctx = CallContext(FastClock())
    pipeline = Pipeline(ctx)
    dialog = FlowDialog(bot, KeywordMatcher(), MemoryOutcomeStore(), hang_up=pipeline.hang_up)
    speaker = Speaker(0.5)  # half a second a word
    pipeline.connect(Keypad(script, end), dialog)
    pipeline.connect(dialog, speaker)
    events: list[dict[str, Any]] = []
    ctx.bus.subscribe(events.append)
    await asyncio.wait_for(pipeline.run(), 30)
    return events, speaker.said


async def test_a_key_barges_in_and_a_pause_ends_the_digits(tmp_path: Path) -> None:
    # "Hi. What do you want?" plays 0-2.5 s: "1" at 1.0 cuts it and orders; "How many?"
    # plays 1.0-2.0; "4" at 3.0, then nothing: 3 s later the entry is complete.
    events, said = await keyed_call(tmp_path, [(1.0, "key", "1"), (3.0, "key", "4")], 9.0)
    assert [text for _, text in said] == ["Hi. What do you want?", "How many?", "Which day?"]
    (interrupted,) = [e for e in events if e["type"] == "interrupted"]
    assert interrupted["t"] == pytest.approx(1.0, abs=0.05)
    assert said[1][0] == pytest.approx(1.0, abs=0.05)
    assert said[2][0] == pytest.approx(6.0, abs=0.1)  # the inter-digit timeout
    keys = [(e["digit"], e["turn"], e["via"]) for e in events if e["type"] == "dtmf"]
    assert keys == [("1", 1, "rtp"), ("4", 2, "rtp")]
    intents = [(e["name"], e["slots"], e["matcher"]) for e in events if e["type"] == "intent"]
    assert intents == [("order", {}, "dtmf"), ("inform", {"qty": 4}, "dtmf")]
    assert not [e for e in events if e["type"] == "silence_timeout"]


async def test_hash_ends_the_entry_and_keys_over_a_no_barge_in_prompt_are_ignored(
    tmp_path: Path,
) -> None:
    script = [
        (3.0, "key", "1"),  # after the greeting
        (4.5, "key", "2"),
        (4.7, "key", "#"),  # "Which day?" at once
        (6.0, "say", "day=friday"),  # "two on Friday, right?" (barge_in: false) 6.0-8.0
        (6.5, "key", "1"),  # over it: seen, not acted on
        (9.0, "key", "1"),  # after it: yes
    ]
    events, said = await keyed_call(tmp_path, script, 14.0)
    texts = [text for _, text in said]
    assert texts[:3] == ["Hi. What do you want?", "How many?", "Which day?"]
    assert said[2][0] == pytest.approx(4.7, abs=0.05)
    assert texts[3] == "two on Friday, right?"
    assert texts[4].startswith("Ordered two for Friday.")
    assert said[4][0] == pytest.approx(9.0, abs=0.05)
    assert len([e for e in events if e["type"] == "dtmf"]) == 5  # every key is reported
    (outcome,) = [e for e in events if e["type"] == "outcome"]
    assert outcome["slots"]["qty"] == 2 and outcome["turn"] == 6
    assert not [e for e in events if e["type"] == "interrupted"]
