"""Telnyx's Call Control API for the calls behind media streams: transfer a live call, dial out.

``transfer`` hands a live call on (``POST /calls/{call_control_id}/actions/transfer``
with ``to``: a number or a ``sip:`` URI; the call's media stream ends).
``create_call`` dials out (``POST /calls`` with ``connection_id``, ``to``,
``from`` and the ``stream_*`` fields that start a bidirectional RTP-mode
stream to our ``/telnyx/media`` once the callee answers; its events go to
``webhook_url``). Requests go through the project's pooled provider client
(deadlines, rate limit; a dial is never retried on an error status, Telnyx may
have placed it; a transfer carries a ``command_id``, so Telnyx ignores a
repeat). Authentication is the API key as a bearer token; Telnyx's errors
(``{"errors": [{"code", "title", "detail"}]}``) become a ``TelnyxError``.
"""

from __future__ import annotations

import dataclasses
import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from voicebot.providers.errors import ProviderError
from voicebot.providers.http import ProviderClient, ProviderSettings, json_body
from voicebot.providers.retry import RetryPolicy

API_URL = "https://api.telnyx.com/v2"
API_KEY_ENV = "TELNYX_API_KEY"
CONNECTION_ID_ENV = "TELNYX_CONNECTION_ID"
DEADLINE_S = 10.0  # a transfer or dial-out request, retries included
STREAM_CODEC = "PCMU"  # what the dial-out asks Telnyx to stream (telnyx.py takes PCMU or PCMA)


class TelnyxError(ProviderError):
    """A Telnyx Call Control request that failed (``status`` and Telnyx's errors say why)."""


@dataclass(frozen=True)
class TelnyxAccount:
    """The API key (kept out of ``repr``) and the Call Control connection calls are placed on."""

    api_key: str = field(repr=False)
    connection_id: str
    base_url: str = API_URL


def account_from_env(
    env: Mapping[str, str] | None = None, base_url: str = API_URL
) -> TelnyxAccount | None:
    """The account from ``TELNYX_API_KEY`` and ``TELNYX_CONNECTION_ID`` (the Call Control
    application calls are placed on); None unless both are set."""
    env = os.environ if env is None else env
    key = env.get(API_KEY_ENV, "").strip()
    connection = env.get(CONNECTION_ID_ENV, "").strip()
    if not key or not connection:
        return None
    return TelnyxAccount(key, connection, base_url)


class TelnyxRest:
    """Calls of one account over Telnyx's Call Control API."""

    def __init__(self, account: TelnyxAccount) -> None:
        self.account = account
        settings = ProviderSettings(name="telnyx", base_url=account.base_url)
        self._client = ProviderClient.shared(settings)
        # Telnyx may have placed a call before answering 5xx: never dial twice.
        once = dataclasses.replace(settings, retry=RetryPolicy(max_attempts=1))
        self._create_client = ProviderClient.shared(once)

    async def transfer(self, call_control_id: str, to: str) -> dict[str, Any]:
        """Transfer the live call ``call_control_id`` to ``to`` (a number or ``sip:`` URI)."""
        path = f"/calls/{quote(call_control_id, safe=':')}/actions/transfer"
        body = {"to": to, "command_id": uuid.uuid4().hex}  # a retried command runs once
        return await self._post(self._client, path, body)

    async def create_call(
        self, to: str, from_: str, *, stream_url: str, webhook_url: str
    ) -> dict[str, Any]:
        """Dial ``to`` from ``from_``; once answered, Telnyx streams the call to ``stream_url``
        (both ways, RTP mode, μ-law) and posts the call's events to ``webhook_url``.
        Telnyx's call object (``call_control_id``, ``call_leg_id``, ``is_alive``, …)."""
        body = {
            "connection_id": self.account.connection_id,
            "to": to,
            "from": from_,
            "stream_url": stream_url,
            "stream_track": "inbound_track",
            "stream_bidirectional_mode": "rtp",
            "stream_bidirectional_codec": STREAM_CODEC,
            "webhook_url": webhook_url,
            "webhook_url_method": "POST",
        }
        return await self._post(self._create_client, "/calls", body)

    async def _post(
        self, client: ProviderClient, path: str, body: dict[str, str]
    ) -> dict[str, Any]:
        try:
            response = await client.request(
                "POST",
                path,
                json=body,
                headers={
                    "Authorization": f"Bearer {self.account.api_key}",
                    "Accept": "application/json",
                },
                deadline=time.monotonic() + DEADLINE_S,
            )
            answer = json_body(response)
        except ProviderError as exc:
            raise TelnyxError(
                exc.message,
                provider="telnyx",
                kind=exc.kind,
                status=exc.status,
                retryable=exc.retryable,
                retry_after=exc.retry_after,
            ) from exc
        data = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(data, dict):
            raise TelnyxError(f"POST {path}: expected a JSON object with data", provider="telnyx")
        return data
