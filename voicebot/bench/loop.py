"""``voicebot bench loop``: the voice loop's figures on this machine.

Prints a table and writes JSON. Targets live here, not in timed tests:

* frame path (resample + VAD + queue hops, models excluded) per 20 ms frame;
* worst event-loop lag during a call with local engines;
* ASR final transcript after the end-of-turn decision, 1-6 s utterances;
* TTS first audio after the reply text exists;
* voice-to-voice per turn with the default 500 ms end-of-turn silence.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy.signal import resample_poly

from voicebot import runtime
from voicebot.audio.stages import ResampleStage, VadStage
from voicebot.bench.stats import summary
from voicebot.bundled import pipeline
from voicebot.clock import FastClock
from voicebot.config import PipelineConfig, load_pipeline
from voicebot.context import CallContext
from voicebot.frames import AudioFrame, Frame
from voicebot.graph import Overflow, Pipeline, Source, Stage

DEFAULT_PIPELINE = pipeline("echo")

# Utterances of roughly 1, 2, 3, 4, 5 and 6 seconds in the bundled voice.
UTTERANCES = (
    "Yes, please.",
    "A table for four people.",
    "I would like to book a table for tonight.",
    "Could I book a table for four people on Friday evening?",
    "Hello, I would like to book a table for six people on Saturday at eight.",
    "Good evening, I would like to book a table for four people on Friday at half past "
    "seven, please.",
)
REPLIES = (
    "You said: a table for four people.",
    "Sure. For how many people would you like to book, and on which day?",
    "A table for four on Friday at half past seven, shall I book it?",
    "Welcome to Luigi's. How can I help you?",
)


# --- frame path ----------------------------------------------------------------


class _ArraySource(Source):
    def __init__(self, pcm: np.ndarray, rate: int, channels: int) -> None:
        super().__init__()
        n = rate // 50 * channels
        self.frames = [pcm[i : i + n] for i in range(0, len(pcm) - n + 1, n)]
        self.rate, self.channels = rate, channels

    async def produce(self) -> None:
        for i, pcm in enumerate(self.frames):
            await self.push(AudioFrame(pcm, self.rate, self.channels, i * 0.02))


class _Null(Stage):
    name = "sink"

    async def process(self, frame: Frame) -> None:
        return None


def _timed(stage: Stage, samples: list[float]) -> Stage:
    process = stage.process

    async def timed(frame: Frame) -> None:
        start = time.perf_counter_ns()
        await process(frame)
        samples.append((time.perf_counter_ns() - start) / 1000)

    # timing wraps the instance's own coroutine in place: the stage under test stays the
    # same object in its pipeline (mypy forbids assigning to a method)
    stage.process = timed  # type: ignore[method-assign]
    return stage


async def frame_path(speech: np.ndarray, seconds: float = 60.0) -> dict[str, Any]:
    """48 kHz stereo caller audio through resample_in -> vad -> sink, unpaced.

    Per-stage figures are the time inside each stage's ``process`` (a stage's
    push into a full edge would count, but edges here never fill). The total is
    wall time per frame for the whole chain, queue hops and task switches
    included.
    """
    reps = int(seconds * 16000 / len(speech)) + 1
    audio16 = np.tile(speech, reps)[: int(seconds * 16000)]
    stereo48 = np.repeat(resample_poly(audio16.astype(np.float32), 3, 1), 2)
    pcm = np.clip(stereo48, -32768, 32767).astype(np.int16)
    per_stage: dict[str, list[float]] = {"resample_in": [], "vad": []}
    source = _ArraySource(pcm, 48000, 2)
    stages = [
        source,
        _timed(ResampleStage(16000, 1), per_stage["resample_in"]),
        _timed(VadStage(), per_stage["vad"]),
        _Null(),
    ]
    ctx = CallContext(FastClock())
    # Blocking edges: the source is unpaced, and every frame must be measured.
    pipeline = Pipeline(ctx, stages, [(50, Overflow.BLOCK)] * 3)
    start = time.perf_counter()
    await pipeline.run()
    wall = time.perf_counter() - start
    frames = len(source.frames)
    return {
        "frames": frames,
        "total_us_per_frame": round(wall / frames * 1e6, 1),
        "stages_us": {name: summary(v) for name, v in per_stage.items()},
        "drops": sum(e.dropped for e in pipeline.edges),
    }


# --- engines -----------------------------------------------------------------


async def asr_latency(config: PipelineConfig, repeat: int) -> dict[str, Any]:
    """Final-transcript decode time per utterance length (what follows end of turn)."""
    from voicebot.call import asr_engine
    from voicebot.samples import speak

    engine = asr_engine(config)
    await engine.warm_up()
    out: dict[str, Any] = {}
    for text in UTTERANCES:
        audio = speak(text).astype(np.float32) / 32768
        times = []
        for _ in range(repeat):
            session = engine.session(config.language)
            for i in range(0, len(audio), 320):
                session.feed(audio[i : i + 320])
            start = time.perf_counter()
            result = await session.finish()
            times.append((time.perf_counter() - start) * 1000)
        out[f"{len(audio) / 16000:.1f}s"] = {**summary(times), "text": result.text}
    return out


async def tts_first_audio(config: PipelineConfig, repeat: int) -> dict[str, Any]:
    """Time from reply text to its first audio chunk, clause splitting included."""
    from voicebot.call import tts_engine
    from voicebot.tts.split import split_clauses
    from voicebot.tts.stage import FIRST_MAX_CHARS, FIRST_MIN_CHARS

    engine = tts_engine(config)
    await engine.warm_up()
    times = []
    for _ in range(repeat):
        for reply in REPLIES:
            start = time.perf_counter()
            first = split_clauses(reply, FIRST_MIN_CHARS, first_max_chars=FIRST_MAX_CHARS)[0]
            chunks = engine.synthesize(first)
            await anext(chunks)
            times.append((time.perf_counter() - start) * 1000)
            await chunks.aclose()
    return summary(times)


async def voice_loop(config: PipelineConfig, fast: bool) -> dict[str, Any]:
    """A whole call through ``voicebot run``'s graph: per-turn latencies and loop lag."""
    from voicebot.runner import run_file
    from voicebot.samples import write_caller

    with tempfile.TemporaryDirectory() as tmp:
        caller = Path(tmp) / "caller.wav"
        write_caller(caller, list(UTTERANCES), pause=3.0)
        result = await run_file(config, caller, Path(tmp) / "bot.wav", fast=fast)
    turns = result.of_type("turn")
    ended = result.of_type("call_ended")[0]
    keys = ("endpoint_ms", "asr_ms", "dialog_ms", "tts_ms", "playback_ms", "voice_to_voice_ms")
    return {
        "mode": "fast" if fast else "real-time",
        "turns": len(turns),
        **{k: summary([t[k] for t in turns if t[k] is not None]) for k in keys},
        "worst_loop_lag_ms": ended["worst_loop_lag_ms"],
        "loop": ended["loop"],
        "drops": ended.get("drops", {}),
    }


