"""A fault-injecting OpenAI-shaped speech provider for tests (real uvicorn, real sockets).

Usage::

    with FaultServer() as server:          # uvicorn in a thread on 127.0.0.1:<free port>
        server.script("429", "503")        # the next two requests fail like that
        server.default = "ok"              # what every request does when no fault is queued
        ... client at server.base_url ...  # ends in /v1
        server.requests                    # what arrived: .time, .path, .headers, .body,
                                           # .priority (x-voicebot-priority), .client_port
        server.received("/speech")         # the requests whose path ends like that

Faults (one consumed per request, HTTP or WebSocket):

* ``"429"`` / ``"429ms"`` — rate limited with ``retry-after: server.retry_after_s`` /
  ``retry-after-ms``; ``"500"``, ``"503"``, ``"400"`` — that status, OpenAI-shaped body;
* ``"timeout"`` — no answer for ``server.hang_s`` seconds;
* ``"slow"`` — a normal answer, its first byte after ``server.slow_s`` seconds;
* ``"truncate"`` — speech: the body stops after about half the declared length;
* ``"garbage"`` — 200 with a body that is not JSON;
* ``"close"`` / ``"error"`` — WebSocket: drop the socket mid-stream / send an error event;
* ``"ok"``.

Endpoints: ``POST /v1/audio/transcriptions`` (multipart; ``{"text": server.text,
"language": "en", "duration": server.duration}``), ``POST /v1/audio/speech``
(``server.chunks`` chunks of ``server.chunk_ms`` ms of 24 kHz s16le PCM,
``server.chunk_gap_s`` apart; ``response_format`` pcm (the default) or wav, others
400), ``GET /v1/models``, and the streaming-TTS WebSocket ``/v1/tts/stream`` (JSON
``{"input" or "text", "voice", "voice_settings", "response_format": "pcm"}``; binary
chunks; ``{"type": "done", "characters", "audio_seconds"}``; ``server.ws_connections``
counts accepted sockets).

``requests`` is appended to by the server's thread; read it from the test after the
client call returned. Distinct ``client_port`` values are distinct TCP connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

RATE = 24000


@dataclass
class Recorded:
    time: float
    path: str
    headers: dict[str, str]
    body: bytes = b""
    client_port: int = 0

    @property
    def priority(self) -> str:
        """``live`` / ``batch`` as the provider client sent it, or ""."""
        return self.headers.get("x-voicebot-priority", "")


def _wav_header(data_bytes: int) -> bytes:
    """A 44-byte RIFF header for 24 kHz mono s16le."""
    import struct

    return (
        b"RIFF"
        + struct.pack("<I", 36 + data_bytes)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, RATE, RATE * 2, 2, 16)
        + b"data"
        + struct.pack("<I", data_bytes)
    )


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "type": "server_error", "param": None, "code": str(status)}},
        status,
    )


@dataclass
class FaultServer:
    text: str = "hello from the provider"
    chunks: int = 3
    chunk_ms: int = 100
    chunk_gap_s: float = 0.0
    hang_s: float = 10.0
    slow_s: float = 2.0
    retry_after_s: float = 0.3
    duration: float = 1.0
    default: str = "ok"
    requests: list[Recorded] = field(default_factory=list)
    ws_connections: int = 0
    _faults: deque[str] = field(default_factory=deque)

    def script(self, *faults: str) -> None:
        self._faults.extend(faults)

    def received(self, suffix: str = "") -> list[Recorded]:
        """The recorded requests whose path ends with ``suffix``."""
        return [r for r in self.requests if r.path.endswith(suffix)]

    def _next(self) -> str:
        return self._faults.popleft() if self._faults else self.default

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # --- lifecycle -----------------------------------------------------------

    def __enter__(self) -> FaultServer:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        app = Starlette(
            routes=[
                Route("/v1/audio/transcriptions", self._transcribe, methods=["POST"]),
                Route("/v1/audio/speech", self._speech, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
                WebSocketRoute("/v1/tts/stream", self._ws),
            ]
        )
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="error",
            lifespan="off",
            ws="websockets-sansio",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fault server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.should_exit = True
        self._server.force_exit = True
        self._thread.join(10)

    # --- HTTP ----------------------------------------------------------------

    async def _record(self, request: Request) -> Recorded:
        body = await request.body()
        rec = Recorded(
            time.monotonic(),
            request.url.path,
            dict(request.headers),
            body,
            request.client.port if request.client else 0,
        )
        self.requests.append(rec)
        return rec

    async def _common(self, fault: str) -> Response | None:
        if fault == "429":
            return JSONResponse(
                {
                    "error": {
                        "message": "slow down",
                        "type": "rate_limit_error",
                        "param": None,
                        "code": "rate_limit_exceeded",
                    }
                },
                429,
                headers={"retry-after": f"{self.retry_after_s:g}"},
            )
        if fault == "429ms":
            return JSONResponse(
                {
                    "error": {
                        "message": "slow down",
                        "type": "rate_limit_error",
                        "param": None,
                        "code": "rate_limit_exceeded",
                    }
                },
                429,
                headers={"retry-after-ms": f"{round(self.retry_after_s * 1000)}"},
            )
        if fault in ("400", "500", "503"):
            return _error(int(fault), f"injected {fault}")
        if fault == "timeout":
            await asyncio.sleep(self.hang_s)
            return _error(504, "hung")
        if fault == "slow":
            await asyncio.sleep(self.slow_s)
        return None

    async def _transcribe(self, request: Request) -> Response:
        await self._record(request)
        fault = self._next()
        if (early := await self._common(fault)) is not None:
            return early
        if fault == "garbage":
            return Response(b"{not json at all", media_type="application/json")
        return JSONResponse({"text": self.text, "language": "en", "duration": self.duration})

    async def _models(self, request: Request) -> Response:
        await self._record(request)
        return JSONResponse(
            {
                "object": "list",
                "data": [
                    {"id": "whisper-1", "object": "model", "created": 0, "owned_by": "faults"}
                ],
            }
        )

    def _pcm(self) -> list[bytes]:
        n = RATE * self.chunk_ms // 1000
        t = np.arange(n) / RATE
        tone = (np.sin(2 * np.pi * 220 * t) * 8000).astype("<i2").tobytes()
        return [tone] * self.chunks

    async def _speech(self, request: Request) -> Response:
        rec = await self._record(request)
        fault = self._next()
        if (early := await self._common(fault)) is not None:
            return early
        if fault == "garbage":
            return Response(b"<html>oops</html>", 200, media_type="text/html")
        try:
            fmt = json.loads(rec.body).get("response_format", "pcm")
        except (ValueError, AttributeError):
            return _error(400, "the body is not a JSON object")
        if fmt not in ("pcm", "wav"):
            return _error(400, f"response_format {fmt!r} is not served here (pcm, wav)")
        chunks = self._pcm()
        media_type = "audio/wav" if fmt == "wav" else "audio/pcm"
        if fmt == "wav":
            chunks = [_wav_header(sum(len(c) for c in chunks)), *chunks]
        if fault == "truncate":
            # declare the full length, send half, then close: a cut stream
            total = sum(len(c) for c in chunks)
            half = chunks[: max(1, len(chunks) // 2)]

            async def cut() -> Any:
                for c in half:
                    yield c
                    await asyncio.sleep(0.01)
                raise ConnectionError("injected truncation")

            return StreamingResponse(
                cut(), media_type=media_type, headers={"content-length": str(total)}
            )

        async def body() -> Any:
            for i, c in enumerate(chunks):
                if i and self.chunk_gap_s:
                    await asyncio.sleep(self.chunk_gap_s)
                yield c

        return StreamingResponse(body(), media_type=media_type)

    # --- WebSocket -----------------------------------------------------------

    async def _ws(self, ws: WebSocket) -> None:
        await ws.accept()
        self.ws_connections += 1
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                message = await ws.receive_text()
                self.requests.append(
                    Recorded(time.monotonic(), "/v1/tts/stream", dict(ws.headers), message.encode())
                )
                fault = self._next()
                if fault == "slow":
                    await asyncio.sleep(self.slow_s)
                elif fault == "timeout":
                    await asyncio.sleep(self.hang_s)
                if fault == "error":
                    await ws.send_text(
                        json.dumps(
                            {
                                "type": "error",
                                "error": {
                                    "message": "injected",
                                    "type": "server_error",
                                    "param": None,
                                    "code": "500",
                                },
                            }
                        )
                    )
                    continue
                if fault in ("429", "503", "500", "400"):
                    await ws.send_text(
                        json.dumps(
                            {
                                "type": "error",
                                "error": {
                                    "message": f"injected {fault}",
                                    "type": "server_error",
                                    "param": None,
                                    "code": fault,
                                },
                            }
                        )
                    )
                    continue
                chunks = self._pcm()
                for i, c in enumerate(chunks):
                    if fault == "close" and i == max(1, len(chunks) // 2):
                        await ws.close(1011)
                        return
                    if i and self.chunk_gap_s:
                        await asyncio.sleep(self.chunk_gap_s)
                    await ws.send_bytes(c)
                try:
                    text = json.loads(message)
                    chars = len(text.get("input") or text.get("text") or "")
                except (ValueError, AttributeError):
                    chars = 0
                await ws.send_text(
                    json.dumps(
                        {
                            "type": "done",
                            "characters": chars,
                            "audio_seconds": sum(len(c) for c in chunks) / 2 / RATE,
                        }
                    )
                )
