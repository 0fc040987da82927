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
    doc: str,
) -> Any:
    """A pipeline key: its default, its range (if numeric) and its description."""
    return field(default=default, metadata={"lo": lo, "hi": hi, "doc": doc})


def _doc(text: str) -> dict[str, str]:
    """Field metadata of a pipeline key that holds a list or a section: its description."""
    return {"doc": text}


_INTERNAL = {"internal": True}  # field metadata: set by code, not a pipeline key


DEFAULT_LATENCY_BUDGET_MS = 1200
# Shares of the latency budget a step gets when its own ``timeout_ms`` is 0.
ASR_BUDGET_SHARE = 0.4  # a remote recogniser: the final transcript
TTS_BUDGET_SHARE = 0.25  # a remote voice: the first audio of a clause
LLM_BUDGET_SHARE = 0.4  # the LLM fallback: its reading of the caller's words

VAD_START_WINDOW_MS = 400  # a turn's first min_speech_ms of voice must fall within this

# transports with a phone line behind them (``CallContext.transport``): no echo
# canceller on the caller's side, so ``audio.echo_cancel: auto`` turns ours on
PHONE_TRANSPORTS = frozenset({"sip", "twilio", "telnyx", "vonage", "raw"})


@dataclass
class AudioSettings:
    """Caller audio before the VAD (``audio/echo.py``, ``audio/denoise.py``)."""

    echo_cancel: Literal["auto", "on", "off"] = _spec(
        "auto",
        doc="cancel the bot's own voice echoed back by a phone line or speakerphone (WebRTC "
        "AEC3, the bot's output as the reference), and hold back barge-in while the residual "
        "echo is loud; auto = on for phone calls (SIP, media streams), off for WebRTC (the "
        "browser cancels its own echo) and files; true / false mean on / off",
    )

    denoise: bool = _spec(
        False,
        doc="WebRTC noise suppression and automatic gain on the caller's 16 kHz audio, for "
        "phone lines; off for WebRTC",
    )
    denoise_level: int = _spec(
        2, lo=0, hi=4, doc="noise suppression strength with denoise on: 0 = off, 4 = strongest"
    )
    auto_gain_dbfs: int = _spec(
        0,
        lo=0,
        hi=31,
        doc="with denoise on, automatic gain towards this many dB below full scale; "
        "0 leaves the gain alone",
    )

    def cancels_echo(self, transport: str) -> bool:
        """Whether a call over ``transport`` gets the echo canceller."""
        if self.echo_cancel == "auto":
            return transport in PHONE_TRANSPORTS
        return self.echo_cancel == "on"


