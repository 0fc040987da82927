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
import json
import math
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from voicebot.asr import formats
from voicebot.audio.codecs import FORMATS, AudioDecodeError, decode_audio, stream_encoder
from voicebot.engines import local_asr, local_tts
from voicebot.providers.limits import TokenBucket
from voicebot.server.admission import (
    JobGate,
    check_key,
    number,
    read_form,
    read_json,
)
from voicebot.server.auth import bearer
from voicebot.server.metrics import Metrics
from voicebot.server.openai_errors import ApiError, bad_request
from voicebot.tts.render import speak_pcm
from voicebot.tts.voices import BUNDLED_PIPER_VOICES, espeak_voices

MAX_UPLOAD = 25 * 1024 * 1024
MAX_INPUT_CHARS = 4096
PCM_RATE = 24000
ASR_MODELS = ("tiny.en", "base")
TTS_MODELS = ("tts-1", "tts-1-hd", "piper", "espeak")
OPENAI_VOICES = frozenset(
    {"alloy", "ash", "ballad", "coral", "echo", "fable", "onyx", "nova", "sage", "shimmer", "verse"}
)


@dataclass(frozen=True)
class SpeechApiSettings:
    asr_model: str = "tiny.en"  # what whisper-1 means here
    tts_engine: str = "piper"
    voice: str = "en_US-joe-medium"  # what alloy & co. mean here
    api_keys: tuple[str, ...] = ()
    requests_per_minute: float = 600.0
    max_concurrency: int = 4
    queue: int = 8


class _ClosingStream(StreamingResponse):
    """A streamed body that is closed however the response ends.

    Starlette cancels the sending task when the client goes away, which can leave the
    generator suspended at a ``yield`` until garbage collection; closing it here stops
    synthesis (and frees the job slot) at once.
    """

    def __init__(self, body: AsyncGenerator[bytes, None], media_type: str) -> None:
        super().__init__(body, media_type=media_type)
        self._generator = body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._generator.aclose()


