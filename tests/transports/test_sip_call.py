"""Phone calls over SIP/RTP: codecs, offer/answer, the RTP stream, and a real SIP phone.

The phone is baresip (nobody here wrote it): it dials the server over UDP on
127.0.0.1 with a synthesized WAV as its microphone (``aufile``), records what
it hears (``sndfile``) and hangs up when the WAV ends; with its ``stdio`` module,
keys written to its stdin are pressed (sent as RFC 4733 telephone-events). The server runs in this
process (``create_app`` with SIP settings, its lifespan started as ``voicebot
serve`` starts it), so the test reads the calls' events as they are emitted.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiortc.rtp import RtpPacket
from aiosipua import IncomingCall, SipRequest, SipUAC, SipUAS, build_sdp, parse_sdp

from tests.support.dates import next_friday
from tests.support.paths import ECHO_PIPELINE, RESTAURANT_PIPELINE
from tests.support.sip import (
    BARESIP,
    RTP_TIMEOUT,
    ended,
    heard,
    needs_baresip,
    of_type,
    phone,
    sip_server,
    until,
    write_wav,
)
from tests.support.speech import say, silence
from voicebot.asr.whisper import WhisperEngine
from voicebot.server.child import ChildServer, free_port
from voicebot.transports.sip.codecs import G722, PCMA, PCMU, RtpCodec
from voicebot.transports.sip.rtp import RtpStream
from voicebot.transports.sip.sdp import OfferNotAcceptable, answer_offer
from voicebot.transports.sip.udp import UdpTransport

# --- codecs, SDP, RTP ------------------------------------------------------------------


def tone(rate: int, seconds: float = 0.2) -> np.ndarray:
    t = np.arange(round(rate * seconds)) / rate
    return (8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)


@pytest.mark.parametrize("spec", [PCMU, PCMA, G722])
def test_codecs_round_trip_a_tone(spec) -> None:
    codec = RtpCodec(spec)
    pcm = tone(spec.sample_rate)
    n = codec.samples_per_frame
    payloads = [codec.encode(pcm[k : k + n]) for k in range(0, len(pcm), n)]
    assert {len(p) for p in payloads} == {160}  # 20 ms: 160 bytes for all three (64 kbit/s)
    out = np.concatenate([f.to_ndarray().reshape(-1) for p in payloads for f in codec.decode(p)])
    assert len(out) == len(pcm)
    lag = 22 if spec is G722 else 0  # G.722's filter bank delays by 22 samples
    corr = np.corrcoef(out[200 + lag :], pcm[200 : len(pcm) - lag])[0, 1]
    assert corr > 0.99, (spec.name, corr)


OFFER = """v=0
o=- 1 1 IN IP4 192.0.2.10
s=-
c=IN IP4 192.0.2.10
t=0 0
m=audio 4000 RTP/AVP {formats} 101
a=rtpmap:101 telephone-event/8000
a={direction}
"""


def offer(formats: str = "0 8 9", direction: str = "sendrecv"):
    return parse_sdp(OFFER.format(formats=formats, direction=direction).replace("\n", "\r\n"))


def test_the_answer_prefers_wideband_then_mu_law() -> None:
    answer = answer_offer(offer("0 8 9"), "127.0.0.1", 30000)
    assert answer.codec is G722 and answer.remote == ("192.0.2.10", 4000)
    assert not answer.on_hold
    audio = answer.sdp.audio
    assert audio is not None and audio.port == 30000 and audio.formats[0] == "9"
    assert answer_offer(offer("8 0"), "127.0.0.1", 30000).codec is PCMU
    assert answer_offer(offer("8"), "127.0.0.1", 30000).codec is PCMA
    with pytest.raises(OfferNotAcceptable, match="no common codec"):
        answer_offer(offer("18"), "127.0.0.1", 30000)


def test_hold_is_read_from_the_offer() -> None:
    for direction in ("sendonly", "inactive"):
        answer = answer_offer(offer(direction=direction), "127.0.0.1", 30000)
        assert answer.on_hold
        assert answer.sdp.audio is not None
        assert answer.sdp.audio.direction == {"sendonly": "recvonly"}.get(direction, direction)


def packet(seq: int, pcm: np.ndarray, codec: RtpCodec, ssrc: int = 7) -> bytes:
    return RtpPacket(
        payload_type=codec.spec.payload_type,
        sequence_number=seq,
        timestamp=seq * codec.timestamp_step,
        ssrc=ssrc,
        payload=codec.encode(pcm),
    ).serialize()


async def test_rtp_stream_reorders_drops_late_packets_and_latches_the_sender() -> None:
    codec = RtpCodec(PCMU)
    stream = await RtpStream.bind("127.0.0.1", codec, ("192.0.2.10", 4000), jitter_ms=20)
    try:
        frame = tone(8000, 0.02)
        for seq in (1, 3, 2, 5, 4, 6):  # one frame out of order: put back in order
            stream.datagram_received(packet(seq, frame, codec), ("127.0.0.1", 5555))
        stream.datagram_received(packet(8, frame, codec), ("127.0.0.1", 5555))  # 7 is lost
        stream.datagram_received(packet(9, frame, codec), ("127.0.0.1", 5555))
        assert stream.remote == ("127.0.0.1", 5555)  # symmetric RTP: not the SDP's address
        released = []
        while not stream.track._frames.empty():
            f = await stream.track.recv()
            released.append(f.pts // codec.timestamp_step)
        # one frame is held back (the last, 9); 7 never came: skipped, not waited for
        assert released == [1, 2, 3, 4, 5, 6, 8]
        assert stream.packets_in == 8
    finally:
        stream.close()


# --- a real phone ----------------------------------------------------------------------


async def dial(
    confdir: Path,
    port: int,
    seconds: int,
    transport: str = "udp",
    keys: Sequence[tuple[float, str]] = (),
) -> str:
    """Run baresip: dial the bot, press ``keys`` (seconds after the call is established,
    keys), return its output once the call is over."""
    assert BARESIP is not None
    proc = await asyncio.create_subprocess_exec(
        BARESIP,
        "-f",
        str(confdir),
        "-e",
        f"/dial sip:bot@127.0.0.1:{port};transport={transport}",
        "-t",
        str(seconds),
        stdin=asyncio.subprocess.PIPE if keys else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=confdir,
    )
    assert proc.stdout is not None
    output = b""
    established = asyncio.Event()
    presser = asyncio.get_running_loop().create_task(_press(proc, keys, established))
    try:
        async with asyncio.timeout(seconds + 10):
            while chunk := await proc.stdout.read(4096):
                output += chunk
                if b"Call established" in output:
                    established.set()
                if b"terminated" in output:  # the call is over (either side hung up)
                    break
            await asyncio.sleep(0.5)  # let it answer a BYE and close its recording
    finally:
        presser.cancel()
        await asyncio.gather(presser, return_exceptions=True)
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        output += await proc.stdout.read()
        await proc.wait()
    return output.decode(errors="replace")


async def _press(
    proc: asyncio.subprocess.Process, keys: Sequence[tuple[float, str]], established: asyncio.Event
) -> None:
    """Type ``keys`` on baresip's console (its ``stdio`` module) at their times."""
    if not keys:
        return
    assert proc.stdin is not None
    await established.wait()
    start = asyncio.get_running_loop().time()
    for at, key in keys:
        await asyncio.sleep(max(0.0, start + at - asyncio.get_running_loop().time()))
        proc.stdin.write(key.encode())
        await proc.stdin.drain()


