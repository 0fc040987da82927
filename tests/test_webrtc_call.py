"""Live calls end to end: ``voicebot serve`` in a child process, real aiortc callers.

The caller speaks synthesized speech in real time, waits for each reply like a
person would (speaks again only after the bot has finished), records what it
hears, and the recorded replies are transcribed with the project's ASR.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from pathlib import Path

import av
import httpx
import jiwer
import numpy as np
import pytest
from aiortc import RTCPeerConnection
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtp import RtpPacket
from speech import say

from voicebot.asr.whisper import WhisperEngine
from voicebot.bench_calls import ServerProcess
from voicebot.clock import Clock
from voicebot.samples import speak
from voicebot.transports.jitter import audio_jitter_ms, set_audio_jitter
from voicebot.transports.webrtc import CUSHION, OutputTrack
from voicebot.transports.webrtc_client import Caller, to_rate

ROOT = Path(__file__).resolve().parent.parent
ECHO = ROOT / "pipelines" / "echo.yaml"
RESTAURANT = ROOT / "pipelines" / "restaurant.yaml"


NUMBERS = ("zero one two three four five six seven eight nine ten eleven twelve").split()


def normalize(text: str) -> str:
    """Lower case, no punctuation, small numbers as words, "p.m."/"p m" as "pm"."""
    text = re.sub(r"(\d)(am|pm)\b", r"\1 \2", text.lower())
    text = re.sub(r"\b(\d{1,2})\b", lambda m: NUMBERS[int(m[1])] if int(m[1]) < 13 else m[1],
                  text)
    text = re.sub(r"\b([ap])\.? ?m\b\.?", r"\1m", text)
    return " ".join(re.sub(r"[^a-z0-9' ]+", " ", text).split())


def wer(ref: str, hyp: str) -> float:
    return jiwer.wer(normalize(ref), normalize(hyp))


async def transcribe(audio_48k: np.ndarray) -> str:
    """What the caller heard, as the project's ASR reads it."""
    pcm = to_rate(audio_48k, 48000, 16000)
    result = await WhisperEngine("tiny.en").transcribe(pcm.astype(np.float32) / 32768, "en")
    return result.text


@pytest.fixture(scope="module")
def echo_server() -> Iterator[ServerProcess]:
    with ServerProcess(ECHO) as server:
        yield server


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
    assert all(f.samples == 960 and f.sample_rate == 48000 and f.layout.name == "mono"
               for f in frames)
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


# --- the inbound jitter buffer -------------------------------------------------------


def test_jitter_buffer_releases_a_frame_after_prefetch_later_ones() -> None:
    """What ``transports/jitter.py`` relies on: prefetch N holds a frame back N frames."""
    for prefetch in (1, 2, 4):
        buffer = JitterBuffer(capacity=16, prefetch=prefetch)
        released = []
        for seq in range(8):
            packet = RtpPacket(sequence_number=seq, timestamp=seq * 960, payload=b"x")
            packet._data = bytes([seq])  # type: ignore[attr-defined]  # set by the receiver
            _, frame = buffer.add(packet)
            released.append(None if frame is None else frame.data[0])
        assert released == [None] * prefetch + list(range(8 - prefetch)), (prefetch, released)


async def test_audio_jitter_is_set_on_a_receiver_and_checked() -> None:
    pc = RTCPeerConnection()
    try:
        receiver = pc.addTransceiver("audio").receiver
        assert audio_jitter_ms(receiver) == 80  # aiortc's own depth, which the server replaces
        set_audio_jitter(receiver, 20)
        assert audio_jitter_ms(receiver) == 20
        set_audio_jitter(receiver, 0)  # one frame is the least aiortc can hold
        assert audio_jitter_ms(receiver) == 20
        set_audio_jitter(receiver, 400)  # deep settings keep room for misordered packets
        assert audio_jitter_ms(receiver) == 400
        assert receiver._RTCRtpReceiver__jitter_buffer.capacity >= 4 * 20  # type: ignore[attr-defined]
        with pytest.raises(RuntimeError, match="jitter"):  # video, or internals that moved
            set_audio_jitter(pc.addTransceiver("video").receiver, 20)
        with pytest.raises(RuntimeError, match="jitter"):
            set_audio_jitter(object(), 20)
    finally:
        await pc.close()


