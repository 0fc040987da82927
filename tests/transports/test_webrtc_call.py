"""Live calls end to end: ``voicebot serve`` in a child process, real aiortc callers.

The caller speaks synthesized speech in real time, waits for each reply like a
person would (speaks again only after the bot has finished), records what it
hears, and the recorded replies are transcribed with the project's ASR.
"""

from __future__ import annotations

import asyncio
import fractions
import re
import time
from pathlib import Path

import av
import httpx
import jiwer
import numpy as np
import pytest
from aiortc import RTCPeerConnection
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtp import RtpPacket

from tests.support.dates import next_friday
from tests.support.speech import say
from voicebot.asr.whisper import WhisperEngine
from voicebot.clock import Clock
from voicebot.samples import speak
from voicebot.server.child import ChildServer
from voicebot.transports.jitter import AudioJitterBuffer, audio_jitter_ms, set_audio_jitter
from voicebot.transports.pacing import FramePacer
from voicebot.transports.webrtc import CUSHION, OutputTrack
from voicebot.transports.webrtc_client import LOUD_RMS, Caller, Speaker, to_rate

NUMBERS = ("zero one two three four five six seven eight nine ten eleven twelve").split()


def normalize(text: str) -> str:
    """Lower case, no punctuation, small numbers as words, "p.m."/"p m" as "pm", and any
    "bye" as "goodbye".

    The server's Piper varies each rendition; tiny.en read its "Thank you for calling.
    Goodbye!" as "... Bye bye" (WER 0.4) in 1 of 30 renditions synthesized and transcribed
    offline, no call involved, and failed the restaurant call test that way.
    """
    text = re.sub(r"(\d)(am|pm)\b", r"\1 \2", text.lower())
    text = re.sub(r"\b(\d{1,2})\b", lambda m: NUMBERS[int(m[1])] if int(m[1]) < 13 else m[1], text)
    text = re.sub(r"\b([ap])\.? ?m\b\.?", r"\1m", text)
    text = re.sub(r"\b(?:good ?)?bye(?:[ -]bye)?\b", "goodbye", text)
    return " ".join(re.sub(r"[^a-z0-9' ]+", " ", text).split())


def loud_span(pcm: np.ndarray, rate: int) -> float:
    """Seconds from the first to the last loud 10 ms window (what ``Caller.reply`` spans)."""
    win = rate // 100
    n = len(pcm) // win
    rms = np.sqrt(np.mean(pcm[: n * win].astype(np.float32).reshape(n, win) ** 2, axis=1))
    loud = np.flatnonzero(rms > LOUD_RMS)
    return (loud[-1] + 1 - loud[0]) * win / rate if len(loud) else 0.0


def wer(ref: str, hyp: str) -> float:
    return jiwer.wer(normalize(ref), normalize(hyp))


async def transcribe(audio_48k: np.ndarray) -> str:
    """What the caller heard, as the project's ASR reads it. A clip cut at the reply's
    onset starts loud, and tiny.en then sometimes stops after the first word ("Done!"
    of the booking's confirmation): half a second of silence goes before it."""
    pcm = np.concatenate([np.zeros(8000, np.int16), to_rate(audio_48k, 48000, 16000)])
    result = await WhisperEngine("tiny.en").transcribe(pcm.astype(np.float32) / 32768, "en")
    return result.text


# --- the output track on its own ----------------------------------------------------


