"""``voicebot bench calls``: voice-to-voice latency of live WebRTC calls, measured at the caller.

Real aiortc callers dial a running server (``--url``) or one this command
starts, speak synthesized utterances in real time, and time each turn from the
end of their own voice to the first reply audio they receive - what a person
on the line would feel, network and jitter buffers included. The callers keep
aiortc's fixed 80 ms jitter buffer unless ``--caller-jitter-ms`` stands in for
a browser's adaptive one. Concurrency steps up from 1 to ``--calls`` (or runs
``--levels``); the report gives p50/p95/p99 per level, the server's own
per-turn timings and loop lag beside them (where the time went), and the
largest number of concurrent calls whose p95 stays within the pipeline's
latency budget.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from voicebot import runtime
from voicebot.bench.stats import percentile, summary
from voicebot.bundled import pipeline
from voicebot.server.child import ChildServer
from voicebot.transports.webrtc_client import Caller

DEFAULT_PIPELINE = pipeline("echo")
UTTERANCES = (
    "A table for four people.",
    "I would like to book a table for tonight.",
    "Could I come on Friday at seven?",
)


# --- one caller ---------------------------------------------------------------------


@dataclass
class CallerResult:
    latencies: list[float] = field(default_factory=list)  # seconds, one per answered turn
    errors: list[str] = field(default_factory=list)
    turns: list[dict[str, Any]] = field(default_factory=list)  # the server's ``turn`` events
    server_lag_ms: float | None = None  # the server loop's worst lag during the call


async def talk(
    url: str,
    speech: list[np.ndarray],
    rate: int,
    turns: int,
    delay: float = 0.0,
    token: str | None = None,
    reply_timeout: float = 20.0,
    jitter_ms: int | None = None,
) -> CallerResult:
    """One call: (hear out a greeting), then ``turns`` utterances, each after the last reply."""
    result = CallerResult()
    await asyncio.sleep(delay)
    caller = Caller(url, token=token, keep_audio=False, jitter_ms=jitter_ms)
    try:
        await caller.connect()
        start = time.monotonic()
        with contextlib.suppress(TimeoutError):  # a flow bot greets first: let it finish
            greeting = await caller.speaker.wait_onset(start, 2.0)
            await caller.speaker.wait_quiet(greeting - 0.001, 0.8, 30.0)
        for i in range(turns):
            if caller.of_type("call_ended"):
                break
            end = await caller.say(speech[i % len(speech)], rate)
            try:
                reply = await caller.reply(end, within=reply_timeout, quiet=0.8)
            except TimeoutError:
                result.errors.append(f"turn {i + 1}: no reply within {reply_timeout} s")
                continue
            result.latencies.append(reply.onset - end)
        caller.hang_up()
        with contextlib.suppress(TimeoutError):
            _, ended = await caller.wait_event("call_ended", 3.0)
            result.server_lag_ms = ended.get("worst_loop_lag_ms")
        result.turns = caller.of_type("turn")
    except Exception as exc:
        result.errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        await caller.close()
    return result


# --- the benchmark ------------------------------------------------------------------


def summarize(latencies: list[float]) -> dict[str, Any]:
    """n, p50, p95, p99 and max of per-turn latencies (seconds), in ms."""
    return summary([x * 1000 for x in latencies], (50, 95, 99), digits=1)


STAGES = ("endpoint_ms", "asr_ms", "dialog_ms", "tts_ms", "playback_ms", "voice_to_voice_ms")


def server_side(turns: list[dict[str, Any]]) -> dict[str, Any]:
    """p50/p95 of the server's own per-turn timings: where the caller's latency goes."""
    out: dict[str, Any] = {}
    for key in STAGES:
        values = [t[key] for t in turns if t.get(key) is not None]
        if values:
            out[key] = {f"p{p}": round(percentile(values, p), 1) for p in (50, 95)}
    return out


async def bench_calls(
    url: str,
    levels: list[int],
    turns: int,
    token: str | None = None,
    stop_over_budget: bool = True,
    caller_jitter_ms: int | None = None,
) -> dict[str, Any]:
    """Run each concurrency level in ``levels`` (ascending) and summarize it."""
    from voicebot.samples import speak

    async with httpx.AsyncClient(timeout=10) as http:
        info = (await http.get(f"{url}/healthz")).json()
    budget = info["latency_budget_ms"]
    rate = 16000
    speech = [speak(text, info.get("language", "en"), rate) for text in UTTERANCES]
    spacing = float(np.mean([len(s) for s in speech])) / rate + 1.5
    done = []
    for n in levels:
        lag = runtime.LoopLagMonitor()  # the callers' own loop: late here is late at the caller
        lag.start()
        # Spread the callers over one turn's length, as independent callers would be.
        results = await asyncio.gather(
            *(
                talk(
                    url,
                    speech,
                    rate,
                    turns,
                    delay=i * spacing / n,
                    token=token,
                    jitter_ms=caller_jitter_ms,
                )
                for i in range(n)
            )
        )
        await lag.stop()
        latencies = [x for r in results for x in r.latencies]
        errors = [e for r in results for e in r.errors]
        level = {
            "calls": n,
            **summarize(latencies),
            "errors": errors,
            "server": server_side([t for r in results for t in r.turns]),
            "caller_loop_lag_ms": {
                "worst": round(lag.worst * 1000, 1),
                "mean": round(lag.mean * 1000, 2),
            },
            "server_loop_lag_ms": max(
                (r.server_lag_ms for r in results if r.server_lag_ms is not None), default=None
            ),
        }
        level["within_budget"] = bool(latencies) and not errors and level["p95"] <= budget
        done.append(level)
        print(_row(level, budget), flush=True)
        if stop_over_budget and not level["within_budget"]:
            break
    best = 0  # the largest level such that it and every smaller level tried were within budget
    for level in done:
        if not level["within_budget"]:
            break
        best = level["calls"]
    return {
        "pipeline": info.get("pipeline"),
        "budget_ms": budget,
        "turns_per_call": turns,
        "caller_jitter_ms": caller_jitter_ms,
        "levels": done,
        "max_calls_within_budget": best,
    }


def _row(level: dict[str, Any], budget: int) -> str:
    if not level.get("n"):
        return f"{level['calls']:>5}  no answered turns  errors: {level['errors'][:3]}"
    mark = "ok" if level["within_budget"] else "OVER"
    errors = f"  errors: {len(level['errors'])}" if level["errors"] else ""
    v2v = level.get("server", {}).get("voice_to_voice_ms")
    server = f"  server {v2v['p50']:.0f}/{v2v['p95']:.0f}" if v2v else ""
    return (
        f"{level['calls']:>5}  {level['n']:>5}  {level['p50']:>7.0f}  {level['p95']:>7.0f}  "
        f"{level['p99']:>7.0f}  {level['max']:>7.0f}  {mark} (budget {budget}){server}{errors}"
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``voicebot bench calls``; options the parser already has are left alone."""
    have = set(parser._option_string_actions)  # the shared bench parser may define --pipeline

    def add(flag: str, **kwargs: Any) -> None:
        if flag not in have:
            parser.add_argument(flag, **kwargs)

    add("--calls", type=int, default=4, help="calls: most concurrent callers to try (1..N)")
    add(
        "--levels",
        default=None,
        metavar="N,N,...",
        help="calls: the concurrency levels to try instead of 1..--calls (e.g. 1,3,4,5)",
    )
    add("--turns", type=int, default=3, help="calls: utterances per caller")
    add("--url", default=None, help="calls: server to dial (default: start one on loopback)")
    add("--pipeline", default=None, help="pipeline YAML for the started server (default: echo)")
    add("--calls-json", default="bench-calls.json", help="calls: JSON output")
    add(
        "--keep-going",
        action="store_true",
        help="calls: try every level even after one goes over budget",
    )
    add(
        "--jitter-ms",
        type=int,
        default=None,
        help="calls: the started server's inbound jitter buffer (its --jitter-ms)",
    )
    add(
        "--caller-jitter-ms",
        type=int,
        default=None,
        help="calls: the callers' jitter buffer (default: aiortc's fixed 80 ms; a browser "
        "adapts its own, about 20-60 ms on a clean LAN)",
    )


