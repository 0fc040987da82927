"""docs/pipeline.md is generated from the schema: complete, described, and current."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from tests.support.paths import DOCS
from voicebot import config_docs
from voicebot.config import PipelineConfig


def schema_keys(cls: type = PipelineConfig, prefix: str = "") -> list[tuple[str, dict]]:
    """Every pipeline key as (dotted path, field metadata), sections included."""
    hints = typing.get_type_hints(cls)
    keys = []
    for f in dataclasses.fields(cls):
        if f.metadata.get("internal"):
            continue
        path = f"{prefix}{f.name}"
        keys.append((path, dict(f.metadata)))
        if dataclasses.is_dataclass(hints[f.name]):
            keys += schema_keys(hints[f.name], f"{path}.")
    return keys


def test_every_pipeline_key_has_a_description():
    missing = [path for path, meta in schema_keys() if not str(meta.get("doc", "")).strip()]
    assert missing == [], f"add doc= to these keys in voicebot/config.py: {missing}"
    assert config_docs.undocumented() == []


@dataclasses.dataclass
class _Inner:
    quiet: int = 1


@dataclasses.dataclass
class _Outer:
    said: int = dataclasses.field(default=0, metadata={"doc": "described"})
    inner: _Inner = dataclasses.field(default_factory=_Inner, metadata={"doc": "a section"})


def test_an_undocumented_key_is_found_and_stops_the_docs():
    assert config_docs.undocumented(_Outer) == ["inner.quiet"]
    with pytest.raises(ValueError, match=r"pipeline keys without a doc: inner\.quiet"):
        config_docs.render(_Outer)


def test_the_reference_lists_every_key_in_its_section():
    text = config_docs.render()
    by_section = {tuple(s.paths): s for s in config_docs.sections()}
    assert list(by_section) == [
        ("",),
        ("audio",),
        ("vad",),
        ("asr",),
        ("asr.remote", "tts.remote"),
        ("tts",),
        ("dialog",),
        ("dialog.llm",),
    ]
    paths = {path for path, _ in schema_keys()}
    listed = {
        f"{p}.{k.name}" if p else k.name
        for s in by_section.values()
        for p in s.paths
        for k in s.keys
    }
    assert listed == paths
    assert "| `end_of_turn_ms` | int | `500` | 100 to 5000 | trailing silence" in text
    assert "| `engine` | str | `whisper` | `whisper`, `openai` |" in text
    assert "| `hedge_ms` | int or unset | unset | 0 to 60000 |" in text
    assert "0 = 40% (ASR) / 25% (TTS) of latency_budget_ms" in text


def test_the_committed_reference_is_current():
    committed = (DOCS / "pipeline.md").read_text(encoding="utf-8")
    assert committed == config_docs.render(), (
        f"docs/pipeline.md is out of date with voicebot/config.py: run `{config_docs.COMMAND}`"
        " and commit the result"
    )


def test_the_command_writes_the_reference(tmp_path):
    out = tmp_path / "pipeline.md"
    assert config_docs.main([str(out)]) == 0
    assert out.read_text(encoding="utf-8") == config_docs.render()
    assert config_docs.main([str(tmp_path / "missing" / "pipeline.md")]) == 2
