"""A local stand-in for Twilio's REST API (the Calls resource), on uvicorn at 127.0.0.1.

It checks what Twilio checks - HTTP basic auth with the account SID and auth
token, the account in the path, the form fields - and answers in Twilio's
JSON: a call resource (201 on create, 200 on update) or an error object
``{"code", "message", "more_info", "status"}``. ``requests`` records every
request it got; ``fail_next`` makes the next one answer with that status.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.support.fake_api import serving

ACCOUNT_SID = "AC" + "a1" * 16
AUTH_TOKEN = "f" * 32
NEW_CALL_SID = "CA" + "b2" * 16


@dataclass
class TwilioRequest:
    """One request as the fake received it."""

    path: str
    form: dict[str, str]
    authorized: bool


@dataclass
class FakeTwilio:
    """The fake's state: ``url`` is its API base (``…/2010-04-01``)."""

    url: str = ""
    requests: list[TwilioRequest] = field(default_factory=list)
    fail_next: int | None = None
    on_request: Callable[[TwilioRequest], None] | None = None

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/2010-04-01/Accounts/{account}/Calls.json", self._create, methods=["POST"]),
                Route(
                    "/2010-04-01/Accounts/{account}/Calls/{call}.json",
                    self._update,
                    methods=["POST"],
                ),
            ]
        )

    async def _receive(self, request: Request) -> tuple[TwilioRequest, JSONResponse | None]:
        form = {k: str(v) for k, v in (await request.form()).items()}
        expected = base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
        authorized = request.headers.get("authorization") == f"Basic {expected}"
        got = TwilioRequest(request.url.path, form, authorized)
        self.requests.append(got)
        if self.on_request is not None:
            self.on_request(got)
        if not authorized:
            return got, _error(401, 20003, "Authenticate")
        if request.path_params["account"] != ACCOUNT_SID:
            return got, _error(404, 20404, "The requested resource was not found")
        if self.fail_next is not None:
            status, self.fail_next = self.fail_next, None
            return got, _error(status, 20500, "Internal Server Error")
        return got, None

    async def _create(self, request: Request) -> JSONResponse:
        got, refused = await self._receive(request)
        if refused is not None:
            return refused
        form = got.form
        if not form.get("To", "").startswith("+") or not form.get("From"):
            return _error(
                400, 21211, f"The 'To' number {form.get('To')} is not a valid phone number."
            )
        if ("Twiml" in form) == ("Url" in form):
            return _error(400, 21205, "Either Url or Twiml is required")
        return JSONResponse(_call(NEW_CALL_SID, form["To"], form["From"], "queued"), 201)

    async def _update(self, request: Request) -> JSONResponse:
        got, refused = await self._receive(request)
        if refused is not None:
            return refused
        if "Twiml" not in got.form and "Url" not in got.form:
            return _error(400, 21205, "Either Url or Twiml is required")
        return JSONResponse(
            _call(request.path_params["call"], "+15550100", "+15550199", "in-progress")
        )


def _call(sid: str, to: str, from_: str, status: str) -> dict[str, Any]:
    return {
        "sid": sid,
        "account_sid": ACCOUNT_SID,
        "to": to,
        "from": from_,
        "status": status,
        "direction": "outbound-api",
        "api_version": "2010-04-01",
        "uri": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/{sid}.json",
    }


def _error(status: int, code: int, message: str) -> JSONResponse:
    return JSONResponse(
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
        status,
    )


@contextlib.asynccontextmanager
async def fake_twilio() -> AsyncIterator[FakeTwilio]:
    """The fake on a free port of 127.0.0.1 for the duration of the block."""
    fake = FakeTwilio()
    async with serving(fake.app(), "Twilio") as url:
        fake.url = f"{url}/2010-04-01"
        yield fake
