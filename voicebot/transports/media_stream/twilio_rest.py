"""Twilio's REST API for the calls behind media streams: redirect a live call, start a new one.

``update_call`` replaces a live call's TwiML (``POST
/Accounts/{AccountSid}/Calls/{CallSid}.json`` with ``Twiml``): a ``<Dial>``
there transfers the caller, and the call's media stream ends. ``create_call``
dials out (``POST /Accounts/{AccountSid}/Calls.json`` with ``To``, ``From`` and
``Twiml`` or ``Url``); its TwiML connects the answered call to our stream.
Requests go through the project's pooled provider client (deadlines, rate
limit; creating a call is never retried on an error status, since Twilio may
have placed it). Authentication is HTTP basic with the account SID and auth
token, or an API key's SID and secret; a failure is a ``TwilioError``.
"""

from __future__ import annotations

import base64
import dataclasses
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape

from voicebot.providers.errors import ProviderError
from voicebot.providers.http import ProviderClient, ProviderSettings, json_body
from voicebot.providers.retry import RetryPolicy

API_URL = "https://api.twilio.com/2010-04-01"
ACCOUNT_SID_ENV = "TWILIO_ACCOUNT_SID"
AUTH_TOKEN_ENV = "TWILIO_AUTH_TOKEN"
API_KEY_SID_ENV = "TWILIO_API_KEY_SID"
API_KEY_SECRET_ENV = "TWILIO_API_KEY_SECRET"
DEADLINE_S = 10.0  # a transfer or dial-out request, retries included


class TwilioError(ProviderError):
    """A Twilio REST request that failed (``status`` and Twilio's message say why)."""


@dataclass(frozen=True)
class TwilioAccount:
    """Whose calls these are and how to sign in (the secrets stay out of ``repr``)."""

    account_sid: str
    auth_token: str = field(default="", repr=False)
    api_key_sid: str = ""
    api_key_secret: str = field(default="", repr=False)
    base_url: str = API_URL

    def basic_auth(self) -> str:
        """The ``Authorization`` header: the API key if there is one, else the auth token."""
        if self.api_key_sid:
            user, password = self.api_key_sid, self.api_key_secret
        else:
            user, password = self.account_sid, self.auth_token
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def account_from_env(
    env: Mapping[str, str] | None = None, base_url: str = API_URL
) -> TwilioAccount | None:
    """The account from ``TWILIO_ACCOUNT_SID`` with ``TWILIO_AUTH_TOKEN`` (or
    ``TWILIO_API_KEY_SID`` and ``TWILIO_API_KEY_SECRET``); None unless both halves are set."""
    env = os.environ if env is None else env
    sid = env.get(ACCOUNT_SID_ENV, "").strip()
    token = env.get(AUTH_TOKEN_ENV, "").strip()
    key_sid = env.get(API_KEY_SID_ENV, "").strip()
    key_secret = env.get(API_KEY_SECRET_ENV, "").strip()
    if not sid or not (token or (key_sid and key_secret)):
        return None
    if not (key_sid and key_secret):
        key_sid = key_secret = ""
    return TwilioAccount(sid, token, key_sid, key_secret, base_url)


class TwilioRest:
    """Calls of one account over Twilio's REST API."""

    def __init__(self, account: TwilioAccount) -> None:
        self.account = account
        settings = ProviderSettings(name="twilio", base_url=account.base_url)
        self._client = ProviderClient.shared(settings)
        # Twilio may have placed a call before answering 5xx: never dial twice.
        once = dataclasses.replace(settings, retry=RetryPolicy(max_attempts=1))
        self._create_client = ProviderClient.shared(once)

    def _calls(self) -> str:
        return f"/Accounts/{self.account.account_sid}/Calls"

    async def update_call(self, call_sid: str, twiml: str) -> dict[str, Any]:
        """Replace the live call ``call_sid``'s instructions with ``twiml``; Twilio's call JSON."""
        return await self._post(self._client, f"{self._calls()}/{call_sid}.json", {"Twiml": twiml})

    async def create_call(
        self,
        to: str,
        from_: str,
        *,
        twiml: str | None = None,
        url: str | None = None,
        status_callback: str | None = None,
    ) -> dict[str, Any]:
        """Dial ``to`` from ``from_``; the answered call runs ``twiml`` (or fetches ``url``)."""
        if (twiml is None) == (url is None):
            raise ValueError("give create_call either twiml or url")
        form = {"To": to, "From": from_}
        form.update({"Twiml": twiml} if twiml is not None else {"Url": str(url)})
        if status_callback is not None:
            form.update(StatusCallback=status_callback, StatusCallbackMethod="POST")
        return await self._post(self._create_client, f"{self._calls()}.json", form)

    async def _post(
        self, client: ProviderClient, path: str, form: dict[str, str]
    ) -> dict[str, Any]:
        try:
            response = await client.request(
                "POST",
                path,
                data=form,
                headers={"Authorization": self.account.basic_auth(), "Accept": "application/json"},
                deadline=time.monotonic() + DEADLINE_S,
            )
            body = json_body(response)
        except ProviderError as exc:
            raise TwilioError(
                exc.message,
                provider="twilio",
                kind=exc.kind,
                status=exc.status,
                retryable=exc.retryable,
                retry_after=exc.retry_after,
            ) from exc
        if not isinstance(body, dict):
            raise TwilioError(f"POST {path}: expected a JSON object", provider="twilio")
        return body


def dial_twiml(target: str) -> str:
    """TwiML transferring the caller to ``target``: a number, or a ``sip:`` URI."""
    if target.startswith("sip:"):
        inner = f"<Sip>{escape(target)}</Sip>"
    else:
        inner = escape(target)
    return f'<?xml version="1.0" encoding="UTF-8"?><Response><Dial>{inner}</Dial></Response>'
