"""Builds one call's graph from a pipeline config; engines are shared across calls.

The chain, caller to caller::

    source -> resample_in -> [echo_cancel] -> [denoise] -> vad -> asr -> dialog
           -> tts -> resample_out -> playback

With the echo canceller (``audio.echo_cancel``: on, or auto on a phone
transport) the transport output is wrapped so that playback also hands each
frame to the canceller, as its reference.

Edge policies: caller audio drops its oldest frames when a consumer falls
behind (the caller will not wait); everything from the VAD on blocks, so no
turn event, transcript, reply or reply audio is ever lost.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable

import numpy as np

from voicebot import engines
from voicebot.asr.base import AsrEngine
from voicebot.asr.stage import AsrStage
from voicebot.audio.echo import EchoCanceller, EchoReference
from voicebot.audio.playback import AudioOutput, PlaybackStage
from voicebot.audio.resample import StreamResampler
from voicebot.audio.stages import DenoiseStage, EchoCancelStage, ResampleStage, VadStage
from voicebot.clock import Clock
from voicebot.config import LLM_BUDGET_SHARE, PipelineConfig
from voicebot.context import CallContext
from voicebot.dialog.echo import EchoDialog
from voicebot.dialog.flow import Flow
from voicebot.dialog.prompt import Prompt
from voicebot.graph import EdgeSpec, Overflow, Pipeline, Source, Stage
from voicebot.nlu.match import Matcher
from voicebot.tts.base import TtsEngine
from voicebot.tts.stage import TtsStage

log = logging.getLogger(__name__)

# Queue sizes in frames. 50 x 20 ms = 1 s of caller audio before drops start.
AUDIO_EDGE = EdgeSpec(50, Overflow.DROP_OLDEST)
# Into the VAD: 2 s, so caller audio waits out a final decode (the VAD blocks on the ASR).
VOICE_EDGE = EdgeSpec(100, Overflow.DROP_OLDEST)
EVENT_EDGE = EdgeSpec(200, Overflow.BLOCK)
BOT_AUDIO_EDGE = EdgeSpec(16, Overflow.BLOCK)


def asr_engine(config: PipelineConfig) -> AsrEngine:
    """The process-wide ASR engine of this pipeline (models load once per process)."""
    return engines.asr_engine(config.asr, config.latency_budget_ms)


def second_pass_engine(config: PipelineConfig) -> AsrEngine | None:
    """The local model that recognises a turn again where its transcript matched nothing
    (``asr.second_pass``), or None."""
    asr = config.asr
    if not asr.second_pass:
        return None
    return engines.local_asr(asr.second_pass, asr.compute_type, asr.cpu_threads, asr.beam_size)


def tts_engine(config: PipelineConfig) -> TtsEngine:
    return engines.tts_engine(config.tts, config.latency_budget_ms)


async def warm_up(config: PipelineConfig) -> None:
    """Load and exercise the engines (and a flow bot) so the first caller does not pay for it."""
    await asr_engine(config).warm_up()
    second = second_pass_engine(config)
    if second is not None:
        await second.warm_up()
    await tts_engine(config).warm_up()
    if config.dialog.type == "flow":
        from voicebot.dialog.bot import load_bot

        loaded = load_bot(config)
        # the statistical tier may train here (seconds of CPU): not on the event loop
        await asyncio.to_thread(loaded.matcher, config.language)
        if config.tts.is_remote:
            await prefetch_prompts(
                tts_engine(config), fixed_prompts(loaded.bot.flow, config.language)
            )


def fixed_prompts(flow: Flow, language: str) -> list[str]:
    """The flow's prompts without placeholders: what the bot says the same way every call."""
    prompts: list[Prompt | None] = []
    for state in flow.states.values():
        prompts += [state.say, state.ask, state.reprompt, state.silence.say, state.no_match.say]
    texts = {
        p.texts[language]
        for p in prompts
        if p is not None and not p.placeholders() and language in p.texts
    }
    return sorted(texts)


async def prefetch_prompts(engine: TtsEngine, texts: list[str]) -> int:
    """Synthesize ``texts`` once on the provider, clause by clause as the TTS stage splits
    them, so calls get them from the cache; returns the clauses fetched. Batch priority:
    live calls go first. Failures are logged, never fatal (calls fetch what is missing)."""
    from voicebot.providers.errors import ProviderError
    from voicebot.providers.limits import Priority
    from voicebot.tts.remote import RemoteTtsEngine
    from voicebot.tts.split import split_clauses
    from voicebot.tts.stage import FIRST_MAX_CHARS, FIRST_MIN_CHARS

    remote = getattr(engine, "remote", engine)
    if not isinstance(remote, RemoteTtsEngine) or remote.cache is None:
        return 0
    fetched = 0
    for text in texts:
        for clause in split_clauses(text, FIRST_MIN_CHARS, first_max_chars=FIRST_MAX_CHARS):
            try:
                chunks = remote.synthesize_with(
                    clause, priority=Priority.BATCH, deadline=time.monotonic() + 5.0
                )
                samples = sum([len(chunk) async for chunk in chunks])  # lands in the cache
                fetched += samples > 0
            except ProviderError as exc:
                log.warning("prefetching prompt audio failed (%s); calls will fetch it", exc)
                return fetched
    return fetched


