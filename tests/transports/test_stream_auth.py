"""Who may open a media stream: Twilio's signed handshake, the stream token for the others.

A real uvicorn server in this process (``stream_server.py``) and the
protocol-faithful provider clients (``stream_clients.py``), which put the
token where the providers let one go: an ``Authorization`` header on the
handshake (Vonage's endpoint ``headers``, a gateway of one's own) or the
``token`` query parameter of the stream URL (Telnyx's ``stream_url``). A
refused handshake is an HTTP 403 before the WebSocket opens, counted as
``unauthorized``, and takes no call slot: each server admits one call.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus

from tests.support.paths import ECHO_PIPELINE
from tests.support.stream_clients import (
    RawClient,
    StreamClient,
    TelnyxClient,
    TwilioClient,
    VonageClient,
)
from tests.support.stream_server import ended, of_type, stream_server, until
from voicebot.events import EventRecord

TOKEN = "stream-token-0f3a9c"
AUTH_TOKEN = "twilio-auth-token-7d21"

Client = Callable[[str, Mapping[str, str] | None], StreamClient]
TOKEN_STREAMS: dict[str, tuple[str, Client]] = {
    "telnyx": ("/telnyx/media", lambda url, headers: TelnyxClient(url, headers=headers)),
    "vonage": ("/vonage/media", lambda url, headers: VonageClient(url, headers=headers)),
    "raw": ("/ws/audio", lambda url, headers: RawClient(url, headers=headers)),
}


def twilio_signature(auth_token: str, url: str) -> str:
    """What Twilio sends on a Media Streams handshake: base64 HMAC-SHA1 of the wss URL
    (a GET: no parameters), keyed with the auth token."""
    digest = hmac.new(auth_token.encode(), url.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


async def refusal(client: StreamClient) -> int:
    """The HTTP status of a handshake that must not open."""
    with pytest.raises(InvalidStatus) as refused:
        async with client:
            pass
    return refused.value.response.status_code


async def one_call(client: StreamClient, app: Any, events: list[EventRecord]) -> None:
    """The client's stream runs as a call, then hangs up and frees its slot."""
    calls = len(of_type(events, "call_started"))
    async with client:
        await until(lambda: len(of_type(events, "call_started")) > calls, 15)
    await until(lambda: not app.state.manager.calls, 10)


@pytest.mark.parametrize("transport", list(TOKEN_STREAMS))
async def test_a_stream_needs_the_stream_token(transport: str) -> None:
    path, client = TOKEN_STREAMS[transport]
    async with stream_server(ECHO_PIPELINE, stream_token=TOKEN, max_calls=1) as (
        url,
        events,
        app,
    ):
        base = f"{url}{path}"
        assert await refusal(client(base, None)) == 403  # no token
        assert await refusal(client(f"{base}?token=guess", None)) == 403
        assert await refusal(client(base, {"Authorization": "Bearer guess"})) == 403
        assert await refusal(client(base, {"Authorization": f"Basic {TOKEN}"})) == 403
        assert not app.state.manager.calls and not of_type(events, "call_started")
        # the one call slot is free: the right token in either place gets in
        await one_call(client(base, {"Authorization": f"Bearer {TOKEN}"}), app, events)
        await one_call(client(f"{base}?token={TOKEN}", None), app, events)
        metrics = app.state.metrics.render()[0].decode()
    assert [e["transport"] for e in of_type(events, "call_started")] == [transport] * 2
    rejected = 'voicebot_offers_rejected_total{reason="%s",transport="%s"}'
    assert f"{rejected % ('unauthorized', transport)} 4.0" in metrics
    assert rejected % ("busy", transport) not in metrics


async def test_twilio_handshake_needs_twilios_signature_of_the_public_url() -> None:
    async with stream_server(
        ECHO_PIPELINE,
        twilio_auth_token=AUTH_TOKEN,
        public_host="bot.example.com",
        stream_token=TOKEN,
        max_calls=1,
    ) as (url, events, app):
        media = f"{url}/twilio/media"
        signed = "wss://bot.example.com/twilio/media"  # the URL of our TwiML's <Stream>
        for headers in (
            None,  # unsigned
            {"X-Twilio-Signature": twilio_signature("another-account", signed)},
            {"X-Twilio-Signature": twilio_signature(AUTH_TOKEN, f"{url}/twilio/media")},
            {"Authorization": f"Bearer {TOKEN}"},  # the stream token is not Twilio's
        ):
            assert await refusal(TwilioClient(media, headers=headers)) == 403
        assert not app.state.manager.calls and not of_type(events, "call_started")
        good = {"X-Twilio-Signature": twilio_signature(AUTH_TOKEN, signed)}
        async with TwilioClient(media, headers=good) as twilio:
            await until(lambda: of_type(events, "call_started"), 15)
            await twilio.stop()
            end = await ended(events)
        await until(lambda: not app.state.manager.calls, 10)
        metrics = app.state.metrics.render()[0].decode()
    assert end["reason"] == "hangup"
    assert 'voicebot_offers_rejected_total{reason="unauthorized",transport="twilio"} 4.0' in metrics


async def test_without_a_public_host_twilio_signs_the_host_it_was_given() -> None:
    async with stream_server(ECHO_PIPELINE, twilio_auth_token=AUTH_TOKEN) as (url, events, app):
        host = url.removeprefix("ws://")
        media = f"{url}/twilio/media"
        wrong = {"X-Twilio-Signature": twilio_signature(AUTH_TOKEN, "wss://elsewhere/twilio/media")}
        assert await refusal(TwilioClient(media, headers=wrong)) == 403
        good = {"X-Twilio-Signature": twilio_signature(AUTH_TOKEN, f"wss://{host}/twilio/media")}
        await one_call(TwilioClient(media, headers=good), app, events)
        # no stream token set: the other streams are open
        await one_call(RawClient(f"{url}/ws/audio"), app, events)
