"""``voicebot speech-server``: a speech-only node serving the OpenAI audio API.

No calls and no demo page: the local engines behind ``/v1/audio/transcriptions``,
``/v1/audio/speech``, ``/v1/tts/stream`` and ``/v1/models``, plus ``/healthz`` and
``/metrics``, so the speech of many call servers can run on other machines
(pipelines point at it with ``preset: voicebot``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from voicebot.server.metrics import Metrics
from voicebot.server.speech_api import SpeechApi, SpeechApiSettings
from voicebot.tts.voices import voice_error

KEYS_ENV = "VOICEBOT_API_KEYS"


def create_speech_app(settings: SpeechApiSettings, *, warm: bool = True) -> Starlette:
    metrics = Metrics()
    api = SpeechApi(settings, metrics)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if warm:
            from voicebot.engines import local_asr, local_tts

            await local_asr(settings.asr_model).warm_up()
            await local_tts(settings.tts_engine, settings.voice).warm_up()
        metrics.start()
        try:
            yield
        finally:
            await metrics.stop()

    async def healthz(request: Request) -> Response:
        return JSONResponse(
            {
                "status": "ok",
                "asr_model": settings.asr_model,
                "voice": settings.voice,
                "jobs_active": api.gate.active,
                "jobs_waiting": api.gate.waiting,
                "auth": bool(settings.api_keys),
            }
        )

    async def metrics_route(request: Request) -> Response:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    app = Starlette(
        routes=[Route("/healthz", healthz), Route("/metrics", metrics_route), *api.routes()],
        lifespan=lifespan,
    )
    app.state.speech_api = api
    return app


def api_keys(env_name: str) -> tuple[str, ...]:
    return tuple(k.strip() for k in os.environ.get(env_name, "").split(",") if k.strip())


def tts_engine_for(voice: str) -> str:
    """``piper`` or ``espeak``: which local engine speaks ``voice`` (a Piper voice name or
    ``.onnx`` path, else an espeak-ng voice); ValueError for neither."""
    if voice_error("piper", voice) is None:
        return "piper"
    if voice_error("espeak", voice) is None:
        return "espeak"
    raise ValueError(
        f"no Piper or espeak-ng voice {voice!r} "
        "(e.g. en_US-joe-medium, a path to an .onnx model, 'de', 'en-us')"
    )


def add_speech_server_parser(subparsers: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "speech-server",
        help="serve the local speech engines as an OpenAI-compatible API",
        description=__doc__,
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument(
        "--asr-model",
        default="tiny.en",
        choices=["tiny.en", "base"],
        help="the model whisper-1 means here (base: multilingual)",
    )
    p.add_argument(
        "--voice",
        default="en_US-joe-medium",
        help="the voice OpenAI voice names (alloy, …) mean here: a Piper voice "
        "(or .onnx path) or an espeak-ng voice such as 'de'",
    )
    p.add_argument(
        "--api-key-env",
        default=KEYS_ENV,
        metavar="NAME",
        help=f"if this environment variable is set (comma-separated keys), requests "
        f"need one as a bearer token (default {KEYS_ENV})",
    )
    p.add_argument(
        "--requests-per-minute",
        type=float,
        default=600.0,
        help="the server's own rate limit (429 beyond)",
    )
    p.add_argument(
        "--max-concurrency",
        type=int,
        default=4,
        help="jobs at once; twice as many may queue, then 503",
    )
    p.add_argument(
        "--no-warm-up",
        dest="warm",
        action="store_false",
        help="do not load the engines before serving",
    )
    p.set_defaults(func=speech_server_main)
    return p


def speech_server_main(args: argparse.Namespace) -> int:
    import uvicorn

    try:
        engine = tts_engine_for(args.voice)
    except ValueError as exc:
        print(f"voicebot speech-server: {exc}", file=sys.stderr)
        return 2
    settings = SpeechApiSettings(
        asr_model=args.asr_model,
        tts_engine=engine,
        voice=args.voice,
        api_keys=api_keys(args.api_key_env),
        requests_per_minute=args.requests_per_minute,
        max_concurrency=args.max_concurrency,
        queue=2 * args.max_concurrency,
    )
    app = create_speech_app(settings, warm=args.warm)
    auth = " (API key required)" if settings.api_keys else ""
    print(f"voicebot: speech API on http://{args.host}:{args.port}/v1{auth}", flush=True)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        loop="auto",
        log_level="warning",
        timeout_graceful_shutdown=10,
    )
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m voicebot.server.speech_server")
    sub = parser.add_subparsers(dest="command", required=True)
    add_speech_server_parser(sub)
    sys.exit(speech_server_main(parser.parse_args(["speech-server", *sys.argv[1:]])))