async def test_output_track_paces_exact_frames_without_drift() -> None:
    clock = Clock()
    track = OutputTrack(clock.now)
    first = await track.recv()
    start = time.monotonic()
    frames = [first]
    for _ in range(99):
        frames.append(await track.recv())
    elapsed = time.monotonic() - start
    assert [f.pts for f in frames] == [k * 960 for k in range(100)]
    assert all(
        f.samples == 960 and f.sample_rate == 48000 and f.layout.name == "mono" for f in frames
    )
    # Paced against the start, never early; lateness does not accumulate (a loaded box
    # may delay the last wake-up a little, not 100 x a little).
    assert -0.005 < elapsed - 99 * 0.02 < 0.05, elapsed
    assert track.silent_frames == 100 and track.audio_frames == 0

    # Frames written at their call time come out in order at the next due tick.
    tones = [np.full(960, 1000 * (i + 1), np.int16) for i in range(3)]
    for i, tone in enumerate(tones):
        await clock.sleep_until(clock.now() + 0.02 if i else clock.now())
        track.write(tone, clock.now())
    out = []
    for _ in range(6):
        frame: av.AudioFrame = await track.recv()
        out.append(int(frame.to_ndarray()[0, 0]))
    heard = [x for x in out if x]
    assert heard == [1000, 2000, 3000], out
    assert track.drops == 0 and CUSHION < 0.02

    # Overflow drops the oldest; clear() (barge-in) drops everything not yet sent.
    for i in range(5):
        track.write(np.full(960, i + 1, np.int16), clock.now())
    assert track.buffered == track.max_frames and track.drops == 2
    assert track.clear() == track.max_frames and track.buffered == 0
    track.stop()


async def test_frame_pacer_catches_up_or_restarts_after_a_stall() -> None:
    """A microphone catches up on missed frames (the caller's audio stays whole); the bot's
    voice restarts its schedule instead of bursting (``max_lag``)."""
    silence = np.zeros(960, np.int16)
    for max_lag, burst in ((float("inf"), True), (0.1, False)):
        pacer = FramePacer(48000, max_lag=max_lag)
        await pacer.wait()
        pacer.frame(silence)
        assert pacer.start is not None
        pacer.start -= 0.2  # as if the loop had been blocked: 9 frames are overdue
        start = time.monotonic()
        for _ in range(5):
            await pacer.wait()
            frame = pacer.frame(silence)
        elapsed = time.monotonic() - start
        assert frame.pts == 5 * 960 and frame.time_base == fractions.Fraction(1, 48000)
        if burst:
            assert elapsed < 0.015, elapsed
        else:
            assert 0.075 < elapsed < 0.15, elapsed


class ScriptedTrack:
    """Bot audio as the caller receives it: (loudness, seconds before it arrives) per frame."""

    def __init__(self, script: list[tuple[int, float]]) -> None:
        self.script = script
        self.pacer = FramePacer(48000)

    async def recv(self) -> av.AudioFrame:
        if not self.script:
            await asyncio.Event().wait()  # the call goes on, silently
        level, delay = self.script.pop(0)
        await asyncio.sleep(delay)
        return self.pacer.frame(np.full(960, level, np.int16))


async def test_a_stalled_stream_is_not_a_pause_in_the_reply() -> None:
    """The reply ends after ``quiet`` s of *received* silence. A stall (no frames at all for
    1.2 s: a loaded server or caller) is not silence; it used to cut a reply in two."""
    loud = [(3000, 0.02)] * 10
    script = [*loud, (3000, 1.2), *loud, *[(0, 0.02)] * 30, (3000, 0.02)]
    speaker = Speaker()
    start = time.monotonic()
    speaker.listen(ScriptedTrack(script))  # type: ignore[arg-type]
    try:
        end = await speaker.wait_quiet(start, quiet=0.5, within=5)
    finally:
        await speaker.stop()
    assert len(speaker.times) >= 21
    assert end == speaker.times[20], (end - start, speaker.times[20] - start)


# --- the inbound jitter buffer -------------------------------------------------------


def _feed(buffer: JitterBuffer | AudioJitterBuffer, seqs: list[int]) -> list[int | None]:
    """Packets (one per 20 ms frame) in arrival order -> what ``add`` released for each."""
    released: list[int | None] = []
    for seq in seqs:
        packet = RtpPacket(sequence_number=seq % 65536, timestamp=seq * 960 % 2**32, payload=b"x")
        packet._data = seq.to_bytes(4)  # type: ignore[attr-defined]  # set by the receiver
        _, frame = buffer.add(packet)
        released.append(None if frame is None else int.from_bytes(frame.data))
    return released


