"""Shared secrets the server checks: the bearer token of the call routes and the stream token.

* The **bearer token** (``ServerSettings.token``, ``--token-env``) guards the
  routes that start or place calls: ``POST /offer``, ``POST /calls``,
  ``GET /calls/{id}``, ``POST /twilio/calls``. ``require_bearer`` raises
  ``Unauthorized`` (401 with ``WWW-Authenticate``) unless the request has it.
* The **stream token** (``ServerSettings.stream_token``) guards the media-stream
  WebSockets a provider cannot sign (``/telnyx/media``, ``/vonage/media``,
  ``/ws/audio``): ``Authorization: Bearer <token>`` on the handshake or a
  ``token`` query parameter in the stream URL (``stream_token_given``).

Every comparison is in constant time; no secret set means the check passes.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from voicebot.server.openai_errors import ApiError

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="voicebot"'}
TOKEN_PARAM = "token"  # the stream URL's query parameter


class Unauthorized(ApiError):
    """The request lacks the bearer token (401, with the ``WWW-Authenticate`` challenge)."""

    def __init__(self, message: str = "missing or wrong bearer token") -> None:
        super().__init__(401, message, headers=dict(CHALLENGE))


def bearer(headers: Mapping[str, str]) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, if there is one."""
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


def same_secret(given: str | None, secret: str) -> bool:
    """Whether ``given`` is ``secret``, compared in constant time (None: no)."""
    return given is not None and hmac.compare_digest(given.encode(), secret.encode())


def require_bearer(headers: Mapping[str, str], token: str | None) -> None:
    """Raise ``Unauthorized`` unless ``headers`` carry ``token`` as the bearer (None: open)."""
    if token is not None and not same_secret(bearer(headers), token):
        raise Unauthorized()


def stream_token_given(
    headers: Mapping[str, str], query: Mapping[str, str], token: str | None
) -> bool:
    """Whether a WebSocket handshake carries the stream ``token`` (None: open), as the
    bearer or as the ``token`` query parameter."""
    if token is None:
        return True
    return same_secret(bearer(headers), token) or same_secret(query.get(TOKEN_PARAM), token)
