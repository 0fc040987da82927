"""``voicebot bench providers``: the seed guide's provider tables, measured, for any engine.

* transcription latency (avg/p50/p95/p99) for 10/30/60/120 s of speech at concurrency 10;
* TTS time to first byte — standard (``POST /audio/speech``, first body byte) and
  streaming (WebSocket, first audio message) — measured from the request's start
  (the seed computed ``chunk_times[0] - chunk_times[0]``, always zero);
* throughput: N requests of 500 characters, requests/s and characters/s;
* cost per hour of audio from the price table, and the real-time factor.

``--engine``: ``local`` (in-process engines), ``node`` (a voicebot speech node this
command starts, over HTTP), or a preset (``openai``, ``holysheep``, ``voicebot``)
with an optional ``=BASE_URL``. Caches are off: every request is real work.
Speech is synthesized with the bundled voice, so nothing is downloaded.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import time
import wave
from collections.abc import Awaitable, Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from voicebot.bench.stats import summary
from voicebot.server.child import ChildServer

SENTENCES = (
    "Thank you for calling the restaurant, how can I help you today?",
    "I would like to book a table for four people on Friday at half past seven.",
    "We are open from noon until eleven at night, every day except Monday.",
    "Could you tell me whether the terrace is available for a birthday party?",
)
TTS_TEXT = "Your table for four is booked for Friday at half past seven. See you then!"


def latencies(values: list[float]) -> dict[str, float]:
    """n, avg, p50, p95, p99 in the values' unit."""
    return summary(values, (50, 95, 99), digits=1, mean=True, maximum=False)


def speech_wav(seconds: float) -> bytes:
    """About ``seconds`` of synthesized speech as a 16 kHz WAV."""
    from voicebot.samples import speak

    parts: list[np.ndarray] = []
    total = 0
    i = 0
    while total < seconds * 16000:
        pcm = speak(SENTENCES[i % len(SENTENCES)])
        parts += [pcm, np.zeros(4000, np.int16)]
        total += len(pcm) + 4000
        i += 1
    audio = np.concatenate(parts)[: int(seconds * 16000)]
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(audio.tobytes())
    return buf.getvalue()


def text_of(chars: int) -> str:
    text = ""
    while len(text) < chars:
        text += SENTENCES[len(text) % len(SENTENCES)] + " "
    return text[:chars].rsplit(" ", 1)[0] + "."


async def timed(
    n: int, concurrency: int, one: Callable[[int], Awaitable[float]]
) -> tuple[list[float], float, list[str]]:
    """Run ``one(i)`` n times, ``concurrency`` at once: (per-request ms of the successes,
    wall seconds, errors). A failed request is reported, not fatal to the benchmark."""
    from voicebot.providers.errors import ProviderError

    gate = asyncio.Semaphore(concurrency)
    errors: list[str] = []

    async def run(i: int) -> float | None:
        async with gate:
            try:
                return await one(i)
            except ProviderError as exc:
                errors.append(str(exc))
                return None

    start = time.perf_counter()
    values = await asyncio.gather(*(run(i) for i in range(n)))
    return [v for v in values if v is not None], time.perf_counter() - start, errors


class Target:
    """What is being measured: in-process engines, or a provider over HTTP."""

    def __init__(self, spec: str) -> None:
        from voicebot.engines import resolve, spec_remote

        self.spec = spec
        remote = spec_remote(spec, cache="none")
        self.provider = resolve(remote, "asr") if remote is not None else None
        self.tts_provider = resolve(remote, "tts") if remote is not None else None

    @property
    def price_per_audio_hour(self) -> float:
        return self.provider.price * 3600 if self.provider is not None else 0.0

    async def transcribe_ms(self, wav: bytes) -> float:
        from voicebot.providers.limits import Priority

        start = time.perf_counter()
        if self.provider is None:
            from voicebot.audio.codecs import decode_audio
            from voicebot.engines import local_asr

            audio = await asyncio.to_thread(decode_audio, wav)
            await local_asr("tiny.en").transcribe(audio, "en")
        else:
            from voicebot.engines import provider_client

            await provider_client(self.provider).request(
                "POST",
                "/audio/transcriptions",
                files={"file": ("a.wav", wav, "audio/wav")},
                data={"model": self.provider.model, "response_format": "json"},
                priority=Priority.BATCH,
            )
        return (time.perf_counter() - start) * 1000

    async def tts_ms(self, text: str, protocol: str) -> tuple[float, float]:
        """(time to first audio byte, time to the last) in ms."""
        from voicebot.providers.limits import Priority

        if self.tts_provider is None:
            from voicebot.engines import local_tts
            from voicebot.tts.render import speak_pcm

            chunks = speak_pcm(local_tts("piper", "en_US-joe-medium"), text, 24000)
        else:
            from voicebot.engines import remote_tts

            engine = remote_tts(self.tts_provider, protocol, priority=Priority.BATCH)
            chunks = engine.synthesize(text)
        start = time.perf_counter()
        first = 0.0
        async for _ in chunks:
            if not first:
                first = time.perf_counter() - start
        return first * 1000, (time.perf_counter() - start) * 1000