def main(args: argparse.Namespace) -> int:
    """Run ``voicebot bench calls``: print the table, write JSON."""
    token = os.environ.get("VOICEBOT_TOKEN")
    levels = (
        sorted({int(n) for n in args.levels.split(",")})
        if args.levels
        else list(range(1, max(1, args.calls) + 1))
    )
    if levels[0] < 1:
        raise SystemExit("--levels: concurrency levels start at 1")
    max_calls = levels[-1]
    print(
        "calls  turns      p50      p95      p99      max  (ms, end of caller's voice -> first "
        "reply audio at the caller; server: its own p50/p95)",
        flush=True,
    )
    with contextlib.ExitStack() as stack:
        url = args.url
        if url is None:
            pipeline = getattr(args, "pipeline", None) or DEFAULT_PIPELINE
            scratch = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            extra = [] if args.jitter_ms is None else ["--jitter-ms", str(args.jitter_ms)]
            server = stack.enter_context(
                ChildServer(  # bookings made by the bench go nowhere
                    "serve",
                    pipeline,
                    "--max-calls",
                    str(max_calls),
                    "--outcomes-db",
                    str(scratch / "outcomes.db"),
                    *extra,
                )
            )
            url = server.url
        result = runtime.run(
            bench_calls(
                url.rstrip("/"),
                levels,
                args.turns,
                token,
                stop_over_budget=not args.keep_going,
                caller_jitter_ms=args.caller_jitter_ms,
            )
        )
    single: dict[str, Any] = next((lv for lv in result["levels"] if lv["calls"] == 1), {})
    print(
        f"single call p50 {single.get('p50')} ms; {result['max_calls_within_budget']} "
        f"concurrent call(s) keep p95 within {result['budget_ms']} ms"
    )
    out = Path(args.calls_json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"JSON: {out}")
    return 0 if result["max_calls_within_budget"] else 1