async def bench_loop(config: PipelineConfig, repeat: int, fast: bool) -> dict[str, Any]:
    from voicebot.bench.resample import compare
    from voicebot.samples import speak

    speech = speak(" ".join(UTTERANCES[3:]))
    return {
        "components_us_per_frame": compare(2000),
        "frame_path": await frame_path(speech),
        "asr_final_ms": await asr_latency(config, repeat),
        "tts_first_audio_ms": await tts_first_audio(config, repeat),
        "voice_loop": await voice_loop(config, fast),
    }


def report(result: dict[str, Any]) -> str:
    lines = ["frame path (models excluded), per 20 ms frame:"]
    fp = result["frame_path"]
    lines.append(
        f"  total through the graph: {fp['total_us_per_frame']} us "
        f"({fp['frames']} frames, {fp['drops']} drops)"
    )
    for name, s in fp["stages_us"].items():
        lines.append(f"  {name:12s} p50 {s['p50']:7.1f} us  p99 {s['p99']:7.1f} us")
    lines.append("components (us per 20 ms frame):")
    for name, figures in result["components_us_per_frame"].items():
        shown = ", ".join(f"{k} {v:.1f}" for k, v in figures.items() if "_us" in k or "snr" in k)
        lines.append(f"  {name}: {shown}")
    lines.append("ASR final transcript after end of turn (ms):")
    for length, s in result["asr_final_ms"].items():
        lines.append(f"  {length:>5s} p50 {s['p50']:6.1f}  p90 {s['p90']:6.1f}  {s['text']!r}")
    t = result["tts_first_audio_ms"]
    lines.append(f"TTS first audio (ms): p50 {t['p50']}  p90 {t['p90']}  max {t['max']}")
    v = result["voice_loop"]
    lines.append(f"voice loop ({v['mode']}, {v['turns']} turns, loop {v['loop']}):")
    for k in ("endpoint_ms", "asr_ms", "tts_ms", "voice_to_voice_ms"):
        s = v[k]
        lines.append(f"  {k:18s} p50 {s.get('p50')}  p90 {s.get('p90')}  max {s.get('max')}")
    lines.append(f"  worst event-loop lag: {v['worst_loop_lag_ms']} ms")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    config = load_pipeline(args.pipeline or DEFAULT_PIPELINE)
    result = runtime.run(bench_loop(config, args.repeat, args.fast))
    print(report(result))
    Path(args.json_path).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json_path).write_text(json.dumps(result, indent=2))
    print(f"JSON: {args.json_path}")
    return 0