async def measure(
    target: Target,
    sizes: list[float],
    requests: int,
    concurrency: int,
    tts_requests: int,
    throughput_requests: int,
    chars: int,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "engine": target.spec,
        "concurrency": concurrency,
        "transcription_ms": {},
        "tts_first_byte_ms": {},
    }
    audio_s = busy_s = 0.0
    for seconds in sizes:
        wav = await asyncio.to_thread(speech_wav, seconds)
        values, wall, errors = await timed(requests, concurrency, partial(_transcribe, target, wav))
        out["transcription_ms"][f"{seconds:g}s"] = {**latencies(values), "errors": len(errors)}
        audio_s += seconds * requests
        busy_s += wall
    out["asr_real_time_factor"] = round(audio_s / busy_s, 2) if busy_s else None
    protocols = ["openai", "websocket"] if target.tts_provider is not None else ["local"]
    for protocol in protocols:
        firsts = [(await target.tts_ms(TTS_TEXT, protocol))[0] for _ in range(tts_requests)]
        name = {"openai": "standard", "websocket": "streaming"}.get(protocol, "local")
        out["tts_first_byte_ms"][name] = latencies(firsts)
    text = text_of(chars)
    done, wall, errors = await timed(
        throughput_requests, concurrency, lambda _i: _last(target.tts_ms(text, protocols[0]))
    )
    out["tts_throughput"] = {
        "requests": len(done),
        "errors": len(errors),
        "chars_each": len(text),
        "seconds": round(wall, 2),
        "requests_per_s": round(len(done) / wall, 2),
        "chars_per_s": round(len(done) * len(text) / wall),
    }
    out["cost_per_audio_hour_usd"] = round(target.price_per_audio_hour, 4)
    return out


async def _transcribe(target: Target, wav: bytes, _i: int) -> float:
    return await target.transcribe_ms(wav)


async def _last(pair: Awaitable[tuple[float, float]]) -> float:
    return (await pair)[1]


def format_table(r: dict[str, Any]) -> str:
    lines = [
        f"engine {r['engine']}, concurrency {r['concurrency']}",
        "",
        "transcription  |  avg ms |  p50 ms |  p95 ms |  p99 ms",
        "---------------|---------|---------|---------|--------",
    ]
    for size, s in r["transcription_ms"].items():
        if not s.get("n"):
            lines.append(f"{size:>14} | all {s.get('errors', 0)} requests failed")
            continue
        failed = f"  ({s['errors']} failed)" if s.get("errors") else ""
        lines.append(
            f"{size:>14} | {s['avg']:7.0f} | {s['p50']:7.0f} | {s['p95']:7.0f} | "
            f"{s['p99']:7.0f}{failed}"
        )
    lines += [
        "",
        f"ASR real-time factor: {r['asr_real_time_factor']}x",
        "",
        "TTS first byte | p50 ms | p95 ms",
        "---------------|--------|-------",
    ]
    for name, s in r["tts_first_byte_ms"].items():
        lines.append(f"{name:>14} | {s['p50']:6.0f} | {s['p95']:6.0f}")
    t = r["tts_throughput"]
    lines += [
        "",
        f"TTS throughput: {t['requests']} × {t['chars_each']} chars in "
        f"{t['seconds']} s = {t['requests_per_s']} req/s, {t['chars_per_s']} chars/s",
        f"cost per hour of audio (ASR): ${r['cost_per_audio_hour_usd']}",
    ]
    return "\n".join(lines)


@contextlib.contextmanager
def _maybe_node(spec: str) -> Iterator[str]:
    """``node``: start a local speech node and measure it over HTTP."""
    if spec != "node":
        yield spec
        return
    node = ChildServer(  # a high request limit: the engines queue, no 503s
        "speech-server", "--requests-per-minute", "100000", "--max-concurrency", "16"
    )
    with node:
        yield f"voicebot={node.url}/v1"


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("providers")
    g.add_argument(
        "--engine",
        default="local",
        help="providers: local, node (start a local speech node), or a preset "
        "(openai, holysheep, voicebot) with optional =BASE_URL",
    )
    g.add_argument("--sizes", default="10,30,60,120", help="providers: audio lengths, seconds")
    g.add_argument("--requests", type=int, default=10, help="providers: transcriptions per size")
    g.add_argument("--concurrency", type=int, default=10)
    g.add_argument("--tts-requests", type=int, default=10, help="providers: TTFB samples")
    g.add_argument("--throughput-requests", type=int, default=20)
    g.add_argument("--chars", type=int, default=500, help="providers: characters per request")


def main(args: argparse.Namespace) -> int:
    from voicebot import runtime

    sizes = [float(s) for s in args.sizes.split(",") if s.strip()]
    with _maybe_node(args.engine) as spec:
        target = Target(spec)
        result = runtime.run(
            measure(
                target,
                sizes,
                args.requests,
                args.concurrency,
                args.tts_requests,
                args.throughput_requests,
                args.chars,
            )
        )
    result["engine"] = args.engine
    print(format_table(result))
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(result, indent=2))
    return 0
