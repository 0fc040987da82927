"""``voicebot transcribe``, ``voicebot speak`` and ``voicebot costs``: batch speech work.

Both batch commands take ``--engine``: ``local`` (the bundled Whisper / Piper) or a
provider preset (``openai``, ``holysheep``, ``voicebot``), optionally ``=BASE_URL``.
Provider requests go at batch priority through the same pooled client, retries, rate
limit, cache and cost ledger as calls use; items run ``--concurrency`` at a time, with
a progress bar when there is more than one, and a failed item does not stop the rest.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from voicebot.asr import formats

if TYPE_CHECKING:
    from voicebot.config import CacheKind

T = TypeVar("T")
EXTENSIONS = {"text": "txt", "json": "json", "verbose_json": "json", "srt": "srt", "vtt": "vtt"}


async def run_all(
    items: list[Any], work: Callable[[Any], Awaitable[T]], concurrency: int, label: str
) -> list[T | BaseException]:
    """``work`` on every item, ``concurrency`` at a time, with a progress bar for several."""
    from tqdm import tqdm

    gate = asyncio.Semaphore(max(1, concurrency))
    bar = tqdm(total=len(items), desc=label, unit="item", disable=len(items) <= 1, file=sys.stderr)

    async def one(item: Any) -> T | BaseException:
        async with gate:
            try:
                return await work(item)
            except Exception as exc:  # reported per item; the batch goes on
                return exc
            finally:
                bar.update(1)

    try:
        return await asyncio.gather(*(one(item) for item in items))
    finally:
        bar.close()


# --- transcribe ----------------------------------------------------------------------


class Transcriber:
    """One engine spec's way of turning a file into a response format."""

    def __init__(self, spec: str, model: str, language: str | None, cache: CacheKind) -> None:
        from voicebot.engines import resolve, spec_remote

        self.language = language
        remote = spec_remote(spec, cache=cache)
        self.provider = resolve(remote, "asr") if remote is not None else None
        self.model = model

    async def __call__(self, path: Path, fmt: str) -> str:
        data = await asyncio.to_thread(path.read_bytes)
        if self.provider is None:
            return await self._local(data, fmt)
        return await self._remote(path.name, data, fmt)

    async def _local(self, data: bytes, fmt: str) -> str:
        from voicebot.audio.codecs import decode_audio
        from voicebot.engines import local_asr

        audio = await asyncio.to_thread(decode_audio, data)
        engine = local_asr(self.model)
        if fmt in ("text", "json"):
            text = (await engine.transcribe(audio, self.language)).text
            return text if fmt == "text" else json.dumps({"text": text}, ensure_ascii=False)
        info, segments = await engine.transcribe_segments(audio, self.language)
        if fmt == "srt":
            return formats.srt(segments)
        if fmt == "vtt":
            return formats.vtt(segments)
        return json.dumps(
            formats.verbose_json(segments, language=info.language, duration=len(audio) / 16000),
            ensure_ascii=False,
            indent=2,
        )

    async def _remote(self, name: str, data: bytes, fmt: str) -> str:
        """The file as it is to the provider, in the format asked for (cached, billed)."""
        from voicebot.audio.codecs import decode_audio
        from voicebot.engines import provider_cache, provider_client
        from voicebot.providers.cache import transcript_key
        from voicebot.providers.costs import PriceTable, default_ledger
        from voicebot.providers.limits import Priority

        assert self.provider is not None
        client = provider_client(self.provider)
        cache, ledger = provider_cache(self.provider), default_ledger()
        seconds = len(await asyncio.to_thread(decode_audio, data)) / 16000
        cost = PriceTable(asr_per_second=self.provider.price).asr_cost(seconds)
        key = transcript_key(
            data, model=self.provider.model, language=self.language or "", format=fmt
        )
        start = time.perf_counter()
        if cache is not None and (hit := await cache.get(key)) is not None:
            await ledger.arecord(
                provider=self.provider.name, kind="asr", units=seconds, cost=cost, cached=True
            )
            return hit.decode()
        fields = {"model": self.provider.model, "response_format": fmt}
        if self.language:
            fields["language"] = self.language
        try:
            response = await client.request(
                "POST",
                "/audio/transcriptions",
                data=fields,
                files={"file": (name, data, "application/octet-stream")},
                priority=Priority.BATCH,
            )
        except Exception:
            await ledger.arecord(
                provider=self.provider.name,
                kind="asr",
                units=seconds,
                cost=0.0,
                cached=False,
                ok=False,
            )
            raise
        await ledger.arecord(
            provider=self.provider.name,
            kind="asr",
            units=seconds,
            cost=cost,
            cached=False,
            latency_ms=(time.perf_counter() - start) * 1000,
        )
        text = response.text
        if cache is not None:
            await cache.set(key, text.encode())
        return text


