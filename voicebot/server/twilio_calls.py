"""The routes of Twilio dial-outs: ``POST /twilio/calls`` and its status callback.

Both need a Twilio account (``TWILIO_ACCOUNT_SID`` and ``TWILIO_AUTH_TOKEN``, see
``transports/media_stream/twilio_rest.py``); transfers are ``twilio_transfer.py``.

* ``POST /twilio/calls`` - ``{"to", "from"}`` (the bearer token of ``/offer``):
  Twilio dials ``to`` and connects the answered call to ``/twilio/media``;
  ``201 {"call_sid", "status"}``. JSON errors: 400 body, 401 token, 415 not
  JSON, 502 Twilio refused, 503 no account or at the call limit.
* ``POST /twilio/status`` - Twilio's status callback of those calls (its
  signature checked like ``/twilio/voice``'s), counted in
  ``voicebot_outbound_calls_total{result}``: answered, busy, no-answer, failed.
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from voicebot.server.admission import read_body
from voicebot.server.auth import require_bearer
from voicebot.server.calls import CallManager
from voicebot.server.openai_errors import ApiError
from voicebot.server.streams import public_url
from voicebot.server.twilio_transfer import DIALABLE
from voicebot.transports.media_stream.twilio import connect_twiml, valid_signature
from voicebot.transports.media_stream.twilio_rest import TwilioError, TwilioRest

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 16 * 1024
# Twilio's final CallStatus values, as the outcome of a dial-out
RESULTS = {
    "completed": "answered",
    "in-progress": "answered",
    "busy": "busy",
    "no-answer": "no-answer",
    "canceled": "no-answer",
    "failed": "failed",
}


def twilio_call_routes(manager: CallManager) -> list[BaseRoute]:
    """``POST /twilio/calls`` (dial out) and ``POST /twilio/status`` (Twilio's callback)."""
    settings = manager.settings

    async def create(request: Request) -> Response:
        try:
            require_bearer(request.headers, settings.token)
            account = settings.twilio_account
            if account is None:
                raise ApiError(503, "no Twilio account: set TWILIO_ACCOUNT_SID and the token")
            to, from_ = await _read_call(request)
            if len(manager.calls) >= settings.max_calls:
                manager.metrics.rejected.labels("busy", "twilio").inc()
                raise ApiError(
                    503, f"at the limit of {settings.max_calls} calls", headers={"Retry-After": "5"}
                )
            host = settings.public_host or request.headers.get("host", "localhost")
            twiml = connect_twiml(f"wss://{host}/twilio/media", {"From": from_, "To": to})
            call = await TwilioRest(account).create_call(
                to, from_, twiml=twiml, status_callback=f"https://{host}/twilio/status"
            )
        except ApiError as exc:
            return JSONResponse({"error": exc.message}, exc.status, headers=exc.headers)
        except TwilioError as exc:
            log.warning("Twilio refused a call to %s: %s", to, exc)
            return JSONResponse({"error": str(exc), "status": exc.status}, 502)
        log.info("dialing %s from %s: Twilio call %s", to, from_, call.get("sid"))
        return JSONResponse({"call_sid": call.get("sid"), "status": call.get("status")}, 201)

    async def status(request: Request) -> Response:
        try:
            body = await read_body(request, MAX_BODY_BYTES)
        except ApiError as exc:
            return JSONResponse({"error": exc.message}, exc.status)
        params = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        token = settings.twilio_auth_token
        if token is not None:
            given = request.headers.get("x-twilio-signature", "")
            if not valid_signature(token, public_url(request, settings.public_host), params, given):
                manager.metrics.rejected.labels("unauthorized", "twilio").inc()
                return JSONResponse({"error": "missing or wrong X-Twilio-Signature"}, 403)
        call_status = params.get("CallStatus", "")
        result = RESULTS.get(call_status)
        if result is not None:
            manager.metrics.outbound_calls.labels(result).inc()
        log.info("Twilio call %s: %s", params.get("CallSid", "-"), call_status or "?")
        return Response(status_code=204)

    return [
        Route("/twilio/calls", create, methods=["POST"]),
        Route("/twilio/status", status, methods=["POST"]),
    ]


async def _read_call(request: Request) -> tuple[str, str]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise ApiError(415, 'send {"to": ..., "from": ...} as application/json')
    try:
        data: Any = json.loads(await read_body(request, MAX_BODY_BYTES))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ApiError(400, f"malformed JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ApiError(400, 'expected a JSON object {"to": ..., "from": ...}')
    fields = []
    for key in ("to", "from"):
        value = data.get(key)
        if not isinstance(value, str) or not DIALABLE.match(value.strip()):
            raise ApiError(400, f'"{key}" must be a phone number (+15550100) or a sip: URI')
        fields.append(value.strip())
    return fields[0], fields[1]
