"""``voicebot bench echo``: the bot's own voice fed back by a simulated phone line.

Each call runs the real graph (``build_call``, fast clock) over an 8 kHz line
that returns the bot's audio to the caller side -10 to -20 dB down, 50-200 ms
late, band-limited to 300-3400 Hz, on top of a synthesized caller (the
bundled voice). The caller says something, waits out the bot's reply, says
something long, and barges in with "Stop, please." once the bot has been
answering for a second. The same calls run three ways:

* ``echo``: the echo line, no canceller - the bot hears itself;
* ``cancelled``: the echo line with ``audio.echo_cancel`` on;
* ``clean``: no echo, no canceller - the barge-in latency without an echo path.

Figures: self-interruptions per call (an ``interrupted`` event that is not the
caller's barge-in), turns the echo opened, false holds (``vad.hold_on_onset``
held the bot's audio for something that was no turn, and it resumed) and the
barge-in latency - from the onset of the caller's "Stop" in the line audio to
the end of the bot's last frame on the line before the interruption.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.signal import butter, lfilter, lfilter_zi

from voicebot import runtime
from voicebot.bench.stats import summary
from voicebot.bundled import pipeline
from voicebot.clock import Clock, FastClock
from voicebot.config import PipelineConfig, load_pipeline
from voicebot.events import EventRecord
from voicebot.frames import AudioFrame
from voicebot.graph import Source

DEFAULT_PIPELINE = pipeline("echo")
LINE_RATE = 8000
FRAME = LINE_RATE // 50  # 20 ms
MODES = ("echo", "cancelled", "clean")
FIRST = "I would like to book a table for six people on Saturday evening at eight o'clock."
SECOND = "Could I book a table for four people on Friday evening, by the window?"
STOP = "Stop, please."
REPLY_QUIET_S = 1.2  # the bot has finished its reply after this much silence
BARGE_AFTER_S = 1.0  # the caller barges in once the bot has answered this long
WAIT_S = 12.0  # give up waiting for the bot after this long
ATTRIBUTION_S = 1.0  # an interruption this soon after the caller's onset is the barge-in
# (when, words): "start", "after_reply" (the bot answered and went quiet), "during_reply"
SCRIPT = (("start", FIRST), ("after_reply", SECOND), ("during_reply", STOP))


@dataclass(frozen=True, slots=True)
class Line:
    """The echo path of one simulated call."""

    delay_ms: float
    gain_db: float


def lines(calls: int, seed: int = 0) -> list[Line]:
    """``calls`` echo paths, 50-200 ms late and -10 to -20 dB down, reproducibly."""
    rng = np.random.default_rng(seed)
    return [
        Line(round(float(rng.uniform(50, 200)), 1), round(float(rng.uniform(-20, -10)), 1))
        for _ in range(calls)
    ]


class LineOutput:
    """The bot's side of the line: what playback sends, on the call's timeline."""

    sample_rate = LINE_RATE
    channels = 1

    def __init__(self, seconds: float = 120.0) -> None:
        self.audio = np.zeros(round(seconds * LINE_RATE), np.int16)
        self.played = np.zeros(len(self.audio) // FRAME + 1, bool)  # per 20 ms slot

    def write(self, pcm: np.ndarray, t: float) -> None:
        start = round(t * LINE_RATE)
        end = min(start + len(pcm), len(self.audio))
        if start < end:
            self.audio[start:end] = pcm[: end - start]
            self.played[start // FRAME] = True

    def played_between(self, t0: float, t1: float) -> float:
        """Seconds of bot audio in ``[t0, t1)``."""
        a, b = max(0, round(t0 * 50)), min(len(self.played), round(t1 * 50))
        return float(self.played[a:b].sum()) / 50 if b > a else 0.0

    def stop_before(self, onset: float, interrupted: float) -> float | None:
        """When the bot fell silent for good between ``onset`` and the ``interrupted``
        event: the end of its last audio before the interruption (None: it was not
        playing at the onset). A hold that was resumed is not a stop."""
        slot = round(onset * 50)
        if slot >= len(self.played) or not self.played[max(0, slot - 1) : slot + 1].any():
            return None
        end = min(len(self.played), round(interrupted * 50) + 1)
        voiced = np.flatnonzero(self.played[slot:end])
        return (slot + int(voiced[-1]) + 1) / 50 if len(voiced) else slot / 50


class EchoLineSource(Source):
    """The caller's side of the line: the scripted caller plus the bot's echo."""

    name = "source"

    def __init__(
        self,
        output: LineOutput,
        line: Line | None,
        speech: dict[str, np.ndarray],
        script: tuple[tuple[str, str], ...] = SCRIPT,
    ) -> None:
        super().__init__()
        self.script = script
        self.output = output
        self.speech = speech
        self.stop_onset: float | None = None  # line time the caller's "Stop" begins
        self._delay = round(line.delay_ms * LINE_RATE / 1000) if line else None
        self._gain = 10 ** (line.gain_db / 20) if line else 0.0
        b, a = butter(2, [300 / (LINE_RATE / 2), 3400 / (LINE_RATE / 2)], "band")
        self._filter = (b, a)
        self._zi = lfilter_zi(b, a) * 0.0

    def _echo(self, start: int) -> np.ndarray:
        if self._delay is None:
            return np.zeros(FRAME)
        a = start - self._delay
        bot = np.zeros(FRAME)
        lo, hi = max(a, 0), max(a + FRAME, 0)
        bot[lo - a : hi - a] = self.output.audio[lo:hi]
        b, den = self._filter
        echo, self._zi = lfilter(b, den, bot, zi=self._zi)
        return np.asarray(echo) * self._gain

    async def produce(self) -> None:
        clock = self.ctx.clock
        script = list(self.script)
        pending = np.zeros(0, np.int16)
        said_until = 0.0  # line time the caller's last words ended
        end_at: float | None = None
        k = 0
        while end_at is None or k * 0.02 < end_at:
            pts = k * 0.02
            await clock.sleep_until(pts + 0.02)
            if not len(pending) and script and self._ready(script[0][0], pts, said_until):
                words = script.pop(0)[1]
                pending = self.speech[words]
                if words == STOP:
                    onset = int(np.argmax(np.abs(pending) > 500))
                    self.stop_onset = pts + onset / LINE_RATE
                said_until = pts + len(pending) / LINE_RATE
                if not script:
                    end_at = said_until + WAIT_S / 2
            chunk = np.zeros(FRAME)
            take = pending[:FRAME]
            chunk[: len(take)] = take
            pending = pending[FRAME:]
            mixed = chunk + self._echo(k * FRAME)
            pcm = np.clip(np.round(mixed), -32768, 32767).astype(np.int16)
            await self.push(AudioFrame(pcm, LINE_RATE, 1, pts))
            k += 1

    def _ready(self, when: str, now: float, said_until: float) -> bool:
        if when == "start":
            return now >= 0.3
        waited = now - said_until
        if waited >= WAIT_S:
            return True
        out = self.output
        if when == "after_reply":
            answered = out.played_between(said_until, now) > 0
            return answered and out.played_between(now - REPLY_QUIET_S, now) == 0
        # during_reply: the bot has been answering for BARGE_AFTER_S without a break
        return (
            now - BARGE_AFTER_S >= said_until
            and out.played_between(now - BARGE_AFTER_S, now) >= BARGE_AFTER_S - 0.02
        )


def speech_for_calls() -> dict[str, np.ndarray]:
    from voicebot.samples import speak

    return {text: speak(text, "en", LINE_RATE) for text in (FIRST, SECOND, STOP)}


async def one_call(
    config: PipelineConfig,
    line: Line | None,
    cancel: bool,
    speech: dict[str, np.ndarray],
    script: tuple[tuple[str, str], ...] = SCRIPT,
    clock: Clock | None = None,
) -> dict[str, Any]:
    """One simulated call; its self-interruptions, echo turns and barge-in latency.

    On a ``FastClock`` (the default) model work takes its real time, as on a call; a
    ``VirtualClock`` leaves it out, so the outcome is the same on a busy machine."""
    from voicebot.call import build_call, warm_up

    audio = dataclasses.replace(config.audio, echo_cancel="on" if cancel else "off")
    config = dataclasses.replace(config, audio=audio)
    await warm_up(config)
    output = LineOutput()
    source = EchoLineSource(output, line, speech, script)
    clock = clock if clock is not None else FastClock()
    call = build_call(config, source, output, clock, transport="sip")  # a phone line
    events: list[EventRecord] = []
    call.ctx.bus.subscribe(events.append)
    await call.run()
    return score(events, output, source.stop_onset)


def score(events: list[EventRecord], output: LineOutput, onset: float | None) -> dict[str, Any]:
    """Self-interruptions, echo-opened turns and barge-in latency of one call's events."""

    def by_caller(t: float) -> bool:
        return onset is not None and onset <= t <= onset + ATTRIBUTION_S

    interrupted = [e["t"] for e in events if e["type"] == "interrupted"]
    barged = [t for t in interrupted if by_caller(t)]
    stop = output.stop_before(onset, barged[0]) if onset is not None and barged else None
    starts = [e["t"] for e in events if e["type"] == "speech_started"]
    detected = [t for t in starts if barged and t <= barged[0]]
    resumed = [e["held_ms"] for e in events if e["type"] == "playback_resumed"]
    return {
        "self_interruptions": len(interrupted) - len(barged),
        # holds that were no barge-in: the bot fell silent for held_ms, then went on
        "false_holds": len(resumed),
        "false_hold_ms": sum(resumed),
        "turns": len(starts),
        "barge_in_ms": None if stop is None or onset is None else round((stop - onset) * 1000),
        # from the VAD's start of the turn (its first voiced frame) instead
        "barge_in_from_vad_onset_ms": None
        if stop is None or not detected
        else round((stop - detected[-1]) * 1000),
    }


