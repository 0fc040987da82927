"""``voicebot run``: one offline call from a caller WAV, through the live graph."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from voicebot.call import build_call, warm_up
from voicebot.clock import Clock, FastClock
from voicebot.config import PipelineConfig
from voicebot.events import EventRecord, JsonlWriter
from voicebot.transports.file import WavOutput, WavSource


@dataclass
class RunResult:
    reason: str
    events: list[EventRecord]
    output: Path

    def of_type(self, type: str) -> list[EventRecord]:
        return [e for e in self.events if e["type"] == type]


async def run_file(
    config: PipelineConfig,
    input: str | Path,
    output: str | Path,
    events_path: str | Path | None = None,
    *,
    fast: bool = False,
    tail: float = 1.0,
    mix: str | Path | None = None,
) -> RunResult:
    """Push ``input`` through the pipeline; writes the bot's audio aligned with the caller's."""
    await warm_up(config)
    source = WavSource(input, tail=tail)
    caller_mono = source.pcm if source.channels == 1 else None
    sink = WavOutput(
        output,
        source.sample_rate,
        source.channels,
        min_duration=source.duration,
        caller=caller_mono,
        mix_path=mix,
    )
    clock = FastClock() if fast else Clock()
    pipeline = build_call(config, source, sink, clock)
    events: list[EventRecord] = []
    pipeline.ctx.bus.subscribe(events.append)
    stream: Any = None
    if events_path is not None:
        # Small line writes to the page cache: cheap enough for the loop, and
        # flushed per event so a crash keeps everything up to it.
        stream = open(events_path, "w", encoding="utf-8")  # noqa: ASYNC230
        pipeline.ctx.bus.subscribe(JsonlWriter(stream))
    try:
        reason = await pipeline.run()
    finally:
        if stream is not None:
            stream.close()
    return RunResult(reason, events, Path(output))


def summary(result: RunResult) -> str:
    """A short human-readable account of the call for the terminal."""
    lines = []
    for e in result.events:
        if e["type"] == "transcript" and e["final"]:
            lines.append(f"{e['t']:7.2f}s caller: {e['text']}")
        elif e["type"] == "reply":
            lines.append(f"{e['t']:7.2f}s bot:    {e['text']}")
        elif e["type"] == "turn":
            lines.append(
                f"         turn {e['turn']}: voice-to-voice {e['voice_to_voice_ms']} ms "
                f"(asr {e['asr_ms']}, tts {e['tts_ms']})"
            )
        elif e["type"] == "error":
            lines.append(f"{e['t']:7.2f}s ERROR in {e['stage']}: {e['message']}")
        elif e["type"] == "call_ended":
            lines.append(
                f"{e['t']:7.2f}s call ended: {e['reason']}, worst loop lag "
                f"{e['worst_loop_lag_ms']} ms ({e['loop']})"
            )
    return "\n".join(lines)