class SpeechApi:
    def __init__(self, settings: SpeechApiSettings, metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics
        self.limiter = TokenBucket.per_minute(settings.requests_per_minute)
        self.gate = JobGate(settings.max_concurrency, settings.queue)

    def routes(self) -> list[BaseRoute]:
        """The ``/v1`` routes; anything else under ``/v1`` is an OpenAI-shaped 404 or 405."""
        return [
            Route(
                "/v1/audio/transcriptions",
                self._handler("transcriptions", self.transcribe),
                methods=["POST"],
            ),
            Route("/v1/audio/speech", self._handler("speech", self.speech), methods=["POST"]),
            Route("/v1/models", self._handler("models", self.models), methods=["GET"]),
            WebSocketRoute("/v1/tts/stream", self.tts_stream),
            Route(
                "/v1/{rest:path}",
                self._handler("unknown", self.unknown),
                methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            ),
        ]

    def _handler(self, route: str, fn: Callable[[Request], Any]) -> Callable[[Request], Any]:
        async def handle(request: Request) -> Response:
            start = time.perf_counter()
            try:
                response: Response = await fn(request)
            except ApiError as exc:
                response = exc.response()
            self._count(route, response.status_code, start)
            return response

        return handle

    def _count(self, route: str, status: int, start: float) -> None:
        if self.metrics is not None:
            self.metrics.speech_requests.labels(route, str(status)).inc()
            self.metrics.speech_seconds.labels(route).observe(time.perf_counter() - start)

    # --- admission ---------------------------------------------------------------

    def _admit(self, request: Request) -> None:
        check_key(bearer(request.headers), self.settings.api_keys)
        self._rate()

    def _rate(self) -> None:
        wait = self.limiter.try_acquire()
        if wait > 0:
            raise ApiError(
                429,
                f"rate limit of {self.settings.requests_per_minute:g} requests per minute reached",
                code="rate_limit_exceeded",
                headers={"retry-after": str(max(1, math.ceil(wait)))},
            )

    # --- transcriptions ----------------------------------------------------------

    async def transcribe(self, request: Request) -> Response:
        self._admit(request)
        form = await read_form(request, MAX_UPLOAD + 64 * 1024)
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise bad_request("'file' is required (multipart upload)", "file")
        model = self._asr_model(str(form.get("model") or ""))
        fmt = str(form.get("response_format") or "json")
        if fmt not in formats.RESPONSE_FORMATS:
            raise bad_request(
                f"response_format must be one of {', '.join(formats.RESPONSE_FORMATS)}",
                "response_format",
            )
        language = str(form.get("language") or "") or None
        prompt = str(form.get("prompt") or "") or None
        temperature = number(form.get("temperature"), "temperature", 0.0, 0.0, 1.0)
        granularities = [
            str(g)
            for key in ("timestamp_granularities[]", "timestamp_granularities")
            for g in form.getlist(key)
        ]
        if any(g not in ("segment", "word") for g in granularities):
            raise bad_request(
                "timestamp_granularities are segment and/or word", "timestamp_granularities"
            )
        engine = local_asr(model)
        if language and model.endswith(".en") and language.split("-")[0].lower() != "en":
            raise bad_request(f"{model} only transcribes English, not {language!r}", "language")
        data = await upload.read()
        await self.gate.enter()  # decoding is part of the job: it takes a slot too
        try:
            try:
                audio = await asyncio.to_thread(decode_audio, data)
            except AudioDecodeError as exc:
                raise bad_request(str(exc), "file") from exc
            return await self._transcribe(
                engine, audio, fmt, language, prompt, temperature, "word" in granularities
            )
        except ValueError as exc:  # e.g. a language Whisper does not know
            raise bad_request(str(exc), "language") from exc
        finally:
            self.gate.leave()

    async def _transcribe(
        self,
        engine: Any,
        audio: Any,
        fmt: str,
        language: str | None,
        prompt: str | None,
        temperature: float,
        words: bool,
    ) -> Response:
        duration = len(audio) / 16000
        if fmt in ("json", "text") and not prompt and not words and temperature == 0.0:
            result = await engine.transcribe(audio, language)
            if fmt == "text":
                return PlainTextResponse(result.text + "\n")
            return JSONResponse({"text": result.text})
        info, segments = await engine.transcribe_segments(
            audio, language, prompt=prompt, temperature=temperature, word_timestamps=words
        )
        if fmt == "text":
            return PlainTextResponse(formats.full_text(segments) + "\n")
        if fmt == "json":
            return JSONResponse({"text": formats.full_text(segments)})
        if fmt == "srt":
            return PlainTextResponse(formats.srt(segments), media_type="application/x-subrip")
        if fmt == "vtt":
            return PlainTextResponse(formats.vtt(segments), media_type="text/vtt")
        return JSONResponse(
            formats.verbose_json(segments, language=info.language, duration=duration, words=words)
        )

    def _asr_model(self, model: str) -> str:
        if not model:
            raise bad_request("'model' is required (e.g. whisper-1)", "model")
        if model == "whisper-1":
            return self.settings.asr_model
        if model not in ASR_MODELS:
            raise bad_request(
                f"unknown model {model!r}: use whisper-1 or one of {', '.join(ASR_MODELS)}", "model"
            )
        return model

    # --- speech ------------------------------------------------------------------

    async def speech(self, request: Request) -> Response:
        self._admit(request)
        body = await read_json(request, 64 * 1024)
        text, engine, fmt = self._speech_request(body)
        self.gate.check()  # the slot itself is taken when the body starts streaming
        _, _, content_type = FORMATS[fmt]
        return _ClosingStream(self._encoded(engine, text, fmt), content_type)

    def _speech_request(
        self, body: dict[str, Any], *, default_format: str = "mp3"
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
            raise bad_request(
                f"response_format must be one of {', '.join(FORMATS)}", "response_format"
            )
        settings = body.get("voice_settings") or {}
        speed = number(
            body.get("speed", settings.get("speed") if isinstance(settings, dict) else None),
            "speed",
            1.0,
            0.25,
            4.0,
        )
        engine_name, voice = self._voice(str(body.get("voice") or ""), str(model))
        return text, local_tts(engine_name, voice, round(speed, 2)), fmt

    def _voice(self, voice: str, model: str) -> tuple[str, str]:
        default = (self.settings.tts_engine, self.settings.voice)
        if not voice:
            raise bad_request("'voice' is required (e.g. alloy)", "voice")
        if model == "espeak":
            if voice in OPENAI_VOICES:
                return default if default[0] == "espeak" else ("espeak", "en")
            if voice.lower() in espeak_voices():
                return "espeak", voice
        elif voice in OPENAI_VOICES:
            return default
        elif voice in BUNDLED_PIPER_VOICES:
            return "piper", voice
        elif voice.lower() in espeak_voices():
            return "espeak", voice
        raise bad_request(
            f"unknown voice {voice!r}: use an OpenAI voice name (all map to "
            f"{default[1]}), {', '.join(BUNDLED_PIPER_VOICES)} or an espeak-ng "
            "voice",
            "voice",
        )

    async def _encoded(self, engine: Any, text: str, fmt: str) -> AsyncGenerator[bytes, None]:
        """The speech as ``fmt``, chunk by chunk, inside a gate slot."""
        await self.gate.enter(admitted=True)
        try:
            encoder = stream_encoder(fmt, PCM_RATE)
            inline = fmt in ("pcm", "wav")  # no codec work: stay on the loop
            async with contextlib.aclosing(speak_pcm(engine, text, PCM_RATE)) as chunks:
                async for pcm in chunks:
                    data = (
                        encoder.push(pcm) if inline else await asyncio.to_thread(encoder.push, pcm)
                    )
                    if data:
                        yield data
            tail = await asyncio.to_thread(encoder.close)
            if tail:
                yield tail
        finally:
            self.gate.leave()

    # --- streaming TTS over WebSocket ---------------------------------------------

    async def tts_stream(self, ws: WebSocket) -> None:
        """One connection, its requests in turn.

        A reader task takes the client's messages while audio is being sent, so a client
        that leaves mid-stream is noticed at once and its synthesis cancelled.
        """
        await ws.accept()
        try:
            check_key(bearer(ws.headers) or ws.query_params.get("api_key"), self.settings.api_keys)
        except ApiError as exc:
            self._count("tts_stream", exc.status, time.perf_counter())
            await _ws_error(ws, exc)
            await ws.close(4401)
            return
        inbox: asyncio.Queue[str | None] = asyncio.Queue(maxsize=8)
        reader = asyncio.create_task(_read_messages(ws, inbox))
        server = asyncio.create_task(self._serve_ws(ws, inbox))
        try:
            await asyncio.wait({reader, server}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (reader, server):
                task.cancel()
            results = await asyncio.gather(reader, server, return_exceptions=True)
        for result in results:
            if isinstance(result, Exception) and not isinstance(result, WebSocketDisconnect):
                raise result

    async def _serve_ws(self, ws: WebSocket, inbox: asyncio.Queue[str | None]) -> None:
        while True:
            message = await inbox.get()
            start = time.perf_counter()
            try:
                body = json.loads(message) if message is not None else None
            except ValueError:
                body = None
            try:
                if not isinstance(body, dict):
                    raise bad_request("send one JSON object (a text message) per request")
                body.setdefault("model", "tts-1")
                text, engine, fmt = self._speech_request(body, default_format="pcm")
                if fmt != "pcm":
                    raise bad_request(
                        "the stream carries pcm (24 kHz s16le) only", "response_format"
                    )
                self._rate()
                await self.gate.enter()
            except ApiError as exc:
                self._count("tts_stream", exc.status, start)
                await _ws_error(ws, exc)
                continue
            samples = 0
            try:
                async with contextlib.aclosing(speak_pcm(engine, text, PCM_RATE)) as chunks:
                    async for pcm in chunks:
                        samples += len(pcm)
                        await ws.send_bytes(pcm.tobytes())
            finally:
                self.gate.leave()
            self._count("tts_stream", 200, start)
            await ws.send_text(
                json.dumps(
                    {
                        "type": "done",
                        "characters": len(text),
                        "audio_seconds": round(samples / PCM_RATE, 3),
                    }
                )
            )

    # --- models and the rest -----------------------------------------------------

    async def models(self, request: Request) -> Response:
        check_key(bearer(request.headers), self.settings.api_keys)
        ids = ["whisper-1", *ASR_MODELS, *TTS_MODELS]
        return JSONResponse(
            {
                "object": "list",
                "data": [
                    {"id": i, "object": "model", "created": 0, "owned_by": "voicebot"} for i in ids
                ],
                "voices": {
                    "piper": list(BUNDLED_PIPER_VOICES),
                    "espeak": sorted(espeak_voices()),
                    "openai_names": sorted(OPENAI_VOICES),
                    "default": self.settings.voice,
                },
            }
        )

    async def unknown(self, request: Request) -> Response:
        allowed = _METHODS.get(request.url.path.rstrip("/"))
        if allowed:
            raise ApiError(
                405,
                f"{request.url.path} takes {' or '.join(allowed)}, not {request.method}",
                code="method_not_allowed",
                headers={"allow": ", ".join(allowed)},
            )
        raise ApiError(404, f"no route {request.method} {request.url.path}", code="not_found")


_METHODS = {
    "/v1/audio/transcriptions": ("POST",),
    "/v1/audio/speech": ("POST",),
    "/v1/models": ("GET", "HEAD"),
}


async def _read_messages(ws: WebSocket, inbox: asyncio.Queue[str | None]) -> None:
    """The client's messages into ``inbox`` (None for a binary one) until it leaves."""
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return
        await inbox.put(message.get("text"))


async def _ws_error(ws: WebSocket, exc: ApiError) -> None:
    body: dict[str, Any] = {"type": "error", **exc.body()}
    if "retry-after" in exc.headers:
        body["retry_after"] = float(exc.headers["retry-after"])
    body["error"]["status"] = exc.status
    await ws.send_text(json.dumps(body))