def _cmd_transcribe(args: argparse.Namespace) -> int:
    paths = [Path(p) for p in args.files]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        print(f"error: no such file: {', '.join(missing)}", file=sys.stderr)
        return 2
    try:
        transcriber = Transcriber(args.engine, args.model, args.language, args.cache)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out_dir = Path(args.out) if args.out else None
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)

    async def work(path: Path) -> str:
        text = await transcriber(path, args.format)
        if out_dir:
            target = out_dir / f"{path.stem}.{EXTENSIONS[args.format]}"
            await asyncio.to_thread(target.write_text, text.rstrip("\n") + "\n")
        return text

    results = asyncio.run(run_all(paths, work, args.concurrency, "transcribe"))
    return _report(paths, results, print_results=out_dir is None)


def _report(items: list[Any], results: list[Any], *, print_results: bool) -> int:
    failed = 0
    for item, result in zip(items, results, strict=True):
        if isinstance(result, BaseException):
            failed += 1
            print(f"{item}: error: {result}", file=sys.stderr)
        elif print_results:
            if len(items) > 1:
                print(f"==> {item} <==")
            print(str(result).rstrip("\n"))
    return 1 if failed else 0


# --- speak -----------------------------------------------------------------------------


def _slug(text: str, n: int) -> str:
    words = re.sub(r"[^\w]+", "-", text.lower()).strip("-")[:40].strip("-")
    return f"{n:04d}-{words or 'speech'}"


class Speaker:
    def __init__(self, spec: str, voice: str, speed: float, cache: CacheKind) -> None:
        from voicebot.engines import local_tts, remote_tts, resolve, spec_remote
        from voicebot.providers.limits import Priority

        remote = spec_remote(spec, cache=cache)
        if remote is None:
            engine = (
                "piper" if voice.startswith("en_US-") or voice.endswith(".onnx") else ("espeak")
            )
            self.engine = local_tts(engine, voice, speed)
        else:
            provider = resolve(remote, "tts")
            self.engine = remote_tts(provider, speed=speed, priority=Priority.BATCH)

    async def to_file(self, text: str, target: Path, fmt: str) -> float:
        """Synthesize ``text`` into ``target``; returns seconds of audio."""
        from voicebot.audio.codecs import stream_encoder
        from voicebot.tts.render import speak_pcm

        rate = 24000
        encoder = stream_encoder(fmt, rate)
        samples = 0
        with target.open("wb") as f:
            async for pcm in speak_pcm(self.engine, text, rate):
                samples += len(pcm)
                data = await asyncio.to_thread(encoder.push, pcm)
                await asyncio.to_thread(f.write, data)
            await asyncio.to_thread(f.write, encoder.close())
        if fmt == "wav":
            _fix_wav_sizes(target)
        return samples / rate


def _fix_wav_sizes(path: Path) -> None:
    """A file is not a stream: give the WAV header its real sizes."""
    import struct

    size = path.stat().st_size
    with path.open("r+b") as f:
        f.seek(4)
        f.write(struct.pack("<I", size - 8))
        f.seek(40)
        f.write(struct.pack("<I", size - 44))


