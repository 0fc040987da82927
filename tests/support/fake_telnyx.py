"""A local stand-in for Telnyx's Call Control API (dial, transfer), on uvicorn at 127.0.0.1.

It checks what Telnyx checks - the API key as a bearer token, the call control
id in the path, the JSON fields of a dial (the connection, E.164 numbers, a
``wss://`` stream URL with a bidirectional mode and codec Telnyx has) and of
a transfer - and answers in Telnyx's JSON: ``{"data": {...}}`` or
``{"errors": [{"code", "title", "detail"}]}``. ``requests`` records every
request it got; ``fail_next`` makes the next one answer with that status.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.support.fake_api import serving

API_KEY = "KEY0123456789ABCDEF_fake"
CONNECTION_ID = "1684641123236054244"
NEW_CALL_CONTROL_ID = "v3:u5OAKGEPT3Dx8SZSSDRWEMdNH2OripQhO"
E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


@dataclass
class TelnyxRequest:
    """One request as the fake received it."""

    path: str
    body: dict[str, Any]
    authorized: bool


@dataclass
class FakeTelnyx:
    """The fake's state: ``url`` is its API base (``…/v2``)."""

    url: str = ""
    requests: list[TelnyxRequest] = field(default_factory=list)
    fail_next: int | None = None
    on_request: Callable[[TelnyxRequest], None] | None = None

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v2/calls", self._dial, methods=["POST"]),
                Route(
                    "/v2/calls/{call_control_id}/actions/transfer", self._transfer, methods=["POST"]
                ),
            ]
        )

    async def _receive(self, request: Request) -> tuple[TelnyxRequest, JSONResponse | None]:
        try:
            body = json.loads(await request.body())
        except ValueError:
            body = None
        authorized = request.headers.get("authorization") == f"Bearer {API_KEY}"
        got = TelnyxRequest(request.url.path, body if isinstance(body, dict) else {}, authorized)
        self.requests.append(got)
        if self.on_request is not None:
            self.on_request(got)
        if not authorized:
            return got, _error(
                401,
                "10009",
                "Authentication failed",
                "Could not understand the provided credentials.",
            )
        if not isinstance(body, dict) or request.headers.get("content-type") != "application/json":
            return got, _error(400, "10015", "Bad Request", "The request body is not valid JSON.")
        if self.fail_next is not None:
            status, self.fail_next = self.fail_next, None
            return got, _error(status, "10007", "Unexpected error", "An unexpected error occured.")
        return got, None

    async def _dial(self, request: Request) -> JSONResponse:
        got, refused = await self._receive(request)
        if refused is not None:
            return refused
        body = got.body
        if body.get("connection_id") != CONNECTION_ID:
            return _error(
                422,
                "10010",
                "Invalid connection_id",
                "The connection_id is not valid.",
                "connection_id",
            )
        for key in ("to", "from"):
            value = str(body.get(key, ""))
            if not (E164.match(value) or (key == "to" and value.startswith("sip:"))):
                return _error(
                    422,
                    "10016",
                    "Phone number must be in +E.164 format",
                    f"The '{key}' is not valid.",
                    key,
                )
        if not str(body.get("stream_url", "")).startswith(("wss://", "ws://")):
            return _error(
                422,
                "10001",
                "Invalid stream_url",
                "stream_url must be a WebSocket URL.",
                "stream_url",
            )
        if body.get("stream_bidirectional_mode") not in (None, "mp3", "rtp"):
            return _error(
                422,
                "10001",
                "Invalid value",
                "Unknown stream_bidirectional_mode.",
                "stream_bidirectional_mode",
            )
        if body.get("stream_bidirectional_codec") not in (
            None,
            "PCMU",
            "PCMA",
            "G722",
            "OPUS",
            "AMR-WB",
            "L16",
        ):
            return _error(
                422,
                "10001",
                "Invalid value",
                "Unknown stream_bidirectional_codec.",
                "stream_bidirectional_codec",
            )
        if body.get("stream_track") not in (None, "inbound_track", "outbound_track", "both_tracks"):
            return _error(422, "10001", "Invalid value", "Unknown stream_track.", "stream_track")
        return JSONResponse(
            {
                "data": {
                    "call_control_id": NEW_CALL_CONTROL_ID,
                    "call_leg_id": "2dc6fc34-f9e0-11ea-b68e-02420a0f7768",
                    "call_session_id": "2dc1b3c8-f9e0-11ea-bc5a-02420a0f7768",
                    "is_alive": False,
                    "record_type": "call",
                }
            }
        )

    async def _transfer(self, request: Request) -> JSONResponse:
        got, refused = await self._receive(request)
        if refused is not None:
            return refused
        to = str(got.body.get("to", ""))
        if not (E164.match(to) or to.startswith("sip:")):
            return _error(
                422, "10016", "Invalid 'to' address", "'to' must be +E.164 or a SIP URI.", "to"
            )
        return JSONResponse({"data": {"result": "ok"}})


def _error(status: int, code: str, title: str, detail: str, pointer: str = "") -> JSONResponse:
    error: dict[str, Any] = {"code": code, "title": title, "detail": detail}
    if pointer:
        error["source"] = {"pointer": f"/{pointer}"}
    return JSONResponse({"errors": [error]}, status)


@contextlib.asynccontextmanager
async def fake_telnyx() -> AsyncIterator[FakeTelnyx]:
    """The fake on a free port of 127.0.0.1 for the duration of the block."""
    fake = FakeTelnyx()
    async with serving(fake.app(), "Telnyx") as url:
        fake.url = f"{url}/v2"
        yield fake
