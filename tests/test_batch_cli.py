"""``voicebot transcribe`` / ``speak`` / ``costs`` / ``bench providers`` as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.transcripts import words
from voicebot.server.child import ChildServer


def voicebot(
    *args: str, env: dict[str, str] | None = None, check: bool = True, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "voicebot", *args],
        capture_output=True,
        text=True,
        check=check,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=600,
    )


@pytest.fixture(scope="module")
def node() -> Iterator[str]:
    with ChildServer("speech-server", "--requests-per-minute", "100000", capture=True) as node:
        yield node.url + "/v1"


def test_speak_then_transcribe_locally(tmp_path):
    texts = tmp_path / "texts.txt"
    texts.write_text("# prompts of the bot\nGood evening.\n\nA table for two, please.\n")
    result = voicebot(
        "speak", "--batch", str(texts), "--out", str(tmp_path / "audio"), "--format", "flac"
    )
    assert "2/2" in result.stderr  # a progress bar for more than one item
    files = sorted((tmp_path / "audio").glob("*.flac"))
    assert [f.name for f in files] == ["0001-good-evening.flac", "0002-a-table-for-two-please.flac"]
    single = tmp_path / "one.wav"
    voicebot("speak", "Thank you for calling.", "--out", str(single))
    import wave

    with wave.open(str(single)) as w:  # a file, not a stream: real sizes in the header
        assert w.getframerate() == 24000 and 0.8 < w.getnframes() / 24000 < 3
    out = voicebot(
        "transcribe",
        *map(str, files),
        str(single),
        "--format",
        "vtt",
        "--out",
        str(tmp_path / "text"),
    ).stdout
    assert out == ""
    vtts = {p.name: p.read_text() for p in (tmp_path / "text").glob("*.vtt")}
    assert set(vtts) == {"0001-good-evening.vtt", "0002-a-table-for-two-please.vtt", "one.vtt"}
    assert "table for two" in words(vtts["0002-a-table-for-two-please.vtt"])
    assert vtts["one.vtt"].startswith("WEBVTT")


def test_bad_input_gets_a_clear_error(tmp_path):
    result = voicebot("transcribe", str(tmp_path / "missing.wav"), check=False)
    assert result.returncode == 2 and "no such file" in result.stderr
    result = voicebot("transcribe", str(tmp_path), "--engine", "acme", check=False)
    assert result.returncode == 2
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"not audio")
    good = tmp_path / "good.wav"
    voicebot("speak", "Hello.", "--out", str(good))
    result = voicebot("transcribe", str(junk), str(good), check=False)
    assert result.returncode == 1  # one failed, the other was still transcribed
    assert "junk.wav: error:" in result.stderr and "hello" in result.stdout.lower()


def test_provider_engines_bill_the_ledger(node, tmp_path):
    env = {"VOICEBOT_COSTS_DB": str(tmp_path / "costs.db")}
    spec = f"voicebot={node}"
    audio = tmp_path / "audio"
    texts = tmp_path / "texts.txt"
    texts.write_text("Your booking is confirmed.\nSee you on Friday.\n")
    voicebot(
        "speak",
        "--batch",
        str(texts),
        "--out",
        str(audio),
        "--engine",
        spec,
        "--concurrency",
        "2",
        env=env,
    )
    files = sorted(audio.glob("*.wav"))
    assert len(files) == 2
    srt = voicebot("transcribe", str(files[0]), "--engine", spec, "--format", "srt", env=env).stdout
    # (the words, not Whisper's exact reading: "your booking this confirmed" once, loaded)
    assert srt.startswith("1\n00:00:00,") and {"booking", "confirmed"} <= set(words(srt).split())
    verbose = json.loads(
        voicebot(
            "transcribe", str(files[1]), "--engine", spec, "--format", "verbose_json", env=env
        ).stdout
    )
    assert "friday" in words(verbose["text"]) and verbose["segments"]
    report = json.loads(voicebot("costs", "--json", env=env).stdout)
    rows = {(r["provider"], r["kind"]): r for r in report["rows"]}
    host = node.split("//")[1].split("/")[0]
    assert rows[(host, "tts")]["requests"] >= 2 and rows[(host, "asr")]["requests"] == 2
    assert "hit rate" in voicebot("costs", env=env).stdout


def test_bench_providers_on_a_speech_node(node, tmp_path):
    out = tmp_path / "bench.json"
    table = voicebot(
        "bench",
        "providers",
        "--engine",
        f"voicebot={node}",
        "--sizes",
        "3",
        "--requests",
        "2",
        "--concurrency",
        "2",
        "--tts-requests",
        "2",
        "--throughput-requests",
        "2",
        "--chars",
        "120",
        "--json",
        str(out),
    ).stdout
    assert "TTS first byte" in table and "streaming" in table
    result = json.loads(out.read_text())
    assert result["transcription_ms"]["3s"]["n"] == 2
    for name in ("standard", "streaming"):
        first = result["tts_first_byte_ms"][name]
        assert 0 < first["p50"] < 5000  # measured from the request's start: never zero
    assert result["tts_throughput"]["requests_per_s"] > 0