async def bench_echo(config: PipelineConfig, calls: int, seed: int = 0) -> dict[str, Any]:
    speech = speech_for_calls()
    paths = lines(calls, seed)
    per_mode: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    for line in paths:
        per_mode["echo"].append(await one_call(config, line, False, speech))
        per_mode["cancelled"].append(await one_call(config, line, True, speech))
        per_mode["clean"].append(await one_call(config, None, False, speech))
    out: dict[str, Any] = {"calls": calls, "lines": [dataclasses.asdict(p) for p in paths]}
    for mode, results in per_mode.items():
        latencies = [r["barge_in_ms"] for r in results if r["barge_in_ms"] is not None]
        from_vad = [
            r["barge_in_from_vad_onset_ms"]
            for r in results
            if r["barge_in_from_vad_onset_ms"] is not None
        ]
        out[mode] = {
            "self_interruptions_per_call": round(
                sum(r["self_interruptions"] for r in results) / calls, 2
            ),
            # the script's turns are the caller's: any more were opened by the echo
            "echo_turns_per_call": round(
                sum(max(0, r["turns"] - len(SCRIPT)) for r in results) / calls, 2
            ),
            "false_holds_per_call": round(sum(r["false_holds"] for r in results) / calls, 2),
            "false_hold_ms_per_call": round(sum(r["false_hold_ms"] for r in results) / calls),
            "barge_ins_stopped": len(latencies),
            "barge_in_ms": summary(latencies, (50, 95)),
            "barge_in_from_vad_onset_ms": summary(from_vad, (50, 95)),
            "per_call": results,
        }
    clean = out["clean"]["barge_in_ms"]
    cancelled = out["cancelled"]["barge_in_ms"]
    if clean.get("n") and cancelled.get("n"):
        out["added_barge_in_ms_p95"] = round(cancelled["p95"] - clean["p95"], 1)
    return out


