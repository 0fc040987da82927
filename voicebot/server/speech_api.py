"""voicebot's local engines behind the OpenAI audio API: ``/v1/audio/*``, ``/v1/models``.

* ``POST /v1/audio/transcriptions`` — multipart upload, any container av decodes;
  ``json``/``text`` use the engine's fast trimmed decode, ``srt``/``vtt``/
  ``verbose_json`` (and prompts) faster-whisper's segmented transcription.
* ``POST /v1/audio/speech`` — streamed: clause by clause, resampled to 24 kHz and
  encoded as it is synthesized, so the first bytes leave before the text is done.
* ``WS /v1/tts/stream`` — the seed guide's streaming protocol: a JSON request, binary
  24 kHz s16le chunks, then ``{"type": "done"}``; many requests per connection.
* ``GET /v1/models`` — the models, plus the voices in a ``voices`` field.

Every error is OpenAI-shaped (``openai_errors.py``). Requests pass, in order: the API
key (when keys are configured), the rate limiter (429 + ``retry-after``), and the job
gate (at most ``max_concurrency`` jobs, a short queue, then 503).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import math
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from voicebot.asr import formats
from voicebot.audio.codecs import FORMATS, AudioDecodeError, decode_audio, stream_encoder
from voicebot.engines import local_asr, local_tts
from voicebot.providers.limits import TokenBucket
from voicebot.server.metrics import Metrics
from voicebot.server.openai_errors import ApiError, bad_request
from voicebot.tts.render import speak_pcm
from voicebot.tts.voices import BUNDLED_PIPER_VOICES, espeak_voices

MAX_UPLOAD = 25 * 1024 * 1024
MAX_INPUT_CHARS = 4096
PCM_RATE = 24000
ASR_MODELS = ("tiny.en", "base")
TTS_MODELS = ("tts-1", "tts-1-hd", "piper", "espeak")
OPENAI_VOICES = frozenset({"alloy", "ash", "ballad", "coral", "echo", "fable", "onyx", "nova",
                           "sage", "shimmer", "verse"})


@dataclass(frozen=True)
class SpeechApiSettings:
    asr_model: str = "tiny.en"  # what whisper-1 means here
    tts_engine: str = "piper"
    voice: str = "en_US-joe-medium"  # what alloy & co. mean here
    api_keys: tuple[str, ...] = ()
    requests_per_minute: float = 600.0
    max_concurrency: int = 4
    queue: int = 8


class JobGate:
    """At most ``concurrency`` jobs at once and ``queue`` waiting; beyond that, 503."""

    def __init__(self, concurrency: int, queue: int) -> None:
        self.concurrency = concurrency
        self.queue = queue
        self.active = 0
        self.waiting = 0
        self._free: asyncio.Condition | None = None

    def check(self) -> None:
        """503 when every slot and queue place is taken."""
        if self.active + self.waiting >= self.concurrency + self.queue:
            raise ApiError(503, "the speech server is overloaded; retry shortly",
                           code="overloaded", headers={"retry-after": "1"})

    async def enter(self, *, admitted: bool = False) -> None:
        """Wait for a slot (``admitted``: ``check`` already passed, the response started)."""
        if not admitted:
            self.check()
        if self._free is None:
            self._free = asyncio.Condition()
        self.waiting += 1
        try:
            async with self._free:
                await self._free.wait_for(lambda: self.active < self.concurrency)
                self.active += 1
        finally:
            self.waiting -= 1

    async def leave(self) -> None:
        self.active -= 1
        if self._free is not None:
            async with self._free:
                self._free.notify()


class SpeechApi:
    def __init__(self, settings: SpeechApiSettings, metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics
        self.limiter = TokenBucket.per_minute(settings.requests_per_minute)
        self.gate = JobGate(settings.max_concurrency, settings.queue)

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/v1/audio/transcriptions", self._handler("transcriptions", self.transcribe),
                  methods=["POST"]),
            Route("/v1/audio/speech", self._handler("speech", self.speech), methods=["POST"]),
            Route("/v1/models", self._handler("models", self.models), methods=["GET"]),
            WebSocketRoute("/v1/tts/stream", self.tts_stream),
            Route("/v1/{rest:path}", self._handler("unknown", self.unknown),
                  methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
        ]

    def _handler(self, route: str, fn: Callable[[Request], Any]) -> Callable[[Request], Any]:
        async def handle(request: Request) -> Response:
            start = time.perf_counter()
            try:
                response: Response = await fn(request)
            except ApiError as exc:
                response = exc.response()
            if self.metrics is not None:
                self.metrics.speech_requests.labels(route, str(response.status_code)).inc()
                self.metrics.speech_seconds.labels(route).observe(time.perf_counter() - start)
            return response

        return handle

    # --- admission ---------------------------------------------------------------

    def _authorize(self, given: str | None) -> None:
        keys = self.settings.api_keys
        if not keys:
            return
        if not given:
            raise ApiError(401, "missing API key: send Authorization: Bearer <key>",
                           code="invalid_api_key")
        if not any(hmac.compare_digest(given.encode(), k.encode()) for k in keys):
            raise ApiError(401, "incorrect API key", code="invalid_api_key")

    def _admit(self, request: Request) -> None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        self._authorize(token.strip() if scheme.lower() == "bearer" else None)
        self._rate()

    def _rate(self) -> None:
        wait = self.limiter.try_acquire()
        if wait > 0:
            raise ApiError(429, f"rate limit of {self.settings.requests_per_minute:g} "
                           "requests per minute reached", code="rate_limit_exceeded",
                           headers={"retry-after": str(max(1, math.ceil(wait)))})

    # --- transcriptions ----------------------------------------------------------

    async def transcribe(self, request: Request) -> Response:
        self._admit(request)
        form = await _read_form(request)
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise bad_request("'file' is required (multipart upload)", "file")
        model = self._asr_model(str(form.get("model") or ""))
        fmt = str(form.get("response_format") or "json")
        if fmt not in formats.RESPONSE_FORMATS:
            raise bad_request(f"response_format must be one of "
                              f"{', '.join(formats.RESPONSE_FORMATS)}", "response_format")
        language = str(form.get("language") or "") or None
        prompt = str(form.get("prompt") or "") or None
        temperature = _number(form.get("temperature"), "temperature", 0.0, 0.0, 1.0)
        granularities = [str(g) for key in ("timestamp_granularities[]",
                                            "timestamp_granularities")
                         for g in form.getlist(key)]
        if any(g not in ("segment", "word") for g in granularities):
            raise bad_request("timestamp_granularities are segment and/or word",
                              "timestamp_granularities")
        engine = local_asr(model)
        if language and model.endswith(".en") and language.split("-")[0].lower() != "en":
            raise bad_request(f"{model} only transcribes English, not {language!r}", "language")
        data = await upload.read()
        try:
            audio = await asyncio.to_thread(decode_audio, data)
        except AudioDecodeError as exc:
            raise bad_request(str(exc), "file") from exc
        await self.gate.enter()
        try:
            return await self._transcribe(engine, audio, fmt, language, prompt, temperature,
                                          "word" in granularities)
        except ValueError as exc:  # e.g. a language Whisper does not know
            raise bad_request(str(exc), "language") from exc
        finally:
            await self.gate.leave()

    async def _transcribe(self, engine: Any, audio: Any, fmt: str, language: str | None,
                          prompt: str | None, temperature: float, words: bool) -> Response:
        duration = len(audio) / 16000
        if fmt in ("json", "text") and not prompt and not words and temperature == 0.0:
            result = await engine.transcribe(audio, language)
            if fmt == "text":
                return PlainTextResponse(result.text + "\n")
            return JSONResponse({"text": result.text})
        info, segments = await engine.transcribe_segments(
            audio, language, prompt=prompt, temperature=temperature, word_timestamps=words)
        if fmt == "text":
            return PlainTextResponse(formats.full_text(segments) + "\n")
        if fmt == "json":
            return JSONResponse({"text": formats.full_text(segments)})
        if fmt == "srt":
            return PlainTextResponse(formats.srt(segments), media_type="application/x-subrip")
        if fmt == "vtt":
            return PlainTextResponse(formats.vtt(segments), media_type="text/vtt")
        return JSONResponse(formats.verbose_json(segments, language=info.language,
                                                 duration=duration, words=words))

    def _asr_model(self, model: str) -> str:
        if not model:
            raise bad_request("'model' is required (e.g. whisper-1)", "model")
        if model == "whisper-1":
            return self.settings.asr_model
        if model not in ASR_MODELS:
            raise bad_request(f"unknown model {model!r}: use whisper-1 or one of "
                              f"{', '.join(ASR_MODELS)}", "model")
        return model

    # --- speech ------------------------------------------------------------------

    async def speech(self, request: Request) -> Response:
        self._admit(request)
        body = await _read_json(request, 64 * 1024)
        text, engine, fmt = self._speech_request(body)
        self.gate.check()  # the slot itself is taken when the body starts streaming
        _, _, content_type = FORMATS[fmt]
        return StreamingResponse(self._encoded(engine, text, fmt), media_type=content_type)

    def _speech_request(self, body: dict[str, Any], *, default_format: str = "mp3"
                        ) -> tuple[str, Any, str]:
        model = body.get("model")
        if model not in TTS_MODELS:
            raise bad_request(f"model must be one of {', '.join(TTS_MODELS)}", "model")
        text = body.get("input", body.get("text"))
        if not isinstance(text, str) or not text.strip():
            raise bad_request("'input' must be non-empty text", "input")
        if len(text) > MAX_INPUT_CHARS:
            raise bad_request(f"'input' is longer than {MAX_INPUT_CHARS} characters", "input")
        fmt = body.get("response_format") or default_format
        if fmt not in FORMATS:
            raise bad_request(f"response_format must be one of {', '.join(FORMATS)}",
                              "response_format")
        settings = body.get("voice_settings") or {}
        speed = _number(body.get("speed", settings.get("speed") if isinstance(
            settings, dict) else None), "speed", 1.0, 0.25, 4.0)
        engine_name, voice = self._voice(str(body.get("voice") or ""), str(model))
        return text, local_tts(engine_name, voice, round(speed, 2)), fmt

    def _voice(self, voice: str, model: str) -> tuple[str, str]:
        default = (self.settings.tts_engine, self.settings.voice)
        if not voice:
            raise bad_request("'voice' is required (e.g. alloy)", "voice")
        if model == "espeak":
            if voice in OPENAI_VOICES:
                return "espeak", "en"
            if voice.lower() in espeak_voices():
                return "espeak", voice
        elif voice in OPENAI_VOICES:
            return default
        elif voice in BUNDLED_PIPER_VOICES:
            return "piper", voice
        elif voice.lower() in espeak_voices():
            return "espeak", voice
        raise bad_request(f"unknown voice {voice!r}: use an OpenAI voice name (all map to "
                          f"{default[1]}), {', '.join(BUNDLED_PIPER_VOICES)} or an espeak-ng "
                          "voice", "voice")

    async def _encoded(self, engine: Any, text: str, fmt: str) -> AsyncIterator[bytes]:
        """The speech as ``fmt``, chunk by chunk, inside a gate slot."""
        await self.gate.enter(admitted=True)
        try:
            encoder = stream_encoder(fmt, PCM_RATE)
            inline = fmt in ("pcm", "wav")  # no codec work: stay on the loop
            async for pcm in speak_pcm(engine, text, PCM_RATE):
                data = encoder.push(pcm) if inline else await asyncio.to_thread(
                    encoder.push, pcm)
                if data:
                    yield data
            tail = await asyncio.to_thread(encoder.close)
            if tail:
                yield tail
        finally:
            await self.gate.leave()

    # --- streaming TTS over WebSocket ---------------------------------------------

    async def tts_stream(self, ws: WebSocket) -> None:
        await ws.accept()
        scheme, _, token = ws.headers.get("authorization", "").partition(" ")
        given = token.strip() if scheme.lower() == "bearer" else ws.query_params.get("api_key")
        try:
            self._authorize(given)
        except ApiError as exc:
            await ws.send_text(json.dumps({"type": "error", **exc.body()}))
            await ws.close(4401)
            return
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                message = await ws.receive_text()
                try:
                    body = json.loads(message)
                    if not isinstance(body, dict):
                        raise ValueError("not an object")
                except ValueError:
                    await _ws_error(ws, bad_request("send one JSON object per request"))
                    continue
                try:
                    body.setdefault("model", "tts-1")
                    text, engine, fmt = self._speech_request(body, default_format="pcm")
                    if fmt != "pcm":
                        raise bad_request("the stream carries pcm (24 kHz s16le) only",
                                          "response_format")
                    self._rate()
                    await self.gate.enter()
                except ApiError as exc:
                    await _ws_error(ws, exc)
                    continue
                samples = 0
                try:
                    async for pcm in speak_pcm(engine, text, PCM_RATE):
                        samples += len(pcm)
                        await ws.send_bytes(pcm.tobytes())
                finally:
                    await self.gate.leave()
                await ws.send_text(json.dumps({"type": "done", "characters": len(text),
                                               "audio_seconds": round(samples / PCM_RATE, 3)}))

    # --- models and the rest -----------------------------------------------------

    async def models(self, request: Request) -> Response:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        self._authorize(token.strip() if scheme.lower() == "bearer" else None)
        ids = ["whisper-1", *ASR_MODELS, *TTS_MODELS]
        return JSONResponse({
            "object": "list",
            "data": [{"id": i, "object": "model", "created": 0, "owned_by": "voicebot"}
                     for i in ids],
            "voices": {"piper": list(BUNDLED_PIPER_VOICES), "espeak": sorted(espeak_voices()),
                       "openai_names": sorted(OPENAI_VOICES), "default": self.settings.voice},
        })

    async def unknown(self, request: Request) -> Response:
        raise ApiError(404, f"no route {request.method} {request.url.path}", code="not_found")


async def _ws_error(ws: WebSocket, exc: ApiError) -> None:
    body: dict[str, Any] = {"type": "error", **exc.body()}
    if "retry-after" in exc.headers:
        body["retry_after"] = float(exc.headers["retry-after"])
    body["error"]["status"] = exc.status
    await ws.send_text(json.dumps(body))


def _number(value: Any, name: str, default: float, lo: float, hi: float) -> float:
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise bad_request(f"{name} must be a number", name) from None
    if not lo <= number <= hi:
        raise bad_request(f"{name} must be within [{lo:g}, {hi:g}]", name)
    return number


async def _read_body(request: Request, limit: int) -> bytes:
    length = request.headers.get("content-length")
    too_large = ApiError(413, f"request body over the limit of {limit} bytes",
                         code="request_too_large")
    if length and length.isdigit() and int(length) > limit:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large
    return bytes(body)


async def _read_form(request: Request) -> Any:
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise bad_request("send multipart/form-data with a 'file' field", "file")
    request._body = await _read_body(request, MAX_UPLOAD + 64 * 1024)  # counted while read
    try:
        return await request.form(max_part_size=MAX_UPLOAD)
    except Exception as exc:  # the multipart parser's own errors
        raise bad_request(f"malformed multipart body: {exc}") from exc


async def _read_json(request: Request, limit: int) -> dict[str, Any]:
    body = await _read_body(request, limit)
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise bad_request(f"malformed JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise bad_request("expected a JSON object")
    return data
