"""Pipeline YAML: the schema, and loading that reports mistakes as ``file:line:col``.

The schema is a tree of dataclasses. ``load_pipeline`` checks every key and
value against it (unknown keys with a "did you mean", wrong types, ranges,
choices, missing files) and collects all problems before raising one
``ConfigError``, so an author fixes a file in one pass.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from voicebot.diagnostics import ConfigError
from voicebot.yamlsrc import NodePath, Reader, YamlFile, is_type, load


def _spec(
    default: Any = dataclasses.MISSING,
    *,
    lo: float | None = None,
    hi: float | None = None,
    doc: str = "",
) -> Any:
    return field(default=default, metadata={"lo": lo, "hi": hi, "doc": doc})


@dataclass
class AudioSettings:
    denoise: bool = _spec(False, doc="noise suppression + gain (phone audio); off for WebRTC")
    denoise_level: int = _spec(2, lo=0, hi=4, doc="noise suppression strength")
    auto_gain_dbfs: int = _spec(0, lo=0, hi=31, doc="target level for automatic gain; 0 = off")


@dataclass
class VadSettings:
    aggressiveness: int = _spec(2, lo=0, hi=3)
    frame_ms: Literal[10, 20, 30] = 20
    preroll_ms: int = _spec(300, lo=0, hi=2000)
    min_speech_ms: int = _spec(150, lo=0, hi=2000)
    end_of_turn_ms: int = _spec(500, lo=100, hi=5000)


@dataclass
class RemoteSettings:
    """An OpenAI-compatible speech provider (engines ``openai`` / ``websocket``)."""

    preset: Literal["openai", "holysheep", "voicebot"] = _spec(
        "voicebot", doc="provider defaults: URL, key variable, model, voice, prices, rate"
    )
    base_url: str = _spec("", doc="e.g. https://api.openai.com/v1; default: the preset's")
    api_key_env: str = _spec(
        "",
        doc="environment variable holding the key; default: the "
        "preset's (the key itself never goes into YAML or logs)",
    )
    model: str = _spec("", doc="the provider's model, e.g. whisper-1 / tts-1; default: preset's")
    voice: str = _spec("", doc="TTS: the provider's voice, e.g. alloy; default: the preset's")
    timeout_ms: int = _spec(
        0,
        lo=0,
        hi=60000,
        doc="the provider's share of the latency budget "
        "(ASR: final transcript, TTS: first audio of a clause); 0 = 40% "
        "(ASR) / 25% (TTS) of latency_budget_ms",
    )
    fallback: Literal["local", "none"] = _spec(
        "local", doc="past timeout_ms or on failure, use the local engine for that turn/clause"
    )
    hedge_ms: int | None = _spec(
        None,
        lo=0,
        hi=60000,
        doc="start the local engine after this "
        "many ms anyway and take the first answer; unset = no hedge",
    )
    requests_per_minute: float = _spec(0.0, lo=0.0, hi=1e6, doc="0 = the preset's")
    max_concurrency: int = _spec(10, lo=1, hi=1000, doc="requests in flight to this provider")
    max_attempts: int = _spec(3, lo=1, hi=10, doc="tries per request (within the deadline)")
    cache: Literal["none", "memory", "redis"] = _spec(
        "memory", doc="transcripts by audio hash, speech by text + voice"
    )
    redis_url: str = _spec("redis://127.0.0.1:6379/0", doc="cache: redis")
    cache_ttl_s: int = _spec(86400, lo=1, hi=30 * 86400)
    price: float | None = _spec(
        None,
        lo=0.0,
        hi=1000.0,
        doc="USD per audio second (ASR) or per 1000 characters (TTS); default: the preset's",
    )
    partials: bool = _spec(False, doc="ASR: remote partial transcripts (each a billed request)")


@dataclass
class AsrSettings:
    engine: Literal["whisper", "openai"] = _spec(
        "whisper", doc="whisper (local) or openai (any OpenAI-compatible provider, see remote)"
    )
    model: str = _spec(
        "",
        doc="local model: tiny.en, base, or a model directory; default by "
        "language (with a remote engine: the fallback)",
    )
    partial_interval_ms: int = _spec(300, lo=0, hi=5000, doc="0 disables partials")
    context: Literal["none", "prompt"] = _spec(
        "none",
        doc="dialog-aware recognition: prompt = the recogniser conditions on the "
        "bot's last question (Whisper's initial prompt, a provider's prompt); measured with "
        "voicebot bench understanding",
    )
    beam_size: int = _spec(1, lo=1, hi=10)
    compute_type: Literal["int8", "int8_float32", "float32"] = "int8"
    cpu_threads: int = _spec(2, lo=1, hi=64)
    remote: RemoteSettings = field(default_factory=RemoteSettings)


@dataclass
class TtsSettings:
    engine: Literal["piper", "espeak", "openai", "websocket"] = _spec(
        "piper",
        doc="piper, espeak (local); openai (REST, streamed) or websocket (streaming "
        "protocol) on a provider, see remote",
    )
    voice: str = _spec(
        "",
        doc="local voice: piper voice name or .onnx path, espeak voice; "
        "default by language (with a remote engine: the fallback's)",
    )
    speed: float = _spec(1.0, lo=0.25, hi=4.0)
    local_engine: Literal["", "piper", "espeak"] = _spec(
        "", doc="the local engine (fallback of a remote one); default: piper for en, else espeak"
    )
    remote: RemoteSettings = field(default_factory=RemoteSettings)

    @property
    def is_remote(self) -> bool:
        return self.engine in ("openai", "websocket")


@dataclass
class LlmSettings:
    """Optional fallback: an OpenAI-compatible chat-completions endpoint names the intent."""

    enabled: bool = False
    base_url: str = _spec("", doc="e.g. https://api.openai.com/v1 or a local server")
    model: str = _spec("", doc="chat model name")
    api_key_env: str = _spec("OPENAI_API_KEY", doc="environment variable holding the key")
    timeout_ms: int = _spec(0, lo=0, hi=10000, doc="hard timeout; 0 = 40% of the latency budget")


@dataclass
class DialogSettings:
    type: Literal["echo", "flow"] = "echo"
    template: str = _spec("You said: {text}", doc="echo reply; {text} is the final transcript")
    flow: list[str] = field(
        default_factory=list, metadata={"doc": "flow files (type flow), relative to this file"}
    )
    intents: list[str] = field(
        default_factory=list, metadata={"doc": "intent files (type flow), relative to this file"}
    )
    outcomes: str = _spec(
        "", doc="outcome store (SQLite); default var/outcomes.db in the working directory"
    )
    llm: LlmSettings = field(default_factory=LlmSettings)


@dataclass
class PipelineConfig:
    name: str = ""
    language: Literal["en", "de"] = "en"
    latency_budget_ms: int = _spec(1200, lo=100, hi=10000)
    audio: AudioSettings = field(default_factory=AudioSettings)
    vad: VadSettings = field(default_factory=VadSettings)
    asr: AsrSettings = field(default_factory=AsrSettings)
    tts: TtsSettings = field(default_factory=TtsSettings)
    dialog: DialogSettings = field(default_factory=DialogSettings)
    path: Path | None = field(default=None, metadata={"internal": True})

    def __post_init__(self) -> None:
        if not self.asr.model:
            self.asr.model = "tiny.en" if self.language == "en" else "base"
        tts = self.tts
        if not tts.local_engine:
            tts.local_engine = "espeak" if tts.engine == "espeak" else "piper"
            if not tts.voice and self.language != "en":
                tts.local_engine = "espeak"
        if not tts.is_remote:
            tts.engine = tts.local_engine
        if not tts.voice:
            tts.voice = "en_US-joe-medium" if tts.local_engine == "piper" else self.language


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    return getattr(tp, "__name__", str(tp))


class _Builder(Reader):
    """Builds the schema's dataclasses from one pipeline file, reporting every mistake."""

    def __init__(self, src: YamlFile) -> None:
        super().__init__()
        self.src = src

    def error(self, path: NodePath, code: str, message: str) -> None:
        self.err(self.src, path, code, message)

    def build(self, cls: type, data: Any, path: NodePath) -> Any:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            self.error(path, "E101", f"expected a mapping for {cls.__name__}")
            return cls()
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
        kwargs: dict[str, Any] = {}
        for key, value in self.unknown_keys(self.src, data, path, fields, "E102").items():
            checked = self.value(hints[key], fields[key], value, (*path, key))
            if checked is not _BAD:
                kwargs[key] = checked
        for name, f in fields.items():
            if (
                name not in data
                and f.default is dataclasses.MISSING
                and (f.default_factory is dataclasses.MISSING)
            ):
                self.require(self.src, path, name, "E103")
        try:
            return cls(**kwargs)
        except (TypeError, ValueError) as exc:
            self.error(path, "E104", str(exc))
            return _BAD

    def value(self, tp: Any, f: dataclasses.Field[Any], value: Any, path: NodePath) -> Any:
        origin = typing.get_origin(tp)
        if dataclasses.is_dataclass(tp):
            return self.build(tp, value, path)
        if origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if value is None:
                return None
            return self.value(args[0], f, value, path)
        if origin is Literal:
            if not self.choice(self.src, path, value, typing.get_args(tp), "E105"):
                return _BAD
            return value
        if origin is list:
            items = [value] if isinstance(value, str) else value  # one name: a one-item list
            (item_tp,) = typing.get_args(tp)
            if not isinstance(items, list):
                self.error(
                    path,
                    "E106",
                    f"expected a list of {_type_name(item_tp)}, got "
                    f"{type(value).__name__} {value!r}",
                )
                return _BAD
            out = [self.value(item_tp, f, item, (*path, i)) for i, item in enumerate(items)]
            return _BAD if any(v is _BAD for v in out) else out
        if tp not in (bool, int, float, str) or not is_type(value, tp):
            self.error(
                path, "E106", f"expected {_type_name(tp)}, got {type(value).__name__} {value!r}"
            )
            return _BAD
        lo, hi = f.metadata.get("lo"), f.metadata.get("hi")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            self.error(path, "E107", f"{value!r} is out of range [{lo}, {hi}]")
            return _BAD
        return float(value) if tp is float else value


