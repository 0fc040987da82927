"""The routes of provider dial-outs and their webhooks: one handler for the three providers.

Each provider needs its account (``phone_providers.py``); transfers are
``provider_transfer.py``.

* ``POST /twilio/calls``, ``POST /telnyx/calls``, ``POST /vonage/calls`` -
  ``{"to", "from"}`` (the bearer token of ``/offer``): the provider dials
  ``to`` and connects the answered call to its ``/{provider}/media`` stream;
  ``201 {"provider", "call_id", "status"}``. JSON errors: 400 body, 401 token,
  415 not JSON, 502 the provider refused, 503 no account or at the call limit.
* ``GET /twilio/calls/{id}`` (and ``/telnyx/…``, ``/vonage/…``; the same token) -
  a dial-out placed here: ``{"provider", "call_id", "to", "from", "status",
  "result"}``, ``status`` as the provider last said it, ``result`` (answered,
  busy, no-answer, failed) once the call is over, else null; 404 JSON for an
  id not placed here (or one of more than 1000 ago).
* ``POST /twilio/status`` - Twilio's status callback (its signature checked
  like ``/twilio/voice``'s); ``POST /telnyx/events`` - Telnyx's call events
  (``call.hangup`` and its ``hangup_cause``); ``POST /vonage/events`` -
  Vonage's call events (``status``). The end of a dial-out is counted in
  ``voicebot_outbound_calls_total{result}``: answered, busy, no-answer,
  failed. Telnyx's and Vonage's events are not signed here, so only those of
  calls this server placed count.
* ``GET /vonage/answer`` - Vonage's answer webhook (of a dial-out, or a
  number's inbound calls): the NCCO connecting the call to
  ``wss://PUBLIC_HOST/vonage/media`` with the call's ``uuid``, ``from`` and
  ``to`` as headers (the uuid is what a transfer needs); ``[]`` (hang up) at
  the call limit.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from voicebot.providers.errors import ProviderError
from voicebot.server.admission import read_body
from voicebot.server.auth import require_bearer
from voicebot.server.calls import CallManager
from voicebot.server.openai_errors import ApiError
from voicebot.server.phone_providers import ACCOUNT_ENV, PROVIDERS, phone_provider
from voicebot.server.provider_transfer import DIALABLE
from voicebot.server.streams import twilio_webhook

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 16 * 1024
PLACED_KEPT = 1000  # dial-outs whose events still count
VONAGE_CONTENT_TYPE = "audio/l16;rate=16000"
# Twilio's final CallStatus values, as the outcome of a dial-out
TWILIO_RESULTS = {
    "completed": "answered",
    "in-progress": "answered",
    "busy": "busy",
    "no-answer": "no-answer",
    "canceled": "no-answer",
    "failed": "failed",
}
# Telnyx's hangup_cause of call.hangup (any other cause: failed)
TELNYX_RESULTS = {
    "normal_clearing": "answered",
    "time_limit": "answered",
    "user_busy": "busy",
    "timeout": "no-answer",
    "no_answer": "no-answer",
    "originator_cancel": "no-answer",
}
# Vonage's final status events (started, ringing, answered come before)
VONAGE_RESULTS = {
    "completed": "answered",
    "busy": "busy",
    "timeout": "no-answer",
    "unanswered": "no-answer",
    "cancelled": "no-answer",
    "failed": "failed",
    "rejected": "failed",
}

Handler = Callable[[Request], Awaitable[Response]]


def provider_call_routes(manager: CallManager) -> list[BaseRoute]:
    """The dial-out route of each provider, their status webhooks and Vonage's answer."""
    settings = manager.settings
    # (provider, call id) -> what GET /{provider}/calls/{id} answers
    placed: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()

    def remember(provider: str, call_id: str, to: str, from_: str, status: str) -> None:
        placed[provider, call_id] = {
            "provider": provider,
            "call_id": call_id,
            "to": to,
            "from": from_,
            "status": status,
            "result": None,
        }
        while len(placed) > PLACED_KEPT:
            placed.popitem(last=False)

    def update(provider: str, call_id: str, status: str, result: str | None = None) -> None:
        """A provider's word on a call: its own status; ``result`` once it is over
        (counted once per call placed here)."""
        record = placed.get((provider, call_id))
        if record is not None:
            record["status"] = status or record["status"]
            if result is None or record["result"] is not None:
                return
            record["result"] = result
        if result is not None:
            manager.metrics.outbound_calls.labels(result).inc()
            log.info("%s call %s ended: %s", provider, call_id or "-", result)

    def show(provider: str) -> Handler:
        async def status(request: Request) -> Response:
            try:
                require_bearer(request.headers, settings.token)
            except ApiError as exc:
                return JSONResponse({"error": exc.message}, exc.status, headers=exc.headers)
            record = placed.get((provider, request.path_params["call_id"]))
            if record is None:
                return JSONResponse({"error": f"no {provider} call of that id placed here"}, 404)
            return JSONResponse(record)

        return status

    def dial_out(provider: str) -> Handler:
        async def create(request: Request) -> Response:
            to = "?"
            try:
                require_bearer(request.headers, settings.token)
                phone = phone_provider(settings, provider)
                if phone is None:
                    raise ApiError(503, f"no {provider} account: set {ACCOUNT_ENV[provider]}")
                to, from_ = await _read_call(request)
                if len(manager.calls) >= settings.max_calls:
                    manager.metrics.rejected.labels("busy", provider).inc()
                    raise ApiError(
                        503,
                        f"at the limit of {settings.max_calls} calls",
                        headers={"Retry-After": "5"},
                    )
                host = settings.public_host or request.headers.get("host", "localhost")
                call = await phone.dial(to, from_, host)
            except ApiError as exc:
                return JSONResponse({"error": exc.message}, exc.status, headers=exc.headers)
            except ProviderError as exc:
                log.warning("%s refused a call to %s: %s", provider, to, exc)
                return JSONResponse({"error": str(exc), "status": exc.status}, 502)
            remember(provider, call.call_id, to, from_, call.status)
            log.info("dialing %s from %s: %s call %s", to, from_, provider, call.call_id)
            return JSONResponse(
                {"provider": provider, "call_id": call.call_id, "status": call.status}, 201
            )

        return create

    async def twilio_status(request: Request) -> Response:
        try:
            params = await twilio_webhook(request, manager)
        except ApiError as exc:
            return JSONResponse({"error": exc.message}, exc.status)
        call_status = params.get("CallStatus", "")
        update("twilio", params.get("CallSid", ""), call_status, TWILIO_RESULTS.get(call_status))
        return Response(status_code=204)

    async def telnyx_events(request: Request) -> Response:
        try:
            event = await _read_json(request)
        except ApiError as exc:
            return JSONResponse({"error": exc.message}, exc.status)
        data = event.get("data")
        data = data if isinstance(data, dict) else {}
        payload = data.get("payload")
        payload = payload if isinstance(payload, dict) else {}
        call_id = str(payload.get("call_control_id", ""))
        kind = str(data.get("event_type", ""))
        if ("telnyx", call_id) in placed and kind.startswith("call."):
            if kind == "call.hangup":
                cause = str(payload.get("hangup_cause", ""))
                update("telnyx", call_id, "hangup", TELNYX_RESULTS.get(cause, "failed"))
            else:
                update("telnyx", call_id, kind.removeprefix("call."))
        return Response(status_code=204)

    async def vonage_events(request: Request) -> Response:
        try:
            event = await _read_json(request)
        except ApiError as exc:
            return JSONResponse({"error": exc.message}, exc.status)
        call_id = str(event.get("uuid", ""))
        call_status = str(event.get("status", ""))
        if ("vonage", call_id) in placed:  # not our WebSocket leg's
            update("vonage", call_id, call_status, VONAGE_RESULTS.get(call_status))
        return Response(status_code=204)

    async def vonage_answer(request: Request) -> Response:
        query = request.query_params
        if len(manager.calls) >= settings.max_calls:
            manager.metrics.rejected.labels("busy", "vonage").inc()
            return JSONResponse([])  # an NCCO with nothing to do: Vonage hangs up
        host = settings.public_host or request.headers.get("host", "localhost")
        headers = {k: query[k] for k in ("uuid", "from", "to") if query.get(k)}
        websocket = {
            "type": "websocket",
            "uri": f"wss://{host}/vonage/media",
            "content-type": VONAGE_CONTENT_TYPE,
            "headers": headers,
        }
        return JSONResponse([{"action": "connect", "endpoint": [websocket]}])

    return [
        *(Route(f"/{p}/calls", dial_out(p), methods=["POST"]) for p in PROVIDERS),
        *(Route(f"/{p}/calls/{{call_id}}", show(p), methods=["GET"]) for p in PROVIDERS),
        Route("/twilio/status", twilio_status, methods=["POST"]),
        Route("/telnyx/events", telnyx_events, methods=["POST"]),
        Route("/vonage/events", vonage_events, methods=["POST"]),
        Route("/vonage/answer", vonage_answer, methods=["GET"]),
    ]


async def _read_json(request: Request) -> dict[str, Any]:
    """A webhook's JSON object (400 for anything else)."""
    try:
        data: Any = json.loads(await read_body(request, MAX_BODY_BYTES))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ApiError(400, f"malformed JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ApiError(400, "expected a JSON object")
    return data


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
