"""The whole voice loop through ``voicebot run``: real engines, synthesized caller."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import jiwer
import numpy as np
import pytest

from tests.support.paths import ECHO_PIPELINE, ROOT
from voicebot.config import load_pipeline
from voicebot.events import EVENT_TYPES
from voicebot.runner import run_file
from voicebot.samples import write_caller
from voicebot.transports.file import read_audio

UTTERANCES = [
    "Hello, I would like to book a table.",
    "For four people on Friday evening.",
    "Thank you very much, goodbye.",
]


def wer(ref: str, hyp: str) -> float:
    clean = lambda s: " ".join(re.sub(r"[^a-z0-9' ]+", " ", s.lower()).split())  # noqa: E731
    return jiwer.wer(clean(ref), clean(hyp))


@pytest.fixture(scope="module")
def caller(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tuple[float, float]]]:
    path = tmp_path_factory.mktemp("caller") / "caller.wav"
    spans = write_caller(path, UTTERANCES, pause=5.0)
    return path, spans


@pytest.fixture(scope="module")
def cli_run(caller, tmp_path_factory):
    """``voicebot run --fast`` as a user types it."""
    out = tmp_path_factory.mktemp("run")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "voicebot",
            "run",
            str(ECHO_PIPELINE),
            "--input",
            str(caller[0]),
            "--output",
            str(out / "bot.wav"),
            "--events",
            str(out / "events.jsonl"),
            "--fast",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    return proc, events, out / "bot.wav"


def test_events_follow_the_schema(cli_run):
    _, events, _ = cli_run
    assert events[0]["type"] == "call_started" and events[-1]["type"] == "call_ended"
    call_ids = {e["call_id"] for e in events}
    assert len(call_ids) == 1
    for e in events:
        assert e["type"] in EVENT_TYPES
        assert isinstance(e["t"], (int, float)) and e["t"] >= 0
    times = [e["t"] for e in events if e["type"] in ("speech_started", "speech_stopped")]
    assert times == sorted(times)
    assert events[-1]["reason"] == "completed"
    assert not [e for e in events if e["type"] == "error"]


def test_every_utterance_is_heard_and_answered(cli_run, caller):
    proc, events, _ = cli_run
    _, spans = caller
    finals = [e for e in events if e["type"] == "transcript" and e["final"]]
    assert len(finals) == len(UTTERANCES)
    for said, final in zip(UTTERANCES, finals, strict=True):
        assert wer(said, final["text"]) <= 0.2, (said, final["text"])
    starts = [e["t"] for e in events if e["type"] == "speech_started"]
    for (start, _), t in zip(spans, starts, strict=True):
        assert abs(t - start) < 0.12  # VAD onset vs the synthesized utterance's start
    replies = [e["text"] for e in events if e["type"] == "reply"]
    assert replies == [f"You said: {f['text'].strip()}" for f in finals]
    assert "caller:" in proc.stdout and "voice-to-voice" in proc.stdout


def test_turn_events_account_for_the_latency(cli_run):
    _, events, _ = cli_run
    turns = [e for e in events if e["type"] == "turn"]
    assert [t["turn"] for t in turns] == [1, 2, 3]
    for t in turns:
        parts = [t[k] for k in ("endpoint_ms", "asr_ms", "dialog_ms", "tts_ms", "playback_ms")]
        assert all(p is not None and p >= 0 for p in parts)
        assert sum(parts) == pytest.approx(t["voice_to_voice_ms"], abs=1.0)
        assert t["endpoint_ms"] == pytest.approx(500, abs=21)  # the configured silence
    # Partials arrive while the caller speaks, before the turn ends.
    for turn in (1, 2, 3):
        stopped = next(
            e["t"] for e in events if e["type"] == "speech_stopped" and e["turn"] == turn
        )
        partials = [
            e for e in events if e["type"] == "transcript" and not e["final"] and e["turn"] == turn
        ]
        assert partials and all(p["t"] < stopped for p in partials)


def test_bot_audio_is_aligned_with_the_caller_timeline(cli_run, caller):
    _, events, bot_wav = cli_run
    bot, rate, channels = read_audio(bot_wav)
    caller_pcm, caller_rate, _ = read_audio(caller[0])
    assert rate == caller_rate and channels == 1
    assert len(bot) >= len(caller_pcm)
    started = [e for e in events if e["type"] == "playback_started"]
    stopped = [e for e in events if e["type"] == "playback_stopped"]
    assert len(started) == len(stopped) == 3
    loud = np.abs(bot.astype(np.int32)) > 200
    for a, b in zip(started, stopped, strict=True):
        first = np.argmax(loud[round(a["t"] * rate) :]) / rate + a["t"]
        assert first - a["t"] < 0.3  # reply audio starts where playback says it did
        gap_before = loud[round((a["t"] - 0.5) * rate) : round(a["t"] * rate)]
        assert not gap_before.any()  # and nothing is written before it
        assert b["played_ms"] > 500


async def test_bot_reply_audio_says_the_reply(cli_run):
    """The bot's audio, transcribed by the project's ASR, is the echo reply."""
    from voicebot.asr.whisper import WhisperEngine

    _, events, bot_wav = cli_run
    bot, rate, _ = read_audio(bot_wav)
    engine = WhisperEngine("tiny.en")
    starts = [e for e in events if e["type"] == "playback_started"]
    stops = [e for e in events if e["type"] == "playback_stopped"]
    replies = [e["text"] for e in events if e["type"] == "reply"]
    for a, b, reply in zip(starts, stops, replies, strict=True):
        clip = bot[round(a["t"] * rate) : round(b["t"] * rate)].astype(np.float32) / 32768
        heard = (await engine.transcribe(clip, "en")).text
        assert wer(reply, heard) <= 0.25, (reply, heard)


async def test_fast_and_real_time_runs_line_up(caller, tmp_path):
    """``--fast`` only skips idle time: its events fall where the real-time run's do."""
    config = load_pipeline(ECHO_PIPELINE)
    path = tmp_path / "short.wav"
    write_caller(path, UTTERANCES[:1], pause=3.0)
    real = await run_file(config, path, tmp_path / "real.wav")
    fast = await run_file(config, path, tmp_path / "fast.wav", fast=True)

    # Model work takes its real time in both runs, so on a loaded machine the runs differ
    # by how much longer the models took in one of them (the turn event measures it).
    def model_s(result) -> float:
        (turn,) = result.of_type("turn")
        return ((turn["asr_ms"] or 0) + (turn["tts_ms"] or 0)) / 1000

    slack = abs(model_s(fast) - model_s(real))
    for kind in ("speech_started", "speech_stopped", "transcript", "reply", "playback_started"):
        rt = [e["t"] for e in real.events if e["type"] == kind and e.get("final", True)]
        ft = [e["t"] for e in fast.events if e["type"] == kind and e.get("final", True)]
        assert len(rt) == len(ft) == 1, kind
        # VAD times are on the media timeline (equal); model-driven ones differ by model noise.
        assert ft[0] == pytest.approx(rt[0], abs=0.25 + slack), (kind, slack)
    real_end = real.of_type("call_ended")[0]["t"]
    fast_end = fast.of_type("call_ended")[0]["t"]
    assert fast_end == pytest.approx(real_end, abs=0.3 + slack)


