"""Pipeline YAML validation: every mistake as file:line:col, all of them at once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import ECHO_PIPELINE, PIPELINES, ROOT
from voicebot.audio.vad import Endpointer
from voicebot.config import PipelineConfig, VadSettings, load_pipeline
from voicebot.diagnostics import ConfigError


def errors(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_pipeline(path)
    return [str(d).replace(f"{path}:", "") for d in info.value.diagnostics]


def test_bundled_pipelines_are_valid():
    for path in sorted(PIPELINES.glob("*.yaml")):
        config = load_pipeline(path)
        assert isinstance(config, PipelineConfig)


def test_echo_cancel_is_auto_on_off_and_takes_yaml_booleans(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("{}\n")
    audio = load_pipeline(path).audio
    assert audio.echo_cancel == "auto"
    assert audio.cancels_echo("sip") and not audio.cancels_echo("webrtc")
    for written, mode in [
        ("auto", "auto"),
        ("on", "on"),
        ("off", "off"),
        ("true", "on"),
        ("false", "off"),
        ('"on"', "on"),
    ]:
        path.write_text(f"audio:\n  echo_cancel: {written}\n")
        assert load_pipeline(path).audio.echo_cancel == mode, written
    assert errors(tmp_path, "audio:\n  echo_cancel: atuo\n") == [
        "2:16: E105 must be one of 'auto' | 'on' | 'off', got 'atuo' (did you mean 'auto'?)"
    ]


def test_defaults_follow_the_language(tmp_path):
    path = tmp_path / "de.yaml"
    path.write_text("language: de\n")
    config = load_pipeline(path)
    assert (config.asr.model, config.tts.engine, config.tts.voice) == ("base", "espeak", "de")
    path.write_text("{}\n")
    config = load_pipeline(path)
    assert (config.asr.model, config.tts.engine) == ("tiny.en", "piper")
    assert config.vad.end_of_turn_ms == 500 and config.asr.partial_interval_ms == 300


def test_unknown_keys_wrong_types_ranges_and_choices(tmp_path):
    assert errors(
        tmp_path,
        (
            "name: demo\n"
            "language: fr\n"
            "vad:\n"
            "  aggresiveness: 2\n"
            "  end_of_turn_ms: 50\n"
            "asr:\n"
            "  partial_interval_ms: often\n"
            "  beam_size: true\n"
            "tts:\n"
            "  speed: 9\n"
        ),
    ) == [
        "2:11: E105 must be one of 'en' | 'de', got 'fr'",
        "4:3: E102 unknown key 'aggresiveness' (did you mean 'aggressiveness'?)",
        "5:19: E107 50 is out of range [100, 5000]",
        "7:24: E106 expected int, got str 'often'",
        "8:14: E106 expected int, got bool True",
        "10:10: E107 9 is out of range [0.25, 4.0]",
    ]


def test_the_vad_section_is_what_the_endpointer_takes(tmp_path):
    # a turn's voice must gather within the endpointer's start window: checked on load
    assert errors(tmp_path, "vad:\n  min_speech_ms: 500\n") == [
        "2:18: E107 500 is out of range [0, 400]",
    ]
    path = tmp_path / "p.yaml"
    path.write_text("vad:\n  frame_ms: 10\n  end_of_turn_ms: 300\n")
    vad = load_pipeline(path).vad
    endpointer = Endpointer(vad)
    assert endpointer.config is vad and vad.frame_samples == 160
    assert (vad.end_of_turn_ms, vad.preroll_ms) == (300, VadSettings().preroll_ms)


def test_duplicate_keys_are_errors_not_silently_overwritten(tmp_path):
    assert errors(tmp_path, "vad:\n  preroll_ms: 100\n  preroll_ms: 200\n") == [
        "3:3: E005 duplicate key 'preroll_ms' (first defined at line 2)",
    ]


def test_missing_files_models_and_voices(tmp_path):
    assert errors(
        tmp_path,
        (
            "language: de\n"
            "asr:\n"
            "  model: tiny.en\n"
            "tts:\n"
            "  engine: piper\n"
            "  voice: voices/nobody.onnx\n"
        ),
    ) == [
        "3:10: E202 tiny.en is English-only but language is 'de'; use 'base'",
        "6:10: E203 piper voice 'voices/nobody.onnx' not found: use one of en_US-joe-medium "
        "or a path to an .onnx model",
    ]
    assert errors(tmp_path, "asr:\n  model: ./models/nothing-here\n") == [
        "2:10: E201 unknown ASR model './models/nothing-here': use one of tiny.en, base "
        "or a model directory",
    ]
    assert errors(tmp_path, "language: de\nasr:\n  second_pass: tiny.en\n") == [
        "3:16: E202 tiny.en is English-only but language is 'de'; use 'base'",
    ]
    assert errors(tmp_path, "asr:\n  second_pass: large\n") == [
        "2:16: E201 unknown ASR model 'large': use one of tiny.en, base or a model directory",
    ]
    assert errors(tmp_path, "tts:\n  engine: espeak\n  voice: klingon\n") == [
        "3:10: E203 espeak-ng has no voice 'klingon' (e.g. 'de', 'en-us', 'fr')",
    ]


def test_yaml_syntax_errors_and_non_mappings(tmp_path):
    assert errors(tmp_path, "vad: [1, 2\n") == [
        "2:1: E002 YAML syntax error: expected ',' or ']', but got '<stream end>'",
    ]
    assert errors(tmp_path, "vad: 3\n") == ["1:6: E101 expected a mapping for VadSettings"]
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=r"nope.yaml:1:1: E001 cannot read"):
        load_pipeline(missing)


def test_voicebot_check_exit_codes(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("asr:\n  modle: base\n")
    ok = subprocess.run(
        [sys.executable, "-m", "voicebot", "check", str(ECHO_PIPELINE)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert ok.returncode == 0 and "echo.yaml: ok" in ok.stdout
    proc = subprocess.run(
        [sys.executable, "-m", "voicebot", "check", str(bad)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"{bad}:2:3: E102 unknown key 'modle' (did you mean 'model'?)"


def test_remote_engines_keep_a_local_fallback(tmp_path):
    path = tmp_path / "remote.yaml"
    path.write_text(
        "asr:\n"
        "  engine: openai\n"
        "  remote: {preset: openai, timeout_ms: 600}\n"
        "tts:\n"
        "  engine: websocket\n"
        "  remote: {preset: holysheep, hedge_ms: 150, cache: redis}\n"
    )
    config = load_pipeline(path)
    assert (config.asr.engine, config.asr.model) == ("openai", "tiny.en")
    assert config.asr.remote.preset == "openai" and config.asr.remote.timeout_ms == 600
    assert config.tts.is_remote and config.tts.engine == "websocket"
    assert (config.tts.local_engine, config.tts.voice) == ("piper", "en_US-joe-medium")
    assert config.tts.remote.hedge_ms == 150 and config.tts.remote.cache == "redis"
    path.write_text("language: de\ntts:\n  engine: openai\n")
    config = load_pipeline(path)
    assert (config.tts.engine, config.tts.local_engine, config.tts.voice) == (
        "openai",
        "espeak",
        "de",
    )


def test_remote_settings_mistakes(tmp_path):
    assert errors(
        tmp_path,
        (
            "asr:\n"
            "  engine: opneai\n"
            "  remote:\n"
            "    preset: holysheap\n"
            "    hedge_ms: -5\n"
            "    api_key: sk-123\n"
        ),
    ) == [
        "2:11: E105 must be one of 'whisper' | 'openai', got 'opneai' (did you mean 'openai'?)",
        "4:13: E105 must be one of 'openai' | 'holysheep' | 'voicebot', got 'holysheap' "
        "(did you mean 'holysheep'?)",
        "5:15: E107 -5 is out of range [0, 60000]",
        "6:5: E102 unknown key 'api_key' (did you mean 'api_key_env'?)",
    ]