def _cmd_speak(args: argparse.Namespace) -> int:
    if args.batch:
        if not Path(args.batch).is_file():
            print(f"error: no such file: {args.batch}", file=sys.stderr)
            return 2
        lines = Path(args.batch).read_text().splitlines()
        texts = [t.strip() for t in lines if t.strip() and not t.lstrip().startswith("#")]
    elif args.text:
        texts = [args.text]
    else:
        print("error: give TEXT or --batch FILE", file=sys.stderr)
        return 2
    out = Path(args.out)
    single = len(texts) == 1 and bool(out.suffix)
    (out.parent if single else out).mkdir(parents=True, exist_ok=True)
    try:
        speaker = Speaker(args.engine, args.voice, args.speed, args.cache)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    items = list(enumerate(texts, 1))

    async def work(item: tuple[int, str]) -> str:
        n, text = item
        target = out if single else out / f"{_slug(text, n)}.{args.format}"
        seconds = await speaker.to_file(text, target, args.format)
        return f"{target} ({seconds:.1f} s)"

    results = asyncio.run(run_all(items, work, args.concurrency, "speak"))
    return _report([t for _, t in items], results, print_results=True)


# --- costs -------------------------------------------------------------------------------


def _cmd_costs(args: argparse.Namespace) -> int:
    from voicebot.providers.costs import cost_report, default_path, format_report

    path = Path(args.db) if args.db else default_path()
    since = time.time() - args.hours * 3600 if args.hours else None
    report = cost_report(path, since=since)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"costs from {path}" + (f" (last {args.hours:g} h)" if since else ""))
        print(format_report(report))
    return 0


def add_batch_parsers(sub: Any) -> None:
    engine_help = (
        "local, or a provider preset: openai, holysheep, voicebot "
        "(optionally =BASE_URL, e.g. voicebot=http://10.0.0.5:8000/v1)"
    )
    t = sub.add_parser("transcribe", help="transcribe audio files (any format av reads)")
    t.add_argument("files", nargs="+", metavar="FILE")
    t.add_argument(
        "--format", default="text", choices=list(EXTENSIONS), help="output format (default text)"
    )
    t.add_argument("--engine", default="local", help=engine_help)
    t.add_argument(
        "--model",
        default="tiny.en",
        choices=["tiny.en", "base"],
        help="local model (default tiny.en; base for other languages)",
    )
    t.add_argument("--language", default=None, help="language code; default: detect")
    t.add_argument(
        "--out", default=None, metavar="DIR", help="write FILE.<ext> there instead of printing"
    )
    t.add_argument("--concurrency", type=int, default=4, help="files in flight (providers)")
    t.add_argument("--cache", default="memory", choices=["none", "memory", "redis"])
    t.set_defaults(func=_cmd_transcribe)

    s = sub.add_parser("speak", help="synthesize text to audio files")
    s.add_argument("text", nargs="?", default=None, metavar="TEXT")
    s.add_argument("--batch", metavar="FILE", help="one text per line (# comments)")
    s.add_argument(
        "--out",
        required=True,
        metavar="DIR|FILE",
        help="output directory (a file name for a single text)",
    )
    s.add_argument("--format", default="wav", choices=["wav", "mp3", "opus", "flac", "aac", "pcm"])
    s.add_argument("--engine", default="local", help=engine_help)
    s.add_argument(
        "--voice",
        default="en_US-joe-medium",
        help="local voice (Piper name/.onnx or espeak-ng voice)",
    )
    s.add_argument("--speed", type=float, default=1.0)
    s.add_argument("--concurrency", type=int, default=4, help="texts in flight (providers)")
    s.add_argument("--cache", default="memory", choices=["none", "memory", "redis"])
    s.set_defaults(func=_cmd_speak)

    c = sub.add_parser("costs", help="provider cost report: requests, cache hit rate, cost")
    c.add_argument("--db", default=None, help="ledger (default var/costs.db or $VOICEBOT_COSTS_DB)")
    c.add_argument("--hours", type=float, default=None, help="only the last N hours")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=_cmd_costs)