def test_jitter_buffer_releases_a_frame_after_prefetch_later_ones() -> None:
    """Prefetch N holds a frame back N frames, in aiortc's buffer and in ours alike."""
    for prefetch in (1, 2, 4):
        for buffer in (JitterBuffer(capacity=16, prefetch=prefetch), AudioJitterBuffer(prefetch)):
            released = _feed(buffer, list(range(8)))
            assert released == [None] * prefetch + list(range(8 - prefetch)), (buffer, released)


def test_a_lost_packet_costs_one_frame_not_the_rest_of_the_call() -> None:
    """aiortc's buffer waits for a lost packet until it overflows and then stays 14 frames
    behind for good; ours counts a packet more than ``prefetch`` frames late as lost."""
    seqs = [s for s in range(60) if s != 10]
    lag = [
        seq - out
        for seq, out in zip(seqs, _feed(JitterBuffer(16, prefetch=1), seqs), strict=True)
        if out is not None
    ]
    assert lag[-1] == 14
    ours = AudioJitterBuffer(1)
    released = _feed(ours, seqs)
    lag = [seq - out for seq, out in zip(seqs, released, strict=True) if out is not None]
    assert lag == [1] * 9 + [2] + [1] * 48  # 9 went out when 11 came: 10 was given up
    assert 10 not in released

    # Reordering within the depth is repaired; a packet later than that is dropped, and
    # sequence numbers wrap around.
    ours = AudioJitterBuffer(2)
    arrivals = [65534, 65536, 65535, 65537, 65539, 65540, 65541, 65538, 65542]
    assert _feed(ours, arrivals) == [None, None, 65534, 65535, 65536, 65537, 65539, None, 65540]
    assert ours.late == 1
    assert _feed(ours, [65542]) == [None]  # a duplicate
    assert _feed(ours, [64000]) == [None]  # far behind: the sender restarted; start over
    assert _feed(ours, [64001, 64002]) == [None, 64000]


async def test_audio_jitter_is_set_on_a_receiver_and_checked() -> None:
    pc = RTCPeerConnection()
    try:
        receiver = pc.addTransceiver("audio").receiver
        assert audio_jitter_ms(receiver) == 80  # aiortc's own depth, which the server replaces
        set_audio_jitter(receiver, 20)
        assert audio_jitter_ms(receiver) == 20
        set_audio_jitter(receiver, 0)  # one frame is the least aiortc can hold
        assert audio_jitter_ms(receiver) == 20
        set_audio_jitter(receiver, 400)
        assert audio_jitter_ms(receiver) == 400
        with pytest.raises(RuntimeError, match="jitter"):  # video, or internals that moved
            set_audio_jitter(pc.addTransceiver("video").receiver, 20)
        with pytest.raises(RuntimeError, match="jitter"):
            set_audio_jitter(object(), 20)
    finally:
        await pc.close()


# --- calls --------------------------------------------------------------------------


ECHO_TURNS = ["Hello, I would like to book a table.", "For four people on Friday evening."]