async def transcribe(pcm_16k: np.ndarray) -> str:
    result = await WhisperEngine("tiny.en").transcribe(pcm_16k.astype(np.float32) / 32768, "en")
    return " ".join(re.sub(r"[^a-z ]+", " ", result.text.lower()).split())


@needs_baresip
@pytest.mark.parametrize(
    ("codec", "rate", "transport"),
    [("PCMU", 8000, "udp"), ("G722", 16000, "udp"), ("PCMA", 8000, "tcp")],
)
async def test_baresip_calls_the_echo_bot_and_hangs_up(
    tmp_path: Path, codec: str, rate: int, transport: str
) -> None:
    said = "Hello, can you hear me? I would like to book a table."
    # 2.5 s before speaking, 6 s for the echo; at the WAV's end baresip hangs up
    microphone = np.concatenate([silence(2.5, rate), say(said, rate), silence(6.0, rate)])
    confdir = phone(tmp_path, write_wav(tmp_path / "caller.wav", microphone, rate), codec)
    async with sip_server(ECHO_PIPELINE) as (port, events, app):
        output = await dial(confdir, port, seconds=30, transport=transport)
        end = await ended(events)
        metrics = app.state.metrics.render()[0].decode()
        assert not app.state.manager.calls and not app.state.sip.calls  # all released
    assert "Call established" in output and "audio error (0,end of file)" in output, output[-2000:]
    assert f"Set audio decoder: {codec} {rate}Hz" in output  # the codec it offered was taken
    (started,) = of_type(events, "call_started")
    assert started["transport"] == "sip"
    finals = [t["text"] for t in of_type(events, "transcript") if t["final"]]
    assert len(finals) == 1 and "book a table" in finals[0].lower(), finals
    assert end["reason"] == "hangup"  # the caller's BYE
    assert 'voicebot_calls_total{reason="hangup",transport="sip"} 1.0' in metrics
    assert 'voicebot_turns_total{transport="sip"} 1.0' in metrics

    audio = heard(confdir)  # the echo came back over RTP, G.711 and all
    assert np.sqrt(np.mean(audio.astype(np.float32) ** 2)) > 100, "baresip heard silence"
    text = await transcribe(audio)
    assert "you said" in text and "book a table" in text, text


