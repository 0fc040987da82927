"""Builds one call's graph from a pipeline config; engines are shared across calls.

The chain, caller to caller::

    source -> resample_in -> [denoise] -> vad -> asr -> dialog -> tts -> resample_out -> playback

Edge policies: caller audio drops its oldest frames when a consumer falls
behind (the caller will not wait); everything from the VAD on blocks, so no
turn event, transcript, reply or reply audio is ever lost.
"""

from __future__ import annotations

import functools

from voicebot.asr.base import AsrEngine
from voicebot.asr.stage import AsrStage
from voicebot.audio.playback import AudioOutput, PlaybackStage
from voicebot.audio.stages import DenoiseStage, ResampleStage, VadStage
from voicebot.audio.vad import VadConfig
from voicebot.clock import Clock
from voicebot.config import AsrSettings, PipelineConfig, TtsSettings
from voicebot.context import CallContext
from voicebot.dialog.echo import EchoDialog
from voicebot.dialog.match import Matcher
from voicebot.graph import Pipeline, Policy, Source, Stage
from voicebot.tts.base import TtsEngine
from voicebot.tts.stage import TtsStage

# Queue sizes in frames. 50 x 20 ms = 1 s of caller audio before drops start.
AUDIO_EDGE = (50, Policy.DROP_OLDEST)
VOICE_EDGE = (100, Policy.DROP_OLDEST)  # voiced audio waits out a final decode
EVENT_EDGE = (200, Policy.BLOCK)
BOT_AUDIO_EDGE = (16, Policy.BLOCK)


@functools.cache
def _asr_engine(model: str, compute_type: str, cpu_threads: int, beam_size: int) -> AsrEngine:
    from voicebot.asr.whisper import WhisperEngine

    return WhisperEngine(model, compute_type=compute_type, cpu_threads=cpu_threads,
                         beam_size=beam_size)


@functools.cache
def _tts_engine(engine: str, voice: str, speed: float) -> TtsEngine:
    if engine == "espeak":
        from voicebot.tts.espeak import EspeakEngine

        return EspeakEngine(voice=voice, rate_wpm=round(160 * speed))
    from voicebot.tts.piper import PiperEngine

    return PiperEngine(voice=voice, speed=speed)


def asr_engine(settings: AsrSettings) -> AsrEngine:
    """The process-wide engine for these settings (models load once per process)."""
    return _asr_engine(settings.model, settings.compute_type, settings.cpu_threads,
                       settings.beam_size)


def tts_engine(settings: TtsSettings) -> TtsEngine:
    return _tts_engine(settings.engine, settings.voice, settings.speed)


async def warm_up(config: PipelineConfig) -> None:
    """Load and exercise the engines (and a flow bot) so the first caller does not pay for it."""
    await asr_engine(config.asr).warm_up()
    await tts_engine(config.tts).warm_up()
    if config.dialog.type == "flow":
        from voicebot.dialog.bot import load_bot

        load_bot(config).matcher(config.language)


def dialog_stage(config: PipelineConfig) -> Stage:
    """The dialog for this pipeline: the echo bot, or a flow over the shared bot and store."""
    if config.dialog.type != "flow":
        return EchoDialog(config.dialog.template)
    from voicebot.dialog.bot import load_bot
    from voicebot.dialog.outcomes import DEFAULT_DB, sqlite_store
    from voicebot.dialog.stage import FlowDialog

    loaded = load_bot(config)
    store = sqlite_store(config.dialog.outcomes or DEFAULT_DB)
    matcher = loaded.matcher(config.language)
    llm = config.dialog.llm
    if llm.enabled:
        timeout_ms = llm.timeout_ms or round(0.4 * config.latency_budget_ms)
        matcher = _llm_matcher(matcher, llm.base_url, llm.model, llm.api_key_env, timeout_ms)
    return FlowDialog(loaded.bot, matcher, store, config.language)


@functools.cache
def _llm_matcher(base: Matcher, base_url: str, model: str, key_env: str,
                 timeout_ms: int) -> Matcher:
    """One fallback matcher (and so one pooled HTTP client) per process and settings."""
    from voicebot.dialog.llm import LlmMatcher

    return LlmMatcher(base, base_url=base_url, model=model, api_key_env=key_env,
                      timeout_s=timeout_ms / 1000)


def build_call(
    config: PipelineConfig,
    source: Source,
    output: AudioOutput,
    clock: Clock | None = None,
    call_id: str | None = None,
) -> Pipeline:
    """One call: a fresh set of stages (per-call state) over the shared engines."""
    ctx = CallContext(clock or Clock())
    if call_id:
        ctx.call_id = call_id
        ctx.bus.call_id = call_id
    vad = config.vad
    stages: list[Stage] = [source, ResampleStage(16000, 1)]
    edges = [AUDIO_EDGE]
    if config.audio.denoise:
        stages.append(DenoiseStage(config.audio.denoise_level, config.audio.auto_gain_dbfs))
        edges.append(AUDIO_EDGE)
    stages += [
        VadStage(VadConfig(
            aggressiveness=vad.aggressiveness,
            frame_ms=vad.frame_ms,
            preroll_ms=vad.preroll_ms,
            min_speech_ms=vad.min_speech_ms,
            end_of_turn_ms=vad.end_of_turn_ms,
        )),
        AsrStage(asr_engine(config.asr), config.language, config.asr.partial_interval_ms),
        dialog := dialog_stage(config),
        TtsStage(tts_engine(config.tts)),
        ResampleStage(output.sample_rate, output.channels, bot=True),
        PlaybackStage(output),
    ]
    edges += [VOICE_EDGE, EVENT_EDGE, EVENT_EDGE, EVENT_EDGE, BOT_AUDIO_EDGE, BOT_AUDIO_EDGE]
    pipeline = Pipeline(ctx, stages, edges)
    if hasattr(dialog, "hang_up"):
        dialog.hang_up = pipeline.hang_up  # `end` / `transfer`: after the last words are played
    if clock is not None and clock.fast:
        clock.idle = pipeline.idle  # type: ignore[attr-defined]
    return pipeline
