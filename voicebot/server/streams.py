"""The routes of provider media streams: ``POST /twilio/voice`` (TwiML) and the WebSockets.

* ``POST /twilio/voice`` - Twilio's voice webhook: TwiML connecting the call to
  ``wss://PUBLIC_HOST/twilio/media`` (``<Reject reason="busy">`` at the call
  limit). With an auth token set, the ``X-Twilio-Signature`` must match (403
  JSON error otherwise).
* ``WS /twilio/media`` - Twilio Media Streams (``transports/media_stream/twilio.py``).
* ``WS /telnyx/media`` - Telnyx Media Streaming (``…/telnyx.py``).
* ``WS /vonage/media`` - Vonage Voice API WebSockets, binary L16 (``…/vonage.py``).
* ``WS /ws/audio`` - raw 16-bit PCM for anyone else (``…/raw.py``).

Each WebSocket is one call (``stream_call.py``), admitted like every other.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket

from voicebot.server.admission import read_body
from voicebot.server.calls import CallManager
from voicebot.server.openai_errors import ApiError
from voicebot.server.stream_call import serve_stream
from voicebot.transports.media_stream.messages import StreamProtocol
from voicebot.transports.media_stream.raw import RawProtocol
from voicebot.transports.media_stream.telnyx import TelnyxProtocol
from voicebot.transports.media_stream.twilio import (
    TwilioProtocol,
    connect_twiml,
    reject_twiml,
    valid_signature,
)
from voicebot.transports.media_stream.vonage import VonageProtocol

MAX_WEBHOOK_BYTES = 64 * 1024  # Twilio's webhook form is a few hundred bytes
FORWARDED = ("From", "To", "CallSid")  # webhook fields handed to the stream as parameters


def stream_routes(manager: CallManager) -> list[BaseRoute]:
    """The TwiML webhook and one WebSocket route per stream protocol."""
    settings = manager.settings

    def socket(protocol: Callable[[], StreamProtocol]) -> Callable[[WebSocket], object]:
        async def endpoint(websocket: WebSocket) -> None:
            await serve_stream(websocket, manager, protocol())

        return endpoint

    async def twilio_voice(request: Request) -> Response:
        try:
            body = await read_body(request, MAX_WEBHOOK_BYTES)
        except ApiError as exc:
            return JSONResponse({"error": exc.message}, exc.status)
        params = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        token = settings.twilio_auth_token
        if token is not None:
            given = request.headers.get("x-twilio-signature", "")
            if not valid_signature(token, public_url(request, settings.public_host), params, given):
                manager.metrics.rejected.labels("unauthorized", TwilioProtocol.name).inc()
                return JSONResponse({"error": "missing or wrong X-Twilio-Signature"}, 403)
        if len(manager.calls) >= settings.max_calls:
            manager.metrics.rejected.labels("busy", TwilioProtocol.name).inc()
            return Response(reject_twiml(), media_type="application/xml")
        host = settings.public_host or request.headers.get("host", "localhost")
        forwarded = {k: params[k] for k in FORWARDED if params.get(k)}
        twiml = connect_twiml(f"wss://{host}/twilio/media", forwarded)
        return Response(twiml, media_type="application/xml")

    return [
        Route("/twilio/voice", twilio_voice, methods=["POST"]),
        WebSocketRoute("/twilio/media", socket(TwilioProtocol)),
        WebSocketRoute("/telnyx/media", socket(TelnyxProtocol)),
        WebSocketRoute("/vonage/media", socket(VonageProtocol)),
        WebSocketRoute("/ws/audio", socket(RawProtocol)),
    ]


def public_url(request: Request, public_host: str | None) -> str:
    """The URL Twilio requested: on the public host (behind a proxy), else as received."""
    if public_host is None:
        return str(request.url)
    query = f"?{request.url.query}" if request.url.query else ""
    return f"https://{public_host}{request.url.path}{query}"