async def test_busy_hold_resume_and_the_rtp_timeout_hang_up() -> None:
    """A bare SIP client (aiosipua's UAC, no media): the call limit answers 503; a
    re-INVITE to ``sendonly`` holds the call (the bot stops sending, the RTP timeout
    waits), one back to ``sendrecv`` resumes it, and then, with still no RTP from the
    caller, the bot hangs up: the client gets our BYE."""
    transport = UdpTransport(local_addr=("127.0.0.1", 0))
    uac = SipUAC(transport)
    client = SipUAS(transport, uac=uac)  # routes responses to the UAC, answers our BYE
    byes: list[str] = []

    def on_bye(call: IncomingCall, request: SipRequest) -> None:
        byes.append(call.call_id)

    client.on_bye = on_bye
    await client.start()
    me = transport._udp_transport.get_extra_info("sockname")  # type: ignore[union-attr]
    uac.advertised_addr = client.advertised_addr = (me[0], me[1])

    def sdp(direction: str = "sendrecv") -> Any:
        offer = build_sdp("127.0.0.1", 40000, 0, "PCMU", session_id="1")
        audio = offer.audio
        assert audio is not None
        audio.attributes.pop("sendrecv", None)
        audio.attributes[direction] = []
        return offer

    try:
        async with sip_server(ECHO_PIPELINE, max_calls=1) as (port, events, app):
            server = ("127.0.0.1", port)
            first = uac.send_invite(
                "sip:caller@127.0.0.1", f"sip:bot@127.0.0.1:{port}", server, sdp()
            )
            await first.wait_answered(10)
            assert first.sdp_answer is not None and first.sdp_answer.audio is not None
            assert first.sdp_answer.audio.formats[0] == "0"  # PCMU, as offered
            second = uac.send_invite(
                "sip:other@127.0.0.1", f"sip:bot@127.0.0.1:{port}", server, sdp()
            )
            with pytest.raises(RuntimeError, match="503"):
                await second.wait_answered(10)
            (call,) = app.state.sip.calls.values()
            assert call.stream is not None and call.stream.sending

            uac.send_reinvite(first.dialog, sdp("sendonly"), server)
            await until(lambda: call.on_hold, 5)
            assert not call.stream.sending
            await asyncio.sleep(RTP_TIMEOUT + 1.5)  # on hold: no RTP is fine
            assert not of_type(events, "call_ended")

            uac.send_reinvite(first.dialog, sdp("sendrecv"), server)
            end = await ended(events, within=RTP_TIMEOUT + 5)
            assert not call.on_hold and end["reason"] == "rtp_timeout"
            await until(lambda: byes, 5)
            assert byes == [first.call_id]
            metrics = app.state.metrics.render()[0].decode()
            assert 'voicebot_offers_rejected_total{reason="busy",transport="sip"} 1.0' in metrics
            assert 'voicebot_calls_total{reason="rtp_timeout",transport="sip"} 1.0' in metrics
    finally:
        await client.stop()