# --- calls --------------------------------------------------------------------------


ECHO_TURNS = ["Hello, I would like to book a table.", "For four people on Friday evening."]


async def test_echo_call_end_to_end(echo_server: ServerProcess) -> None:
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
    print(f"voice-to-voice at the caller: {[round(x * 1000) for x in latencies]} ms; "
          f"server: {[t['voice_to_voice_ms'] for t in turns]} ms")
    assert all(0.3 < x < 3.0 for x in latencies)


LONG = ("I would like to book a table for six people on Saturday evening at eight o'clock, "
        "near the window if possible, and we will bring a birthday cake.")
OVER = "Actually, make it Sunday."


async def test_barge_in_stops_playback_and_the_new_turn_is_answered(
        echo_server: ServerProcess) -> None:
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
    assert wer(f"You said: {OVER}", heard) <= 0.25, heard


def process_stats(pid: int) -> tuple[int, int, int]:
    """(RSS bytes, threads, open file descriptors) of a process."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss = int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) * 1024  # type: ignore[union-attr]
    threads = int(re.search(r"Threads:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
    return rss, threads, len(list(Path(f"/proc/{pid}/fd").iterdir()))


async def test_calls_release_everything(echo_server: ServerProcess) -> None:
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
    assert 'voicebot_calls_total{reason="hangup"}' in metrics
    assert "voicebot_calls_active 0.0" in metrics


# --- the restaurant bot ---------------------------------------------------------------


@pytest.fixture(scope="module")
def restaurant_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    db = tmp_path_factory.mktemp("outcomes") / "outcomes.db"
    with ServerProcess(RESTAURANT, "--outcomes-db", str(db)) as server:
        yield server


GREETING = "Hello, thank you for calling Luigi's. How can I help you?"
BOOKING = [
    # (what the caller says, intent and slots the bot should recognise)
    ("Hi, I would like to book a table for four people on Friday.",
     "book_table", {"party_size": 4, "day": "friday"}),
    ("At seven in the evening.", "inform", {"time": "19:00"}),
    ("Yes, please.", "affirm", {}),
    ("No, thank you.", "deny", {}),
]


async def test_restaurant_booking_call(restaurant_server: ServerProcess) -> None:
    async with Caller(restaurant_server.url) as caller:
        answer = await caller.connect()
        assert answer["pipeline"] == "restaurant"
        greeting = await caller.reply(time.monotonic(), within=10, quiet=1.0)
        heard, lengths = [await transcribe(greeting.audio)], [greeting.duration]
        for text, _, _ in BOOKING:
            voice_end = await caller.say(say(text), 16000)
            reply = await caller.reply(voice_end, within=20, quiet=1.0)
            heard.append(await transcribe(reply.audio))
            lengths.append(reply.duration)
        _, ended = await caller.wait_event("call_ended", 10)
    assert ended["reason"] == "bot_hangup"  # the flow's goodbye ended the call

    intents = caller.of_type("intent")
    assert [(i["turn"], i["name"]) for i in intents] == [
        (turn, name) for turn, (_, name, _) in enumerate(BOOKING, 1)]
    for intent, (_, _, slots) in zip(intents, BOOKING, strict=True):
        assert intent["slots"] == slots, intent
    states = [s["to"] for s in caller.of_type("state")]
    assert states[0] == "welcome" and "confirm_booking" in states and "goodbye" in states
    (outcome,) = caller.of_type("outcome")
    assert outcome["kind"] == "booking"
    assert outcome["slots"] == {"party_size": 4, "day": "friday", "time": "19:00"}

    # What the caller heard is what the bot said, in order, and all of it (tiny.en
    # now and then drops a short last sentence, so the length is checked too).
    replies = [r["text"] for r in caller.of_type("reply")]
    assert replies[0] == GREETING and len(replies) == len(heard) == len(lengths) == 5
    assert "Shall I book it?" in replies[2] and replies[3].startswith("Done!")
    for said, got, length in zip(replies, heard, lengths, strict=True):
        assert wer(said, got) <= 0.35, (said, got)
        expected = len(speak(said)) / 16000
        assert 0.75 * expected < length < 1.25 * expected, (said, length, expected)