@dataclass(frozen=True, slots=True)
class VadSettings:
    """Turn endpointing (``audio/vad.py``): when the caller starts and stops a turn.

    The endpointer takes these settings as they are; ``sample_rate`` and
    ``start_window_ms`` are set by code only. Construction checks the values, so
    a pipeline reports an impossible combination on load.
    """

    aggressiveness: int = _spec(
        2,
        lo=0,
        hi=3,
        doc="webrtcvad mode: how readily a frame is called non-speech; 0 lets most "
        "sound through, 3 filters hardest (noisy lines)",
    )
    frame_ms: Literal[10, 20, 30] = _spec(
        20, doc="length of the frames webrtcvad classifies, and the VAD's time step"
    )
    preroll_ms: int = _spec(
        300,
        lo=0,
        hi=2000,
        doc="audio from before the turn's first voiced frame handed to the ASR with the "
        "turn (soft onsets are often classified as silence)",
    )
    min_speech_ms: int = _spec(
        150,
        lo=0,
        hi=VAD_START_WINDOW_MS,
        doc=f"voice that opens a turn, gathered within {VAD_START_WINDOW_MS} ms; shorter "
        "clicks and coughs are not a turn",
    )
    end_of_turn_ms: int = _spec(
        500,
        lo=100,
        hi=5000,
        doc="trailing silence that ends the caller's turn (a shorter pause, e.g. a breath "
        "between phrases, does not)",
    )
    hold_on_onset: Literal["auto", "on", "off"] = _spec(
        "auto",
        doc="while the bot speaks, hold its audio at the caller's first voiced frame "
        "and resume it if that was no turn (a click, a cough): the bot falls silent "
        "within a frame or two of a barge-in instead of after min_speech_ms; auto = on "
        "for phone calls (SIP, media streams), off for WebRTC and files; true / false "
        "mean on / off",
    )
    sample_rate: int = field(default=16000, metadata=_INTERNAL)
    start_window_ms: int = field(default=VAD_START_WINDOW_MS, metadata=_INTERNAL)

    def __post_init__(self) -> None:
        if self.aggressiveness not in (0, 1, 2, 3):
            raise ValueError(f"aggressiveness must be 0, 1, 2 or 3, got {self.aggressiveness!r}")
        if self.frame_ms not in (10, 20, 30):
            raise ValueError(f"frame_ms must be 10, 20 or 30 (webrtcvad), got {self.frame_ms!r}")
        if self.sample_rate not in _VAD_RATES:
            raise ValueError(
                f"sample_rate must be one of {_VAD_RATES} (webrtcvad), got {self.sample_rate!r}"
            )
        for name in ("preroll_ms", "min_speech_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.end_of_turn_ms < self.frame_ms:
            raise ValueError(
                f"end_of_turn_ms must be at least one frame ({self.frame_ms} ms), "
                f"got {self.end_of_turn_ms!r}"
            )
        if self.start_window_ms < self.min_speech_ms:
            raise ValueError(
                f"start_window_ms ({self.start_window_ms}) must be >= min_speech_ms "
                f"({self.min_speech_ms})"
            )

    @property
    def frame_samples(self) -> int:
        return self.sample_rate * self.frame_ms // 1000

    def holds_on_onset(self, transport: str) -> bool:
        """Whether a call over ``transport`` holds the bot at the caller's onset."""
        if self.hold_on_onset == "auto":
            return transport in PHONE_TRANSPORTS
        return self.hold_on_onset == "on"


_VAD_RATES = (8000, 16000, 32000, 48000)  # the sample rates webrtcvad takes

CacheKind = Literal["none", "memory", "redis"]
"""``RemoteSettings.cache``: results kept nowhere, in this process, or in Redis too."""


@dataclass
class RemoteSettings:
    """An OpenAI-compatible speech provider (engines ``openai`` / ``websocket``)."""

    preset: Literal["openai", "holysheep", "voicebot"] = _spec(
        "voicebot",
        doc="provider defaults: base URL, key variable, model, voice, prices, request rate",
    )
    base_url: str = _spec(
        "", doc="the provider's API root, e.g. https://api.openai.com/v1; empty: the preset's"
    )
    api_key_env: str = _spec(
        "",
        doc="environment variable holding the key; empty: the "
        "preset's (the key itself never goes into YAML or logs)",
    )
    model: str = _spec("", doc="the provider's model, e.g. whisper-1 / tts-1; empty: the preset's")
    voice: str = _spec("", doc="TTS: the provider's voice, e.g. alloy; empty: the preset's")
    timeout_ms: int = _spec(
        0,
        lo=0,
        hi=60000,
        doc="the provider's share of the latency budget "
        f"(ASR: final transcript, TTS: first audio of a clause); 0 = {ASR_BUDGET_SHARE:.0%} "
        f"(ASR) / {TTS_BUDGET_SHARE:.0%} (TTS) of latency_budget_ms",
    )
    fallback: Literal["local", "none"] = _spec(
        "local",
        doc="past timeout_ms or on failure: local = the local engine answers for that "
        "turn/clause, none = no answer",
    )
    hedge_ms: int | None = _spec(
        None,
        lo=0,
        hi=60000,
        doc="start the local engine after this "
        "many ms anyway and take the first answer; unset = no hedge",
    )
    requests_per_minute: float = _spec(
        0.0, lo=0.0, hi=1e6, doc="rate limit on requests to this provider; 0 = the preset's"
    )
    max_concurrency: int = _spec(10, lo=1, hi=1000, doc="requests in flight to this provider")
    max_attempts: int = _spec(
        3, lo=1, hi=10, doc="tries per request, retries included (all within the deadline)"
    )
    cache: Literal["none", "memory", "redis"] = _spec(
        "memory",
        doc="where results are kept: transcripts by audio hash, speech by text + voice; "
        "memory = this process, redis = shared at redis_url",
    )
    redis_url: str = _spec("redis://127.0.0.1:6379/0", doc="the Redis server of cache: redis")
    cache_ttl_s: int = _spec(
        86400, lo=1, hi=30 * 86400, doc="seconds a cached transcript or speech is kept"
    )
    price: float | None = _spec(
        None,
        lo=0.0,
        hi=1000.0,
        doc="USD per audio second (ASR) or per 1000 characters (TTS), for the cost "
        "ledger; unset: the preset's",
    )
    partials: bool = _spec(
        False, doc="ASR: partial transcripts from the provider (each a billed request)"
    )


@dataclass
class AsrSettings:
    """Speech recognition (``asr/``)."""

    engine: Literal["whisper", "openai"] = _spec(
        "whisper", doc="whisper (local) or openai (any OpenAI-compatible provider, see remote)"
    )
    model: str = _spec(
        "",
        doc="local model: tiny.en, base, or a model directory; empty: tiny.en for en, "
        "base otherwise (with a remote engine: the fallback)",
    )
    partial_interval_ms: int = _spec(
        300,
        lo=0,
        hi=5000,
        doc="decode a partial transcript this often while the caller speaks; 0 = no partials",
    )
    context: Literal["none", "prompt", "hints"] = _spec(
        "none",
        doc="dialog-aware recognition: prompt = the recogniser conditions on the "
        "bot's last question (Whisper's initial prompt, a provider's prompt); hints = the "
        "question and how callers answer it (the state's hint, or the hint of the type of "
        "the slot it collects: 'At what time? Half past seven. Quarter to eight. 8 pm.'); "
        "measured with voicebot bench understanding",
    )
    unsure_below: float = _spec(
        0.0,
        lo=0.0,
        hi=1.0,
        doc="a word the local recogniser heard with a lower probability is unsure: a slot "
        "value read only from such words is asked for again, not taken, and an intent "
        "resting on them is no match; 0 = off; the reference pipelines' 0.1 was calibrated "
        "on the dev corpora with voicebot bench understanding --unsure-below",
    )
    second_pass: str = _spec(
        "",
        doc="where a final transcript matches nothing the flow state accepts, recognise the "
        "turn again with this local model (tiny.en, base or a model directory) and match "
        "that; empty = off. English corpora: turn success +5-10 points, but more wrong "
        "actions, and one more decode (base: p50 about 400 ms) on the turns that take it",
    )
    beam_size: int = _spec(
        1, lo=1, hi=10, doc="Whisper beam search width; 1 = greedy decoding (fastest)"
    )
    compute_type: Literal["int8", "int8_float32", "float32"] = _spec(
        "int8", doc="CTranslate2 precision of the local model's weights and arithmetic"
    )
    cpu_threads: int = _spec(
        2, lo=1, hi=64, doc="CPU threads of the local model (shared by every call)"
    )
    remote: RemoteSettings = field(
        default_factory=RemoteSettings,
        metadata=_doc("the provider of engine openai (ignored by whisper)"),
    )


@dataclass
class TtsSettings:
    """Speech synthesis (``tts/``)."""

    engine: Literal["piper", "espeak", "openai", "websocket"] = _spec(
        "piper",
        doc="piper, espeak (local); openai (REST, streamed) or websocket (streaming "
        "protocol) on a provider, see remote",
    )
    voice: str = _spec(
        "",
        doc="local voice: piper voice name or .onnx path, espeak voice; empty: "
        "en_US-joe-medium with piper, else the language (with a remote engine: the fallback's)",
    )
    speed: float = _spec(1.0, lo=0.25, hi=4.0, doc="speaking rate; 1.0 = the voice's own")
    local_engine: Literal["", "piper", "espeak"] = _spec(
        "", doc="the local engine (fallback of a remote one); empty: piper for en, else espeak"
    )
    remote: RemoteSettings = field(
        default_factory=RemoteSettings,
        metadata=_doc("the provider of engines openai and websocket (ignored otherwise)"),
    )

    @property
    def is_remote(self) -> bool:
        return self.engine in ("openai", "websocket")


@dataclass
class LlmSettings:
    """Optional fallback: an OpenAI-compatible chat-completions endpoint names the intent."""

    enabled: bool = _spec(
        False,
        doc="ask the LLM when no other matcher tier understood the caller (type flow); "
        "needs base_url and model",
    )
    base_url: str = _spec(
        "", doc="the endpoint's API root, e.g. https://api.openai.com/v1 or a local server"
    )
    model: str = _spec("", doc="chat model name")
    api_key_env: str = _spec("OPENAI_API_KEY", doc="environment variable holding the key")
    timeout_ms: int = _spec(
        0,
        lo=0,
        hi=10000,
        doc=f"hard timeout on the LLM's answer; 0 = {LLM_BUDGET_SHARE:.0%} of latency_budget_ms",
    )


@dataclass
class DialogSettings:
    """What the bot says back (``dialog/``)."""

    type: Literal["echo", "flow"] = _spec(
        "echo",
        doc="echo repeats the caller (template); flow runs a flow over intents (flow, intents)",
    )
    template: str = _spec("You said: {text}", doc="echo reply; {text} is the final transcript")
    flow: list[str] = field(
        default_factory=list,
        metadata=_doc("flow files (type flow), relative to this file; one name or a list"),
    )
    intents: list[str] = field(
        default_factory=list,
        metadata=_doc("intent files (type flow), relative to this file; one name or a list"),
    )
    outcomes: str = _spec(
        "", doc="outcome store (SQLite); empty: var/outcomes.db in the working directory"
    )
    llm: LlmSettings = field(
        default_factory=LlmSettings, metadata=_doc("the optional LLM fallback of type flow")
    )


@dataclass
class PipelineConfig:
    """A pipeline YAML file: one voice bot, from caller audio to reply audio."""

    name: str = _spec("", doc="the pipeline's name, shown by the server (/healthz, hello event)")
    language: Literal["en", "de"] = _spec(
        "en", doc="the call's language; picks the default ASR model and TTS voice"
    )
    latency_budget_ms: int = _spec(
        DEFAULT_LATENCY_BUDGET_MS,
        lo=100,
        hi=10000,
        doc="voice-to-voice target, from the end of the caller's voice to the bot's first "
        "reply audio (voicebot bench calls checks p95 against it); remote engines and the "
        "LLM fallback get shares of it (their timeout_ms)",
    )
    audio: AudioSettings = field(
        default_factory=AudioSettings, metadata=_doc("caller audio clean-up")
    )
    vad: VadSettings = field(default_factory=VadSettings, metadata=_doc("turn endpointing"))
    asr: AsrSettings = field(default_factory=AsrSettings, metadata=_doc("speech recognition"))
    tts: TtsSettings = field(default_factory=TtsSettings, metadata=_doc("speech synthesis"))
    dialog: DialogSettings = field(
        default_factory=DialogSettings, metadata=_doc("what the bot says: echo or a flow")
    )
    path: Path | None = field(default=None, metadata=_INTERNAL)

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
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            return self.build(tp, value, path)
        if origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if value is None:
                return None
            return self.value(args[0], f, value, path)
        if origin is Literal:
            if isinstance(value, bool) and {"on", "off"} <= set(typing.get_args(tp)):
                value = "on" if value else "off"  # YAML 1.1: true, on, yes are one boolean
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
    from voicebot.tts.voices import voice_error

    config.asr.model = _checked_model(config.asr.model, "model", config, b)
    if config.asr.second_pass:
        config.asr.second_pass = _checked_model(config.asr.second_pass, "second_pass", config, b)
    problem = voice_error(config.tts.local_engine, config.tts.voice, base=_relative(b.src, "."))
    if problem:
        b.error(("tts", "voice"), "E203", problem)
    elif config.tts.local_engine == "piper" and config.tts.voice.endswith(".onnx"):
        config.tts.voice = str(_relative(b.src, config.tts.voice).resolve())


def _checked_model(model: str, key: str, config: PipelineConfig, b: _Builder) -> str:
    """A local ASR model of ``asr.<key>``: known, or a directory (made absolute: engines
    see absolute paths), and able to hear the pipeline's language."""
    from voicebot.asr.models import KNOWN_MODELS

    if model not in KNOWN_MODELS and _relative(b.src, model).is_dir():
        return str(_relative(b.src, model).resolve())
    if model not in KNOWN_MODELS:
        b.error(
            ("asr", key),
            "E201",
            f"unknown ASR model {model!r}: use one of {', '.join(KNOWN_MODELS)} "
            "or a model directory",
        )
    elif model == "tiny.en" and config.language != "en":
        b.error(
            ("asr", key),
            "E202",
            f"tiny.en is English-only but language is {config.language!r}; use 'base'",
        )
    return model


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