# What the caller says, and roughly what the bot answers (its length sets the pause).
BOOKING = [
    ("Hi, I would like to book a table for four people on Friday.", "At what time?"),
    (
        "At seven in the evening.",
        "A table for four on Friday, June sixth, at seven p m. Shall I book it?",
    ),
    (
        "Yes, please.",
        "Done! Your table for four on Friday at seven p m is booked. Is there anything "
        "else I can do for you?",
    ),
    ("No, thank you.", "Thank you for calling. Goodbye!"),
]
GREETING = "Hello, thank you for calling Luigi's. How can I help you?"
REPLY_MARGIN = 3.0  # s after the bot's reply would end: latency, then a person's pause


@needs_baresip
async def test_baresip_books_a_table_and_the_bot_hangs_up(tmp_path: Path) -> None:
    # The caller's WAV speaks each answer once the bot's reply should be over (the
    # flow asks "Are you still there?" only after 7 s of silence, so the margin is
    # wide), and goes on long after the goodbye: the bot hangs up, not the WAV.
    parts = [silence(len(say(GREETING)) / 16000 + REPLY_MARGIN, 8000)]
    for text, reply in BOOKING:
        parts += [say(text, 8000), silence(len(say(reply)) / 16000 + REPLY_MARGIN, 8000)]
    parts.append(silence(20.0, 8000))
    microphone = np.concatenate(parts)
    confdir = phone(tmp_path, write_wav(tmp_path / "caller.wav", microphone))
    db = tmp_path / "outcomes.db"
    async with sip_server(RESTAURANT_PIPELINE, outcomes=db) as (port, events, _):
        output = await dial(confdir, port, seconds=round(len(microphone) / 8000) + 10)
        end = await ended(events)
    assert end["reason"] == "bot_hangup", [e for e in events if e["type"] != "transcript"]
    # baresip did not hang up at the WAV's end ("audio error (0,end of file)"): our BYE did
    assert "terminated" in output and "audio error" not in output, output[-2000:]
    (started,) = of_type(events, "call_started")
    assert started["transport"] == "sip"
    story = [(e["type"], e.get("text") or e.get("name") or e.get("to")) for e in events]
    intents = [i["name"] for i in of_type(events, "intent")]
    assert intents == ["book_table", "inform", "affirm", "deny"], story
    (outcome,) = of_type(events, "outcome")
    assert outcome["kind"] == "booking"
    from voicebot.dialog.outcomes import read_outcomes

    (booking,) = read_outcomes(db)
    assert booking.call_id == started["call_id"]
    assert booking.slots == {
        "party_size": 4,
        "day": "friday",
        "day_date": next_friday(),
        "time": "19:00",
    }
    text = await transcribe(heard(confdir))
    # the greeting, the read-back and the goodbye reached the phone (tiny.en hears
    # "Luigi's" over 8 kHz as "Louis D's"; from the whole call's recording it has dropped
    # the read-back's "Shall I book it?" once and its "four" once - the booking above holds
    # the values, this checks what the caller heard)
    for words in ("thank you for calling", "a table for", "on friday", "goodbye"):
        assert words in text, text


