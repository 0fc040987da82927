"""``POST /calls`` and ``GET /calls/{id}``: the bot places phone calls over SIP.

* ``POST /calls`` - JSON ``{"to": "sip:+15551234@trunk.example", "ring_timeout"?: s}``
  with the bearer token of ``/offer``; the call rings at once and ``202`` answers
  ``{"call_id", "to", "status": "dialing"}``. Errors are JSON ``{"error": ...}``:
  400 (not JSON, no ``sip:`` URI, a host that does not resolve), 401 token, 413
  too large, 415 not JSON, 503 at the call limit, with every ``--rtp-ports`` port
  taken, or without ``--sip-port``.
* ``GET /calls/{id}`` - the call's ``status``: ``dialing``, ``ringing``,
  ``answered``, ``busy``, ``no_answer``, ``failed``, ``cancelled``, or ``ended``
  (with the hang-up ``reason``); ``sip_status`` once a final answer came. 404
  for an id we did not place (or placed long ago).

The pipeline the server serves answers: one server, one bot.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from voicebot.server.admission import read_body
from voicebot.server.calls import Busy
from voicebot.server.openai_errors import ApiError
from voicebot.transports.sip.ports import NoRtpPort

MAX_DIAL_BYTES = 4 * 1024

Refusal = Callable[[Request], Response | None]  # an error response, or None: authorized


def dial_routes(refuse: Refusal) -> list[BaseRoute]:
    """The routes; ``refuse`` checks the bearer token as ``/offer`` does."""

    async def place(request: Request) -> Response:
        refused = refuse(request)
        if refused is not None:
            return refused
        sip = getattr(request.app.state, "sip", None)
        if sip is None:
            return _error(503, "this server does not place phone calls (start it with --sip-port)")
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return _error(415, 'send {"to": "sip:…"} as application/json')
        try:
            body = await read_body(request, MAX_DIAL_BYTES)
        except ApiError:
            return _error(413, f"request larger than {MAX_DIAL_BYTES} bytes")
        try:
            data: Any = json.loads(body)
        except (UnicodeDecodeError, ValueError) as exc:
            return _error(400, f"malformed JSON: {exc}")
        to = data.get("to") if isinstance(data, dict) else None
        timeout = data.get("ring_timeout") if isinstance(data, dict) else None
        if not isinstance(to, str):
            return _error(400, 'expected a JSON object {"to": "sip:user@host"}')
        if timeout is not None and (not isinstance(timeout, int | float) or timeout <= 0):
            return _error(400, '"ring_timeout" must be a positive number of seconds')
        try:
            call = await sip.dial(to, None if timeout is None else float(timeout))
        except ValueError as exc:
            return _error(400, str(exc))
        except OSError as exc:
            return _error(400, f"cannot reach {to}: {exc}")
        except (Busy, NoRtpPort) as exc:  # the call limit, or every RTP port of the range taken
            return JSONResponse({"error": str(exc)}, 503, headers={"Retry-After": "5"})
        return JSONResponse(call.describe(), 202)

    async def status(request: Request) -> Response:
        refused = refuse(request)
        if refused is not None:
            return refused
        sip = getattr(request.app.state, "sip", None)
        call = sip.placed.get(request.path_params["call_id"]) if sip is not None else None
        if call is None:
            return _error(404, "no such call")
        return JSONResponse(call.describe())

    return [
        Route("/calls", place, methods=["POST"]),
        Route("/calls/{call_id}", status, methods=["GET"]),
    ]


def _error(status: int, message: str) -> Response:
    return JSONResponse({"error": message}, status)
