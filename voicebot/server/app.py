"""The HTTP side of ``voicebot serve``: signalling, health, metrics and the demo page.

Routes:

* ``POST /offer`` - ``{"sdp", "type": "offer"}`` in; the answer ``{"sdp", "type"}``
  out, with the call's id, pipeline name, language and latency budget. Errors
  are JSON ``{"error": ...}``: 400 malformed, 401 token, 413 too large,
  415 not JSON, 503 at the call limit.
* ``GET /healthz`` - liveness plus what the demo page shows before a call.
* ``GET /metrics`` - Prometheus text format.
* ``/v1/audio/*``, ``/v1/models``, ``/v1/tts/stream`` - the local engines behind the
  OpenAI audio API (``speech_api.py``).
* ``POST /calls``, ``GET /calls/{id}`` - the bot places a phone call over SIP
  (``dial_routes.py``; the same bearer token as ``/offer``).
* ``POST /twilio/voice``, ``WS /twilio/media``, ``WS /ws/audio`` - calls over provider
  media streams (``streams.py``).
* ``POST /{twilio,telnyx,vonage}/calls``, ``POST /twilio/status``, ``POST /telnyx/events``,
  ``POST /vonage/events``, ``GET /vonage/answer`` - dial-outs through the providers'
  REST APIs and their webhooks (``provider_calls.py``).
* ``GET /`` and below - the static files of ``demo_web/`` and nothing else.

CORS is closed unless origins are configured, and ``/offer`` only takes
``application/json`` (a cross-site form post cannot start a call).
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiortc import RTCSessionDescription
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from voicebot.bundled import bundled
from voicebot.call import warm_up
from voicebot.config import PipelineConfig
from voicebot.errors import VoicebotError
from voicebot.server.auth import Unauthorized, require_bearer
from voicebot.server.calls import Busy, CallManager, OfferError, ServerSettings
from voicebot.server.dial_routes import dial_routes
from voicebot.server.metrics import Metrics
from voicebot.server.provider_calls import provider_call_routes
from voicebot.server.speech_api import SpeechApi, SpeechApiSettings
from voicebot.server.streams import stream_routes

log = logging.getLogger(__name__)

DEMO_WEB = bundled("demo_web")
MAX_OFFER_BYTES = 64 * 1024  # SDP offers are a few kilobytes


class _Refused(VoicebotError):
    """An /offer request refused with an HTTP error (status, reason, message, headers)."""

    def __init__(
        self, status: int, reason: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message
        self.headers = headers or {}


def create_app(
    config: PipelineConfig,
    settings: ServerSettings | None = None,
    *,
    web_root: Path = DEMO_WEB,
    warm: bool = True,
) -> Starlette:
    """The ASGI app serving ``config``'s bot; ``warm`` loads the engines before the first call."""
    settings = settings or ServerSettings()
    metrics = Metrics()
    manager = CallManager(config, settings, metrics)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if warm:
            await warm_up(config)
        # Engines, models and modules live as long as the process: keep them out of
        # the cycle collector's way, so collecting an ended call stays cheap.
        gc.collect()
        gc.freeze()
        metrics.start()
        sip = None
        if settings.sip is not None:  # phone calls too (transports/sip/)
            from voicebot.server.sip import SipServer

            sip = app.state.sip = SipServer(manager, settings.sip)
            await sip.start()
        try:
            yield
        finally:
            await manager.close()  # hangs up SIP calls too (their BYEs need the listener)
            if sip is not None:
                await sip.stop()
            await metrics.stop()

    def refuse(request: Request, transport: str) -> Response | None:
        """The bearer token check of the routes that start or place calls: a 401, counted
        as ``unauthorized`` for ``transport``, or None."""
        try:
            require_bearer(request.headers, settings.token)
        except Unauthorized as exc:
            metrics.rejected.labels("unauthorized", transport).inc()
            return JSONResponse({"error": exc.message}, exc.status, headers=exc.headers)
        return None

    async def offer(request: Request) -> Response:
        refused = refuse(request, "webrtc")
        if refused is not None:
            return refused
        try:
            description = await _read_offer(request)
            call, answer = await manager.accept(description)
        except _Refused as exc:
            metrics.rejected.labels(exc.reason, "webrtc").inc()
            return JSONResponse({"error": exc.message}, exc.status, headers=exc.headers)
        except Busy as exc:  # counted by the manager
            return JSONResponse(
                {"error": str(exc), "max_calls": settings.max_calls},
                503,
                headers={"Retry-After": "5"},
            )
        except OfferError as exc:
            metrics.rejected.labels("bad_request", "webrtc").inc()
            return JSONResponse({"error": str(exc)}, 400)
        return JSONResponse({"sdp": answer.sdp, "type": answer.type, **manager.hello(call.call_id)})

    async def healthz(request: Request) -> Response:
        return JSONResponse(
            {
                "status": "ok",
                "pipeline": config.name,
                "language": config.language,
                "latency_budget_ms": config.latency_budget_ms,
                "calls_active": len(manager.calls),
                "max_calls": settings.max_calls,
                "auth": settings.token is not None,
            }
        )

    async def metrics_route(request: Request) -> Response:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    middleware = []
    if settings.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=settings.cors_origins,
                allow_methods=["GET", "POST"],
                allow_headers=["Content-Type", "Authorization"],
            )
        )
    speech_api = SpeechApi(
        SpeechApiSettings(
            asr_model=config.asr.model,  # whisper-1 means the pipeline's model (or its directory)
            tts_engine=config.tts.local_engine,
            voice=config.tts.voice,
            api_keys=settings.api_keys,
        ),
        metrics,
    )
    app = Starlette(
        routes=[
            Route("/offer", offer, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics_route, methods=["GET"]),
            *speech_api.routes(),
            *stream_routes(manager),
            *provider_call_routes(manager),
            *dial_routes(lambda request: refuse(request, "sip")),
            Mount("/", StaticFiles(directory=web_root, html=True), name="demo"),
        ],
        middleware=middleware,
        lifespan=lifespan,
    )
    app.state.manager = manager
    app.state.metrics = metrics
    return app


async def _read_offer(request: Request) -> RTCSessionDescription:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise _Refused(415, "bad_request", "send the offer as application/json")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_OFFER_BYTES:
            raise _Refused(413, "bad_request", f"offer larger than {MAX_OFFER_BYTES} bytes")
    try:
        data: Any = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise _Refused(400, "bad_request", f"malformed JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise _Refused(400, "bad_request", 'expected a JSON object {"sdp": ..., "type": "offer"}')
    sdp, kind = data.get("sdp"), data.get("type")
    if kind != "offer":
        raise _Refused(400, "bad_request", f'"type" must be "offer", got {kind!r}')
    if not isinstance(sdp, str) or not sdp.startswith("v=0"):
        raise _Refused(400, "bad_request", '"sdp" must be an SDP string starting with "v=0"')
    return RTCSessionDescription(sdp=sdp, type="offer")