# What the caller does by keys (RFC 4733, from baresip's keypad) and by voice, and
# roughly what the bot answers. "1" is pressed during the greeting: it barges in.
KEYED_BOOKING = [
    ("key", "1", "For how many people?"),
    ("key", "4#", "On which day would you like to come?"),
    ("say", "On Friday.", "At what time?"),
    (
        "say",
        "At seven in the evening.",
        "A table for four on Friday, June sixth, at seven p m. Shall I book it?",
    ),
    (
        "key",
        "1",
        "Done! Your table for four on Friday at seven p m is booked. Is there "
        "anything else I can do for you?",
    ),
    ("say", "No, thank you.", "Thank you for calling. Goodbye!"),
]
KEY_GAP = 0.6  # s between two key presses


@needs_baresip
async def test_baresip_books_a_table_with_its_keypad(tmp_path: Path) -> None:
    """The menu key, the party size keyed in with "#" and the "yes" key by DTMF, the day
    and time by voice: a booking in the outcome store, and the bot hangs up."""
    at = 2.0  # into the greeting (about 3.5 s): the key cuts it short
    parts, said_until, keys = [], 0.0, []
    for kind, what, reply in KEYED_BOOKING:
        if kind == "key":
            keys += [(at + i * KEY_GAP, key) for i, key in enumerate(what)]
            took = len(what) * KEY_GAP
        else:
            parts += [silence(at - said_until, 8000), say(what, 8000)]
            took = len(parts[-1]) / 8000
            said_until = at + took
        at += took + len(say(reply)) / 16000 + REPLY_MARGIN
    parts.append(silence(at - said_until + 20.0, 8000))
    microphone = np.concatenate(parts)
    confdir = phone(tmp_path, write_wav(tmp_path / "caller.wav", microphone), keypad=True)
    db = tmp_path / "outcomes.db"
    async with sip_server(RESTAURANT_PIPELINE, outcomes=db) as (port, events, _):
        output = await dial(confdir, port, seconds=round(at) + 20, keys=keys)
        end = await ended(events)
    story = [(e["type"], e.get("text") or e.get("name") or e.get("digit")) for e in events]
    assert end["reason"] == "bot_hangup", story
    assert "send DTMF digit" in output, output[-2000:]
    assert [(e["digit"], e["via"]) for e in of_type(events, "dtmf")] == [
        ("1", "rtp"),
        ("4", "rtp"),
        ("#", "rtp"),
        ("1", "rtp"),
    ], story
    intents = [(i["name"], i["matcher"]) for i in of_type(events, "intent")]
    assert [name for name, _ in intents] == [
        "book_table",
        "book_table",
        "inform",
        "inform",
        "affirm",
        "deny",
    ], story
    assert [m for _, m in intents if m == "dtmf"] == ["dtmf"] * 3, story
    assert of_type(events, "interrupted"), story  # "1" cut the greeting short
    from voicebot.dialog.outcomes import read_outcomes

    (booking,) = read_outcomes(db)
    assert booking.slots == {
        "party_size": 4,
        "day": "friday",
        "day_date": next_friday(),
        "time": "19:00",
    }


def telephone_event(key: int, timestamp: int, seq: int, end: bool) -> bytes:
    payload = bytes([key, (0x80 if end else 0) | 10, 0, 160])
    return RtpPacket(
        101, sequence_number=seq, timestamp=timestamp, ssrc=99, payload=payload
    ).serialize()


