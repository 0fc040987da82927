"""A local stand-in for Vonage's Voice API (create a call, transfer one), on uvicorn at 127.0.0.1.

It checks what Vonage checks - the bearer JWT, verified (RS256) with the public
half of the application's key pair (made here with ``cryptography``) and its
``application_id``, ``iat``, ``exp`` and ``jti`` claims; the JSON fields of a
create (``to`` endpoints, a ``from`` phone, an NCCO or an ``answer_url``) and
of a transfer (an NCCO whose ``connect`` rings a phone or SIP endpoint) - and
answers in Vonage's JSON: the new call (201), 204 for a transfer, or an error
``{"type", "title", "detail", "instance"}``. ``requests`` records every
request; ``fail_next`` makes the next one answer with that status.
"""

from __future__ import annotations

import contextlib
import functools
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.fake_api import serving

APPLICATION_ID = "aaaaaaaa-bbbb-cccc-dddd-0123456789ab"
NEW_CALL_UUID = "63f61863-4a51-4f6b-86e1-46edebcf9356"
LIVE_CALL_UUID = "aaaaaaaa-bbbb-cccc-dddd-0123456789ff"


@functools.cache
def key_pair() -> tuple[str, str]:
    """The application's RSA key pair, (private PEM, public PEM), made once per test run."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


@dataclass
class VonageRequest:
    """One request as the fake received it (``claims`` of a valid token, else None)."""

    method: str
    path: str
    body: dict[str, Any]
    claims: dict[str, Any] | None

    @property
    def authorized(self) -> bool:
        return self.claims is not None


@dataclass
class FakeVonage:
    """The fake's state: ``url`` is its API base (``…/v1``)."""

    url: str = ""
    requests: list[VonageRequest] = field(default_factory=list)
    fail_next: int | None = None
    on_request: Callable[[VonageRequest], None] | None = None

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/calls", self._create, methods=["POST"]),
                Route("/v1/calls/{uuid}", self._modify, methods=["PUT"]),
            ]
        )

    async def _receive(self, request: Request) -> tuple[VonageRequest, Response | None]:
        try:
            body = json.loads(await request.body())
        except ValueError:
            body = None
        claims = _claims(request.headers.get("authorization", ""))
        got = VonageRequest(
            request.method, request.url.path, body if isinstance(body, dict) else {}, claims
        )
        self.requests.append(got)
        if self.on_request is not None:
            self.on_request(got)
        if claims is None:
            return got, _error(
                401, "unauthorized", "Unauthorized", "You did not provide correct credentials."
            )
        if not isinstance(body, dict):
            return got, _error(400, "bad-request", "Bad Request", "The request body is not JSON.")
        if self.fail_next is not None:
            status, self.fail_next = self.fail_next, None
            return got, _error(status, "internal-error", "Internal Server Error", "Please retry.")
        return got, None

    async def _create(self, request: Request) -> Response:
        got, refused = await self._receive(request)
        if refused is not None:
            return refused
        body = got.body
        to = body.get("to")
        if not isinstance(to, list) or not to or not all(_endpoint_ok(e) for e in to):
            return _invalid("to", "must be a list of phone or sip endpoints")
        source = body.get("from")
        if not (
            isinstance(source, dict)
            and source.get("type") == "phone"
            and _digits(source.get("number"))
        ):
            return _invalid("from", "must be a phone endpoint with a number")
        if ("ncco" in body) == ("answer_url" in body):
            return _invalid("answer_url", "give either ncco or answer_url")
        for key in ("answer_url", "event_url"):
            urls = body.get(key, ["https://x"])
            if not (
                isinstance(urls, list) and len(urls) == 1 and str(urls[0]).startswith("https://")
            ):
                return _invalid(key, "must be a list of one https URL")
        return JSONResponse(
            {
                "uuid": NEW_CALL_UUID,
                "status": "started",
                "direction": "outbound",
                "conversation_uuid": "CON-f972836a-550f-45fa-956c-12a2ab5b7d22",
            },
            201,
        )

    async def _modify(self, request: Request) -> Response:
        got, refused = await self._receive(request)
        if refused is not None:
            return refused
        body = got.body
        if request.path_params["uuid"] not in (LIVE_CALL_UUID, NEW_CALL_UUID):
            return _error(404, "not-found", "Not Found", "Call not found.")
        action = body.get("action")
        if action == "hangup":
            return Response(status_code=204)
        if action != "transfer":
            return _invalid("action", "unknown action")
        destination = body.get("destination")
        if not isinstance(destination, dict) or destination.get("type") != "ncco":
            return _invalid("destination", "must be of type ncco")
        ncco = destination.get("ncco")
        if "url" not in destination and not (
            isinstance(ncco, list) and ncco and all(_action_ok(a) for a in ncco)
        ):
            return _invalid("destination.ncco", "not a valid NCCO")
        return Response(status_code=204)


def _claims(authorization: str) -> dict[str, Any] | None:
    scheme, _, token = authorization.partition(" ")
    if scheme != "Bearer":
        return None
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key_pair()[1],
            algorithms=["RS256"],
            options={"require": ["application_id", "iat", "exp", "jti"]},
        )
    except jwt.InvalidTokenError:
        return None
    return claims if claims["application_id"] == APPLICATION_ID else None


def _digits(value: object) -> bool:
    return isinstance(value, str) and value.isdigit() and 7 <= len(value) <= 15


def _endpoint_ok(endpoint: object) -> bool:
    if not isinstance(endpoint, dict):
        return False
    if endpoint.get("type") == "phone":
        return _digits(endpoint.get("number"))
    if endpoint.get("type") == "sip":
        return str(endpoint.get("uri", "")).startswith(("sip:", "sips:"))
    return False


def _action_ok(action: object) -> bool:
    if not isinstance(action, dict):
        return False
    if action.get("action") == "connect":
        endpoints = action.get("endpoint")
        return isinstance(endpoints, list) and len(endpoints) == 1 and _endpoint_ok(endpoints[0])
    return action.get("action") in ("talk", "stream", "input", "record", "conversation", "notify")


def _error(status: int, kind: str, title: str, detail: str, **more: Any) -> JSONResponse:
    return JSONResponse(
        {
            "type": f"https://developer.nexmo.com/api-errors/voice#{kind}",
            "title": title,
            "detail": detail,
            "instance": str(uuid.uuid4()),
            **more,
        },
        status,
    )


def _invalid(name: str, reason: str) -> JSONResponse:
    return _error(
        400,
        "validation",
        "Bad Request",
        "The request failed due to validation errors",
        invalid_parameters=[{"name": name, "reason": reason}],
    )


@contextlib.asynccontextmanager
async def fake_vonage() -> AsyncIterator[FakeVonage]:
    """The fake on a free port of 127.0.0.1 for the duration of the block."""
    fake = FakeVonage()
    async with serving(fake.app(), "Vonage") as url:
        fake.url = f"{url}/v1"
        yield fake