def report(result: dict[str, Any]) -> str:
    lines_ = [f"{result['calls']} calls, echo -10..-20 dB, 50-200 ms late, 300-3400 Hz:"]
    for mode in MODES:
        r = result[mode]
        b = r["barge_in_ms"]
        v = r["barge_in_from_vad_onset_ms"]
        latency = (
            f"p50 {b['p50']} / p95 {b['p95']} ms (from the VAD's onset p50 {v['p50']} / "
            f"p95 {v['p95']} ms)"
            if b.get("n") and v.get("n")
            else "-"
        )
        lines_.append(
            f"  {mode:10s} self-interruptions/call {r['self_interruptions_per_call']:5}  "
            f"echo turns/call {r['echo_turns_per_call']:5}  barge-in stopped "
            f"{r['barge_ins_stopped']}/{result['calls']}\n"
            f"  {'':10s} false holds/call {r['false_holds_per_call']} "
            f"({r['false_hold_ms_per_call']} ms of the bot held back)\n"
            f"  {'':10s} barge-in, speech onset -> bot stops: {latency}"
        )
    if "added_barge_in_ms_p95" in result:
        lines_.append(
            f"  canceller's added barge-in latency (p95): {result['added_barge_in_ms_p95']} ms"
        )
    return "\n".join(lines_)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--echo-calls", type=int, default=5, help="echo: simulated calls per mode (default 5)"
    )
    parser.add_argument(
        "--echo-load",
        type=int,
        default=16,
        help="echo: cancellers run side by side for the event-loop load figures (default 16)",
    )


async def _bench(config: PipelineConfig, calls: int, cancellers: int) -> dict[str, Any]:
    from voicebot.bench.echo_load import bench_load
    from voicebot.samples import speak

    result = await bench_echo(config, calls)
    result["load"] = await bench_load(speak(SECOND, "en", 16000), cancellers)
    return result


def main(args: argparse.Namespace) -> int:
    from voicebot.bench import echo_load

    config = load_pipeline(args.pipeline or DEFAULT_PIPELINE)
    result = runtime.run(_bench(config, args.echo_calls, args.echo_load))
    print(report(result))
    print("\n".join(echo_load.report(result["load"])))
    Path(args.json_path).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json_path).write_text(json.dumps(result, indent=2))
    print(f"JSON: {args.json_path}")
    return 0