_BAD = object()


def load_pipeline(path: str | Path) -> PipelineConfig:
    """Load and validate a pipeline YAML; raises ``ConfigError`` listing every problem."""
    src, diags = load(path)
    builder = _Builder(src)
    builder.diags.extend(diags)
    config = PipelineConfig()
    if src.data is not None or not diags:
        built = builder.build(PipelineConfig, src.data, ())
        if built is not _BAD:
            config = built
    _check_engines(config, builder)
    _check_dialog(config, builder)
    if builder.diags:
        raise ConfigError(sorted(builder.diags, key=lambda d: (d.line, d.col)))
    config.path = Path(path)
    return config


def _check_engines(config: PipelineConfig, b: _Builder) -> None:
    """Things only knowable with the engines' catalogues: models and voices exist."""
    from voicebot.asr.models import KNOWN_MODELS
    from voicebot.tts.voices import voice_error

    model = config.asr.model
    if model not in KNOWN_MODELS and _relative(b.src, model).is_dir():
        config.asr.model = str(_relative(b.src, model).resolve())  # engines see absolute paths
    elif model not in KNOWN_MODELS:
        b.error(
            ("asr", "model"),
            "E201",
            f"unknown ASR model {model!r}: use one of {', '.join(KNOWN_MODELS)} "
            "or a model directory",
        )
    elif model == "tiny.en" and config.language != "en":
        b.error(
            ("asr", "model"),
            "E202",
            f"tiny.en is English-only but language is {config.language!r}; use 'base'",
        )
    problem = voice_error(config.tts.local_engine, config.tts.voice, base=_relative(b.src, "."))
    if problem:
        b.error(("tts", "voice"), "E203", problem)
    elif config.tts.local_engine == "piper" and config.tts.voice.endswith(".onnx"):
        config.tts.voice = str(_relative(b.src, config.tts.voice).resolve())


