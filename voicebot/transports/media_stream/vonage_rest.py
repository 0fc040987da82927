"""Vonage's Voice API for the calls behind media streams: transfer a live call, dial out.

``transfer`` hands a live call on (``PUT /calls/{uuid}`` with ``action:
transfer`` to an NCCO whose ``connect`` rings a phone number or a SIP URI; the
call's WebSocket leg ends). ``create_call`` dials out (``POST /calls`` with
``to``, ``from``, ``answer_url`` and ``event_url``): once the callee answers,
Vonage fetches the NCCO from ``answer_url`` with the call's ``uuid``, so the
NCCO that connects our ``/vonage/media`` can hand the uuid to the stream (an
NCCO given inline could not: the uuid does not exist before the request).
Requests go through the project's pooled provider client (deadlines, rate
limit; a dial is never retried on an error status, Vonage may have placed it).
Authentication is a JWT (RS256) signed with the application's private key,
made fresh for each request; Vonage's errors (``{"type", "title", "detail"}``)
become a ``VonageError``.
"""

from __future__ import annotations

import dataclasses
import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jwt
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from voicebot.providers.errors import ProviderError
from voicebot.providers.http import ProviderClient, ProviderSettings, json_body
from voicebot.providers.retry import RetryPolicy

API_URL = "https://api.nexmo.com/v1"
APPLICATION_ID_ENV = "VONAGE_APPLICATION_ID"
PRIVATE_KEY_ENV = "VONAGE_PRIVATE_KEY"  # the PEM text
PRIVATE_KEY_PATH_ENV = "VONAGE_PRIVATE_KEY_PATH"  # or a file holding it
DEADLINE_S = 10.0  # a transfer or dial-out request, retries included
TOKEN_TTL_S = 300  # each request signs its own token


class VonageError(ProviderError):
    """A Vonage Voice API request that failed (``status`` and Vonage's message say why)."""


@dataclass(frozen=True)
class VonageAccount:
    """The Voice application and its private key (PEM, kept out of ``repr``)."""

    application_id: str
    private_key: str = field(repr=False)
    base_url: str = API_URL

    def token(self, now: float | None = None) -> str:
        """A JWT for one request: ``application_id``, ``iat``, ``exp`` and a fresh ``jti``."""
        issued = int(time.time() if now is None else now)
        claims = {
            "application_id": self.application_id,
            "iat": issued,
            "exp": issued + TOKEN_TTL_S,
            "jti": str(uuid.uuid4()),
        }
        return jwt.encode(claims, self.private_key, algorithm="RS256")


def account_from_env(
    env: Mapping[str, str] | None = None, base_url: str = API_URL
) -> VonageAccount | None:
    """The account from ``VONAGE_APPLICATION_ID`` and ``VONAGE_PRIVATE_KEY`` (PEM text; ``\\n``
    for line breaks is fine) or ``VONAGE_PRIVATE_KEY_PATH``; None unless both are set.
    Raises ``ValueError`` for a key file that cannot be read or a key that is not a PEM key."""
    env = os.environ if env is None else env
    application = env.get(APPLICATION_ID_ENV, "").strip()
    pem = env.get(PRIVATE_KEY_ENV, "").replace("\\n", "\n").strip()
    path = env.get(PRIVATE_KEY_PATH_ENV, "").strip()
    if not pem and path:
        try:
            pem = Path(path).read_text().strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"{PRIVATE_KEY_PATH_ENV}={path}: cannot read the key: {exc}") from exc
    if not application or not pem:
        return None
    try:
        load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError) as exc:
        where = PRIVATE_KEY_ENV if env.get(PRIVATE_KEY_ENV, "").strip() else PRIVATE_KEY_PATH_ENV
        raise ValueError(f"{where}: not an unencrypted PEM private key ({exc})") from exc
    return VonageAccount(application, pem, base_url)


def endpoint(target: str) -> dict[str, str]:
    """An NCCO ``connect`` endpoint ringing ``target``: a ``sip:`` URI, else a phone number
    (Vonage writes them in E.164 without the ``+``)."""
    if target.startswith(("sip:", "sips:")):
        return {"type": "sip", "uri": target}
    return {"type": "phone", "number": target.removeprefix("+")}


class VonageRest:
    """Calls of one Voice application over Vonage's Voice API."""

    def __init__(self, account: VonageAccount) -> None:
        self.account = account
        settings = ProviderSettings(name="vonage", base_url=account.base_url)
        self._client = ProviderClient.shared(settings)
        # Vonage may have placed a call before answering 5xx: never dial twice.
        once = dataclasses.replace(settings, retry=RetryPolicy(max_attempts=1))
        self._create_client = ProviderClient.shared(once)

    async def transfer(self, call_uuid: str, target: str) -> None:
        """Transfer the live call ``call_uuid`` to an NCCO that connects it to ``target``."""
        ncco = [{"action": "connect", "endpoint": [endpoint(target)]}]
        body = {"action": "transfer", "destination": {"type": "ncco", "ncco": ncco}}
        await self._send(self._client, "PUT", f"/calls/{quote(call_uuid, safe='')}", body)

    async def create_call(
        self, to: str, from_: str, *, answer_url: str, event_url: str
    ) -> dict[str, Any]:
        """Dial ``to`` (a number or ``sip:`` URI) from the number ``from_``; the answered
        call runs the NCCO at ``answer_url``, its status events go to ``event_url``.
        Vonage's answer: ``uuid``, ``status`` (``started``), ``direction`` and
        ``conversation_uuid``."""
        body = {
            "to": [endpoint(to)],
            "from": {"type": "phone", "number": from_.removeprefix("+")},
            "answer_url": [answer_url],
            "answer_method": "GET",
            "event_url": [event_url],
            "event_method": "POST",
        }
        answer = await self._send(self._create_client, "POST", "/calls", body)
        if not isinstance(answer, dict) or not isinstance(answer.get("uuid"), str):
            raise VonageError(
                "POST /calls: expected a JSON object with the uuid", provider="vonage"
            )
        return answer

    async def _send(
        self, client: ProviderClient, method: str, path: str, body: dict[str, Any]
    ) -> Any:
        try:
            response = await client.request(
                method,
                path,
                json=body,
                headers={
                    "Authorization": f"Bearer {self.account.token()}",
                    "Accept": "application/json",
                },
                deadline=time.monotonic() + DEADLINE_S,
            )
            return json_body(response) if response.content else None  # a transfer: 204
        except ProviderError as exc:
            raise VonageError(
                exc.message,
                provider="vonage",
                kind=exc.kind,
                status=exc.status,
                retryable=exc.retryable,
                retry_after=exc.retry_after,
            ) from exc