async def test_echo_call_end_to_end(echo_server: ChildServer) -> None:
    async with Caller(echo_server.url) as caller:
        answer = await caller.connect()
        assert answer["pipeline"] == "echo"
        await caller.wait_event("call_started", 10)
        await asyncio.sleep(0.5)
        latencies = []
        for text in ECHO_TURNS:
            voice_end = await caller.say(say(text), 16000)
            reply = await caller.reply(voice_end, within=20, quiet=1.0)
            latencies.append(reply.onset - voice_end)
            heard = await transcribe(reply.audio)
            assert wer(f"You said: {text}", heard) <= 0.25, heard
        caller.hang_up()
        _, ended = await caller.wait_event("call_ended", 10)
    assert ended["reason"] == "hangup"
    finals = [e for e in caller.of_type("transcript") if e["final"]]
    assert [e["turn"] for e in finals] == [1, 2]
    for event, text in zip(finals, ECHO_TURNS, strict=True):
        assert wer(text, event["text"]) <= 0.2, event
    replies = caller.of_type("reply")
    assert [r["text"] for r in replies] == [f"You said: {e['text']}" for e in finals]
    turns = caller.of_type("turn")
    assert [t["turn"] for t in turns] == [1, 2]
    assert all(t["voice_to_voice_ms"] is not None for t in turns)
    assert caller.events[0]["type"] == "hello" and caller.events[-1]["type"] == "call_ended"
    print(
        f"voice-to-voice at the caller: {[round(x * 1000) for x in latencies]} ms; "
        f"server: {[t['voice_to_voice_ms'] for t in turns]} ms"
    )
    assert all(0.3 < x < 3.0 for x in latencies)


LONG = (
    "I would like to book a table for six people on Saturday evening at eight o'clock, "
    "near the window if possible, and we will bring a birthday cake."
)
OVER = "Actually, make it Sunday."


async def test_barge_in_stops_playback_and_the_new_turn_is_answered(
    echo_server: ChildServer,
) -> None:
    async with Caller(echo_server.url) as caller:
        await caller.connect()
        await caller.wait_event("call_started", 10)
        await asyncio.sleep(0.3)
        voice_end = await caller.say(say(LONG), 16000)
        onset = await caller.speaker.wait_onset(voice_end, 20)
        await asyncio.sleep(1.5)  # well into the bot's ~9 s echo
        speaking = caller.say_later(say(OVER), 16000)
        index, interrupted = await caller.wait_event("interrupted", 10)
        t_interrupted = caller.received[index]
        second_end = await speaking
        reply = await caller.reply(second_end, within=20, quiet=1.0)
        caller.hang_up()
        await caller.wait_event("call_ended", 10)

    # Playback stopped: the last loud frame of the first reply arrived within
    # 100 ms of the event (plus the caller's 80 ms jitter buffer and the network).
    last_loud = caller.speaker.last_loud(onset, reply.onset - 0.001)
    assert last_loud is not None and last_loud - t_interrupted < 0.2, last_loud - t_interrupted
    assert reply.onset - t_interrupted > 0.5  # ...and stayed quiet until the next answer
    assert interrupted["turn"] == 1 and interrupted["text"].startswith("You said: I would like")
    assert 1000 <= interrupted["heard_ms"] <= (t_interrupted - onset) * 1000 + 300
    assert interrupted["dropped_ms"] > 0  # queued reply audio was thrown away
    assert not [e for e in caller.of_type("playback_stopped") if e["turn"] == 1]

    # The dialog went on from the caller's new turn.
    finals = {e["turn"]: e["text"] for e in caller.of_type("transcript") if e["final"]}
    assert wer(OVER, finals[2]) <= 0.25, finals
    assert [r["turn"] for r in caller.of_type("reply")] == [1, 2]
    heard = await transcribe(reply.audio)
    # The answer to the new turn was heard: its echoed words in full. tiny.en reads the
    # reply's abrupt "You said:" now and then as one other word ("Dead,"), so the
    # template prefix is not part of the check.
    assert normalize(OVER) in normalize(heard), heard
    assert wer(f"You said: {OVER}", heard) <= 0.35, heard


