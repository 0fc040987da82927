"""The routes of provider media streams: ``POST /twilio/voice`` (TwiML) and the WebSockets.

* ``POST /twilio/voice`` - Twilio's voice webhook: TwiML connecting the call to
  ``wss://PUBLIC_HOST/twilio/media`` (``<Reject reason="busy">`` at the call
  limit). With an auth token set, the ``X-Twilio-Signature`` must match (403
  JSON error otherwise).
* ``WS /twilio/media`` - Twilio Media Streams (``transports/media_stream/twilio.py``).
* ``WS /telnyx/media`` - Telnyx Media Streaming (``…/telnyx.py``).
* ``WS /vonage/media`` - Vonage Voice API WebSockets, binary L16 (``…/vonage.py``).
* ``WS /ws/audio`` - raw 16-bit PCM for anyone else (``…/raw.py``).

Each WebSocket is one call (``stream_call.py``), admitted like every other,
once its handshake is authorized: with an auth token set, Twilio's handshake
must carry its ``X-Twilio-Signature`` of the ``wss://`` URL; with a stream
token set, the others must carry it (``auth.stream_token_given``). A refused
handshake is closed before it is accepted (HTTP 403) and counted as
``unauthorized``; it takes no call slot.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket

from voicebot.server.admission import read_body
from voicebot.server.auth import stream_token_given
from voicebot.server.calls import CallManager, ServerSettings
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
CLOSE_POLICY = 1008  # before the handshake is accepted: uvicorn answers HTTP 403

Handshake = Callable[[WebSocket, ServerSettings], bool]  # whether to accept the socket


def stream_routes(manager: CallManager) -> list[BaseRoute]:
    """The TwiML webhook and one WebSocket route per stream protocol."""
    settings = manager.settings

    def socket(
        protocol: Callable[[], StreamProtocol], authorized: Handshake
    ) -> Callable[[WebSocket], object]:
        async def endpoint(websocket: WebSocket) -> None:
            stream = protocol()
            if not authorized(websocket, settings):
                manager.metrics.rejected.labels("unauthorized", stream.name).inc()
                await websocket.close(CLOSE_POLICY)
                return
            await serve_stream(websocket, manager, stream)

        return endpoint

    async def twilio_voice(request: Request) -> Response:
        try:
            params = await twilio_webhook(request, manager)
        except ApiError as exc:
            return JSONResponse({"error": exc.message}, exc.status)
        if len(manager.calls) >= settings.max_calls:
            manager.metrics.rejected.labels("busy", TwilioProtocol.name).inc()
            return Response(reject_twiml(), media_type="application/xml")
        host = settings.public_host or request.headers.get("host", "localhost")
        forwarded = {k: params[k] for k in FORWARDED if params.get(k)}
        twiml = connect_twiml(f"wss://{host}/twilio/media", forwarded)
        return Response(twiml, media_type="application/xml")

    return [
        Route("/twilio/voice", twilio_voice, methods=["POST"]),
        WebSocketRoute("/twilio/media", socket(TwilioProtocol, twilio_signed)),
        WebSocketRoute("/telnyx/media", socket(TelnyxProtocol, stream_token)),
        WebSocketRoute("/vonage/media", socket(VonageProtocol, stream_token)),
        WebSocketRoute("/ws/audio", socket(RawProtocol, stream_token)),
    ]


def twilio_signed(websocket: WebSocket, settings: ServerSettings) -> bool:
    """Whether Twilio signed this handshake (no auth token set: yes): the
    ``X-Twilio-Signature`` of the ``wss://`` URL it opened, with no parameters."""
    token = settings.twilio_auth_token
    if token is None:
        return True
    given = websocket.headers.get("x-twilio-signature", "")
    return valid_signature(token, stream_url(websocket, settings.public_host), {}, given)


def stream_token(websocket: WebSocket, settings: ServerSettings) -> bool:
    """Whether the handshake carries the stream token (none set: yes)."""
    return stream_token_given(websocket.headers, websocket.query_params, settings.stream_token)


def stream_url(websocket: WebSocket, public_host: str | None) -> str:
    """The ``wss://`` URL the provider opened: on the public host, else the Host it sent
    (Twilio streams only over wss, so a proxy in front has ended the TLS)."""
    host = public_host or websocket.headers.get("host", "localhost")
    query = f"?{websocket.url.query}" if websocket.url.query else ""
    return f"wss://{host}{websocket.url.path}{query}"


async def twilio_webhook(request: Request, manager: CallManager) -> dict[str, str]:
    """A Twilio webhook's form fields; with an auth token set, its ``X-Twilio-Signature``
    must match (else an ``ApiError`` 403, counted as ``unauthorized``)."""
    settings = manager.settings
    body = await read_body(request, MAX_WEBHOOK_BYTES)
    params = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    token = settings.twilio_auth_token
    if token is not None:
        given = request.headers.get("x-twilio-signature", "")
        if not valid_signature(token, public_url(request, settings.public_host), params, given):
            manager.metrics.rejected.labels("unauthorized", TwilioProtocol.name).inc()
            raise ApiError(403, "missing or wrong X-Twilio-Signature")
    return params


def public_url(request: Request, public_host: str | None) -> str:
    """The URL Twilio requested: on the public host (behind a proxy), else as received."""
    if public_host is None:
        return str(request.url)
    query = f"?{request.url.query}" if request.url.query else ""
    return f"https://{public_host}{request.url.path}{query}"