def dialog_stage(config: PipelineConfig, hang_up: Callable[[str], None] | None = None) -> Stage:
    """The dialog for this pipeline: the echo bot, or a flow over the shared bot and store
    that ends the call with ``hang_up(reason)``."""
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
        timeout_ms = llm.timeout_ms or round(LLM_BUDGET_SHARE * config.latency_budget_ms)
        matcher = _llm_matcher(matcher, llm.base_url, llm.model, llm.api_key_env, timeout_ms)
    return FlowDialog(loaded.bot, matcher, store, config.language, hang_up=hang_up)


@functools.cache
def _llm_matcher(
    base: Matcher, base_url: str, model: str, key_env: str, timeout_ms: int
) -> Matcher:
    """One fallback matcher (and so one pooled HTTP client) per process and settings."""
    from voicebot.nlu.llm import LlmMatcher

    return LlmMatcher(
        base, base_url=base_url, model=model, api_key_env=key_env, timeout_s=timeout_ms / 1000
    )


def build_call(
    config: PipelineConfig,
    source: Source,
    output: AudioOutput,
    clock: Clock | None = None,
    call_id: str | None = None,
    *,
    transport: str = "file",
) -> Pipeline:
    """One call: a fresh set of stages (per-call state) over the shared engines.

    ``transport`` is how the caller is connected ("file", "webrtc", "sip", "twilio",
    …): it labels the call and, with ``audio.echo_cancel: auto``, decides the canceller.
    """
    ctx = CallContext(clock or Clock(), transport=transport)
    if call_id:
        ctx.call_id = call_id
        ctx.bus.call_id = call_id
    pipeline = Pipeline(ctx)
    resample_in = ResampleStage(16000, 1)
    # the bot's output, as played, is the canceller's reference
    canceller = EchoCanceller() if config.audio.cancels_echo(transport) else None
    if canceller is not None:
        output = EchoReference(output, canceller)
    denoise = (
        DenoiseStage(config.audio.denoise_level, config.audio.auto_gain_dbfs)
        if config.audio.denoise
        else None
    )
    vad = VadStage(config.vad, echo=canceller, hold=config.vad.holds_on_onset(transport))
    asr = AsrStage(
        asr_engine(config),
        config.language,
        config.asr.partial_interval_ms,
        context=config.asr.context in ("prompt", "hints"),
        hints=config.asr.context == "hints",
        unsure_below=config.asr.unsure_below,
        second_pass=second_pass_engine(config),
    )
    # `end` / `transfer` hang up after the last words are played
    dialog = dialog_stage(config, hang_up=pipeline.hang_up)
    tts = TtsStage(tts_engine(config))
    resample_out = ResampleStage(output.sample_rate, output.channels, bot=True)
    playback = PlaybackStage(output)

    pipeline.connect(source, resample_in, AUDIO_EDGE)
    caller_audio: Stage = resample_in
    if canceller is not None:
        # inline: on worker threads AEC3 is slower (``bench echo``'s load figures)
        echo_cancel = EchoCancelStage(canceller)
        pipeline.connect(resample_in, echo_cancel, AUDIO_EDGE)
        caller_audio = echo_cancel
    if denoise is not None:
        pipeline.connect(caller_audio, denoise, AUDIO_EDGE)
        caller_audio = denoise
    pipeline.connect(caller_audio, vad, VOICE_EDGE)
    pipeline.connect(vad, asr, EVENT_EDGE)
    pipeline.connect(asr, dialog, EVENT_EDGE)
    pipeline.connect(dialog, tts, EVENT_EDGE)
    pipeline.connect(tts, resample_out, BOT_AUDIO_EDGE)
    pipeline.connect(resample_out, playback, BOT_AUDIO_EDGE)
    return pipeline


async def say_after_end(call: Pipeline, output: AudioOutput, text: str) -> float:
    """Speak ``text`` to the caller after ``call``'s graph has ended (the transfer failed,
    the line is still up): its TTS engine, paced 20 ms frames on the call clock straight
    to ``output``. Returns the seconds played."""
    tts = next((s for s in call.stages if isinstance(s, TtsStage)), None)
    if tts is None or not text:
        return 0.0
    engine = tts.engine
    resampler = StreamResampler(engine.sample_rate, 1, output.sample_rate, output.channels)
    chunks = [resampler.process(chunk) async for chunk in engine.synthesize(text)]
    chunks.append(resampler.flush())
    pcm = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
    step = output.sample_rate // 50 * output.channels
    clock = call.ctx.clock
    t = clock.now()
    for start in range(0, len(pcm), step):
        frame = pcm[start : start + step]
        if len(frame) < step:
            frame = np.concatenate([frame, np.zeros(step - len(frame), np.int16)])
        await clock.sleep_until(t)
        output.write(frame, t)
        t += 0.02
    return len(pcm) / output.channels / output.sample_rate