def process_stats(pid: int) -> tuple[int, int, int]:
    """(RSS bytes, threads, open file descriptors) of a process."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss = int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) * 1024  # type: ignore[union-attr]
    threads = int(re.search(r"Threads:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
    return rss, threads, len(list(Path(f"/proc/{pid}/fd").iterdir()))


async def test_calls_release_everything(echo_server: ChildServer) -> None:
    """Sequential calls leave nothing behind: memory, threads and descriptors.

    RSS is sampled after every call. The shared engines' memory (ONNX runtime's
    arena, the worker threads' heaps) grows in one or two steps of up to ~20 MiB
    at some early call and then stays put - that memory is the process's, not a
    call's. A leak grows with every call, so the typical per-call growth (the
    median) must be about zero, and the total stays within one such step.
    """
    url = echo_server.url
    rss: list[int] = []
    stats = []
    async with httpx.AsyncClient() as http:
        for _ in range(30):
            async with Caller(url, keep_audio=False) as caller:
                await caller.connect()
                await caller.wait_event("call_started", 10)
                sent = time.monotonic()
                caller.send_text("Hello, this is a call.")
                await caller.speaker.wait_onset(sent, 10)
                caller.hang_up()
                await caller.wait_event("call_ended", 10)
            deadline = time.monotonic() + 10
            while (await http.get(f"{url}/healthz")).json()["calls_active"]:
                assert time.monotonic() < deadline, "call not released"
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.2)
            stats.append(process_stats(echo_server.pid))
            rss.append(stats[-1][0])
        metrics = (await http.get(f"{url}/metrics")).text
    mib = [round(x / 2**20, 1) for x in rss]
    print(f"RSS after each call (MiB): {mib}")
    growth = np.diff(rss[2:]) / 2**20
    assert float(np.median(growth)) < 0.25, mib
    assert (rss[-1] - rss[1]) / 2**20 < 32, mib
    (_, threads, fds), (_, threads_end, fds_end) = stats[1], stats[-1]
    assert threads_end <= threads and fds_end <= fds, (stats[1], stats[-1])
    assert 'voicebot_calls_total{reason="hangup",transport="webrtc"}' in metrics
    assert "voicebot_calls_active 0.0" in metrics


# --- the restaurant bot ---------------------------------------------------------------


GREETING = "Hello, thank you for calling Luigi's. How can I help you?"
BOOKING = [
    # (what the caller says, intent and slots the bot should recognise)
    (
        "Hi, I would like to book a table for four people on Friday.",
        "book_table",
        {"party_size": 4, "day": "friday"},
    ),
    ("At seven in the evening.", "inform", {"time": "19:00"}),
    ("Yes, please.", "affirm", {}),
    ("No, thank you.", "deny", {}),
]


async def test_restaurant_booking_call(restaurant_server: ChildServer) -> None:
    # The caller answers as soon as the bot is done, like a person: its speech is
    # synthesized before dialing and what it heard is transcribed after hanging up.
    # (Loading Piper and Whisper in between turns on a loaded machine once took longer
    # than the flow's 7 s silence timeout, and the bot asked "Are you still there?".)
    utterances = [say(text) for text, _, _ in BOOKING]
    async with Caller(restaurant_server.url) as caller:
        dialed = time.monotonic()  # the greeting may start arriving before connect() returns
        answer = await caller.connect()
        assert answer["pipeline"] == "restaurant"
        replies_heard = [await caller.reply(dialed, within=10, quiet=1.0)]
        for pcm in utterances:
            voice_end = await caller.say(pcm, 16000)
            replies_heard.append(await caller.reply(voice_end, within=20, quiet=1.0))
        _, ended = await caller.wait_event("call_ended", 10)
    assert ended["reason"] == "bot_hangup"  # the flow's goodbye ended the call
    heard = [await transcribe(reply.audio) for reply in replies_heard]
    lengths = [len(reply.audio) / 48000 for reply in replies_heard]

    intents = caller.of_type("intent")
    assert [(i["turn"], i["name"]) for i in intents] == [
        (turn, name) for turn, (_, name, _) in enumerate(BOOKING, 1)
    ]
    for intent, (_, _, slots) in zip(intents, BOOKING, strict=True):
        assert intent["slots"] == slots, intent
    states = [s["to"] for s in caller.of_type("state")]
    assert states[0] == "welcome" and "confirm_booking" in states and "goodbye" in states
    (outcome,) = caller.of_type("outcome")
    assert outcome["kind"] == "booking"
    assert outcome["slots"] == {
        "party_size": 4,
        "day": "friday",
        "day_date": next_friday(),
        "time": "19:00",
    }

    # What the caller heard is what the bot said, in order, and all of it (tiny.en
    # now and then drops a short last sentence, so the length is checked too). Lengths
    # are audio, first to last loud frame, on both sides: arrival times stretch and
    # shrink on a loaded machine, and Piper's silence around a short reply is a
    # quarter of it ("At what time?": 0.62 s loud of 0.86 s once failed the bound).
    replies = [r["text"] for r in caller.of_type("reply")]
    assert replies[0] == GREETING and len(replies) == len(heard) == len(lengths) == 5
    assert "Shall I book it?" in replies[2] and replies[3].startswith("Done!")
    for said, got, length in zip(replies, heard, lengths, strict=True):
        timeline = [
            (e["type"], e.get("t"), e.get("turn"))
            for e in caller.events
            if e["type"].startswith(("playback", "reply", "interrupted", "speech", "tts"))
        ]
        assert wer(said, got) <= 0.35, (said, got, timeline)
        expected = loud_span(speak(said), 16000)
        assert 0.75 * expected < length < 1.25 * expected, (said, length, expected)


# A caller who talks the way people do: extra words around every answer, and one slot word
# the recogniser gets wrong ("half past heaven" - tiny.en writes what Piper says). The bot
# keeps what it understood, reads the time it took the word for back, and books only on
# the caller's yes to that read-back.
NATURAL = [
    "Hi there, um, I was hoping to book a table for four people on Friday at half past "
    "heaven, if that is okay.",
    "Yes, that sounds perfect, thank you.",
    "No, that is all for today, thanks a lot, bye bye.",
]


def booked_ids(db: Path) -> set[int | None]:
    from voicebot.dialog.outcomes import read_outcomes

    return {o.id for o in read_outcomes(db)} if db.exists() else set()


async def test_natural_caller_with_a_misheard_word_books_over_webrtc(
    restaurant_server: ChildServer, restaurant_db: Path
) -> None:
    from voicebot.dialog.outcomes import read_outcomes

    before = booked_ids(restaurant_db)
    utterances = [say(text) for text in NATURAL]
    async with Caller(restaurant_server.url) as caller:
        dialed = time.monotonic()
        await caller.connect()
        await caller.reply(dialed, within=10, quiet=1.0)
        for pcm in utterances:
            voice_end = await caller.say(pcm, 16000)
            await caller.reply(voice_end, within=20, quiet=1.0)
        _, ended = await caller.wait_event("call_ended", 10)
    assert ended["reason"] == "bot_hangup"
    finals = [t["text"] for t in caller.of_type("transcript") if t["final"]]
    assert "heaven" in finals[0].lower(), finals  # the slot word really was misheard
    first = caller.of_type("intent")[0]
    assert first["name"] in ("book_table", "inform") and first["slots"] == {
        "party_size": 4,
        "day": "friday",
        "time": "19:30",
    }, first
    replies = [r["text"] for r in caller.of_type("reply")]
    assert "at half past seven. Shall I book it?" in replies[1], replies
    assert replies[2].startswith("Done!") and replies[3] == "Thank you for calling. Goodbye!"
    assert [i["name"] for i in caller.of_type("intent")][1:] == ["affirm", "goodbye"]
    (booking,) = [o for o in read_outcomes(restaurant_db) if o.id not in before]
    assert booking.kind == "booking" and booking.call_id == first["call_id"]
    assert booking.slots == {
        "party_size": 4,
        "day": "friday",
        "day_date": next_friday(),
        "time": "19:30",
    }