async def test_keys_by_sip_info_and_by_rfc_4733_reach_the_flow() -> None:
    """A bare SIP client: "1" by SIP INFO (dtmf-relay) picks the booking from the menu,
    "4" and "#" as RFC 4733 packets (end packets sent three times) fill the party size;
    an INFO of another type gets 415, an empty one 200."""
    transport = UdpTransport(local_addr=("127.0.0.1", 0))
    uac = SipUAC(transport)
    client = SipUAS(transport, uac=uac)
    answers: list[tuple[str, int]] = []
    handle_response = uac.handle_response

    def spy(response: Any, addr: tuple[str, int]) -> None:
        cseq = response.headers.get_first("cseq") or ""
        answers.append((cseq.split()[-1], response.status_code))
        handle_response(response, addr)

    uac.handle_response = spy  # type: ignore[method-assign]
    await client.start()
    me = transport._udp_transport.get_extra_info("sockname")  # type: ignore[union-attr]
    uac.advertised_addr = client.advertised_addr = (me[0], me[1])
    media = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    media.bind(("127.0.0.1", 0))
    try:
        async with sip_server(RESTAURANT_PIPELINE) as (port, events, _):
            server = ("127.0.0.1", port)
            offer = build_sdp("127.0.0.1", media.getsockname()[1], 0, "PCMU", session_id="1")
            call = uac.send_invite(
                "sip:caller@127.0.0.1", f"sip:bot@127.0.0.1:{port}", server, offer
            )
            await call.wait_answered(10)
            answer = call.sdp_answer
            assert answer is not None and answer.audio is not None
            assert answer.audio.formats == ["0", "101"]  # telephone-event accepted
            assert "101 telephone-event/8000" in answer.audio.attributes["rtpmap"]
            rtp = (answer.rtp_address or ("", 0))[0], answer.audio.port

            uac.send_info(
                call.dialog, "Signal=1\r\nDuration=160\r\n", "application/dtmf-relay", server
            )
            await until(lambda: of_type(events, "intent"), 5)
            for seq, (key, end) in enumerate([(4, False), (4, True), (4, True), (4, True)]):
                media.sendto(telephone_event(key, 8000, seq, end), rtp)
            for seq, (key, end) in enumerate([(11, False), (11, True), (11, True), (11, True)]):
                media.sendto(telephone_event(key, 9600, 10 + seq, end), rtp)
            await until(lambda: len(of_type(events, "intent")) == 2, 5)
            uac.send_info(call.dialog, "Signal=5", "text/plain", server)
            uac.send_info(call.dialog, "", "", server)
            await until(lambda: ("INFO", 415) in answers and len(answers) >= 5, 5)
            uac.send_bye(call.dialog, server)
            end = await ended(events)
        keys = [(e["digit"], e["via"]) for e in of_type(events, "dtmf")]
        assert keys == [("1", "info"), ("4", "rtp"), ("#", "rtp")]
        intents = [(i["name"], i["slots"], i["matcher"]) for i in of_type(events, "intent")]
        assert intents == [("book_table", {}, "dtmf"), ("book_table", {"party_size": 4}, "dtmf")]
        assert [s["to"] for s in of_type(events, "state")][-1] == "ask_day"
        assert [code for method, code in answers if method == "INFO"] == [200, 415, 200]
        assert end["reason"] == "hangup"
    finally:
        media.close()
        await client.stop()


# --- voicebot serve --sip-port ----------------------------------------------------------


def options(port: int, transport: str) -> str:
    branch = f"z9hG4bK{transport}1"
    request = (
        f"OPTIONS sip:bot@127.0.0.1:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport.upper()} 127.0.0.1:9;branch={branch};rport\r\n"
        "From: <sip:probe@127.0.0.1>;tag=1\r\n"
        f"To: <sip:bot@127.0.0.1:{port}>\r\n"
        f"Call-ID: probe-{transport}@127.0.0.1\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Max-Forwards: 70\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()
    kind = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as s:
        s.settimeout(5)
        s.connect(("127.0.0.1", port))
        s.sendall(request)
        return s.recv(4096).decode()


def test_serve_answers_options_on_udp_and_tcp() -> None:
    port = free_port()
    with ChildServer("serve", ECHO_PIPELINE, "--sip-port", str(port), "--no-warm-up"):
        for transport in ("udp", "tcp"):
            reply = options(port, transport)
            assert reply.startswith("SIP/2.0 200 OK"), reply
            assert "INVITE" in reply and "BYE" in reply and "INFO" in reply, reply  # Allow