async def test_caller_speaking_over_the_bot_interrupts_it(tmp_path):
    """Barge-in: the caller talks while the echo plays; playback stops, the new turn is handled."""
    config = load_pipeline(ECHO_PIPELINE)
    path = tmp_path / "bargein.wav"
    long = "I would like to book a table for six people on Saturday evening at eight o'clock."
    write_caller(path, [long, "Stop, please."], pause=1.2)
    result = await run_file(config, path, tmp_path / "bot.wav", fast=True)
    interrupted = result.of_type("interrupted")
    assert len(interrupted) == 1 and interrupted[0]["turn"] == 1
    assert 0 < interrupted[0]["heard_ms"]
    cut = interrupted[0]["t"]
    bot, rate, _ = read_audio(tmp_path / "bot.wav")
    after = bot[round((cut + 0.04) * rate) : round((cut + 1.0) * rate)]
    assert np.abs(after).max() < 200  # silent right after the cut (next reply comes later)
    finals = [e["text"] for e in result.of_type("transcript") if e["final"]]
    assert len(finals) == 2 and "stop" in finals[1].lower()
    assert [e["turn"] for e in result.of_type("reply")] == [1, 2]


def test_cli_reports_bad_config_with_position(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nvad:\n  end_of_turn_ms: fast\n")
    proc = subprocess.run(
        [sys.executable, "-m", "voicebot", "run", str(bad), "-i", "x.wav", "-o", "y.wav"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert proc.returncode == 2
    assert f"{bad}:3:19: E106 expected int, got str 'fast'" in proc.stderr
    missing_input = ["-i", "missing.wav", "-o", "y.wav"]
    proc = subprocess.run(
        [sys.executable, "-m", "voicebot", "run", str(ECHO_PIPELINE), *missing_input],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert proc.returncode == 2 and "missing.wav does not exist" in proc.stderr