def _relative(src: YamlFile, value: str) -> Path:
    p = Path(value)
    return p if p.is_absolute() else Path(src.file).parent / p


def _check_dialog(config: PipelineConfig, b: _Builder) -> None:
    """The dialog's files exist; paths become absolute (the flow itself is checked by ``check``)."""
    dialog = config.dialog
    if dialog.type != "flow":
        return
    if dialog.llm.enabled:
        for key in ("base_url", "model"):
            if not getattr(dialog.llm, key):
                b.require(b.src, ("dialog", "llm"), key, "E103", why="llm enabled")
    for key in ("flow", "intents"):
        paths = getattr(dialog, key)
        if not paths:
            b.require(b.src, ("dialog",), key, "E103", why="dialog type 'flow'")
        resolved = []
        for i, value in enumerate(paths):
            path = _relative(b.src, value)
            if not path.is_file():
                at = (
                    ("dialog", key, i) if ("dialog", key, i) in b.src.positions else ("dialog", key)
                )
                b.error(
                    at,
                    "E204",
                    f"{key} file {value!r} not found (looked in {path.parent.resolve()})",
                )
            resolved.append(str(path.resolve()))
        setattr(dialog, key, resolved)
    if dialog.outcomes:
        dialog.outcomes = str(_relative(b.src, dialog.outcomes).resolve())
