"""Transfers and dial-outs through Telnyx's Call Control API, against a local fake of it.

The fake (``tests/support/fake_telnyx.py``) checks the bearer key, paths and
JSON fields and answers in Telnyx's JSON; the live call is the restaurant bot
over a protocol-faithful Telnyx media stream.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import httpx
import pytest

from tests.support.fake_telnyx import API_KEY, CONNECTION_ID, NEW_CALL_CONTROL_ID, fake_telnyx
from tests.support.paths import ECHO_PIPELINE, RESTAURANT_PIPELINE
from tests.support.speech import say
from tests.support.stream_clients import TelnyxClient
from tests.support.stream_server import ended, live_call, of_type, stream_server, until
from voicebot.config import load_pipeline
from voicebot.providers.errors import ProviderError
from voicebot.server.app import create_app
from voicebot.server.calls import CallManager, ServerSettings
from voicebot.server.metrics import Metrics
from voicebot.server.provider_calls import TELNYX_RESULTS
from voicebot.server.provider_transfer import transfer_call
from voicebot.server.serve import add_serve_arguments, settings_from_args
from voicebot.transports.media_stream.telnyx_rest import (
    TelnyxAccount,
    TelnyxError,
    TelnyxRest,
    account_from_env,
)

FRONT_DESK = "+15550123"


def account(url: str, key: str = API_KEY) -> TelnyxAccount:
    return TelnyxAccount(key, CONNECTION_ID, base_url=url)


def metric(app: Any, line: str) -> bool:
    return line in app.state.metrics.render()[0].decode()


def client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bot")


# --- the client --------------------------------------------------------------------------


async def test_the_client_sends_call_control_commands_with_the_bearer_key() -> None:
    async with fake_telnyx() as fake:
        rest = TelnyxRest(account(fake.url))
        transferred = await rest.transfer("v3:abc-123", FRONT_DESK)
        created = await rest.create_call(
            "+15550111", "+15550100", stream_url="wss://bot/telnyx/media", webhook_url="https://e"
        )
    assert transferred == {"result": "ok"} and created["call_control_id"] == NEW_CALL_CONTROL_ID
    first, second = fake.requests
    assert first.authorized and first.path == "/v2/calls/v3:abc-123/actions/transfer"
    assert first.body["to"] == FRONT_DESK and len(first.body["command_id"]) == 32
    assert second.authorized and second.path == "/v2/calls"
    assert second.body == {
        "connection_id": CONNECTION_ID,
        "to": "+15550111",
        "from": "+15550100",
        "stream_url": "wss://bot/telnyx/media",
        "stream_track": "inbound_track",
        "stream_bidirectional_mode": "rtp",
        "stream_bidirectional_codec": "PCMU",
        "webhook_url": "https://e",
        "webhook_url_method": "POST",
    }


async def test_telnyx_refusing_is_a_telnyx_error_and_a_dial_is_never_sent_twice() -> None:
    async with fake_telnyx() as fake:
        with pytest.raises(TelnyxError) as refused:
            await TelnyxRest(account(fake.url, "KEYwrong")).transfer("v3:a", FRONT_DESK)
        assert refused.value.status == 401 and isinstance(refused.value, ProviderError)
        assert "Authentication failed" in str(refused.value) and "KEYwrong" not in str(
            refused.value
        )

        fake.requests.clear()
        fake.fail_next = 500
        with pytest.raises(TelnyxError) as failed:
            await TelnyxRest(account(fake.url)).create_call(
                "+15550111", "+15550100", stream_url="wss://b/telnyx/media", webhook_url="https://e"
            )
        assert failed.value.status == 500 and len(fake.requests) == 1  # Telnyx may have dialed

        fake.fail_next = 503  # a transfer is retried, with the same command_id: it runs once
        await TelnyxRest(account(fake.url)).transfer("v3:a", FRONT_DESK)
        again, retried = fake.requests[1:]
        assert again.body == retried.body and retried.authorized
    assert API_KEY not in repr(account(fake.url))


def test_the_account_comes_from_the_environment() -> None:
    env = {"TELNYX_API_KEY": API_KEY, "TELNYX_CONNECTION_ID": CONNECTION_ID}
    assert account_from_env(env) == TelnyxAccount(API_KEY, CONNECTION_ID)
    assert account_from_env({"TELNYX_API_KEY": API_KEY}) is None
    assert account_from_env({}) is None


def test_serve_reads_the_telnyx_account(monkeypatch: pytest.MonkeyPatch) -> None:
    parser = argparse.ArgumentParser()
    add_serve_arguments(parser)
    monkeypatch.setenv("TELNYX_API_KEY", API_KEY)
    monkeypatch.setenv("TELNYX_CONNECTION_ID", CONNECTION_ID)
    settings = settings_from_args(parser.parse_args(["--telnyx-api-url", "http://fake/v2"]))
    assert settings.telnyx_account == account("http://fake/v2")
    assert settings.twilio_account is None and settings.vonage_account is None


# --- transfers ---------------------------------------------------------------------------


async def test_a_telnyx_transfer_without_an_account_a_number_or_a_yes_just_ends() -> None:
    config = load_pipeline(ECHO_PIPELINE)
    async with fake_telnyx() as fake:
        for settings, call_id, result in (
            (ServerSettings(), "v3:a", "no_account"),
            (ServerSettings(telnyx_account=account(fake.url)), "v3:a", "no_number"),
            (ServerSettings(telnyx_account=account(fake.url)), "", "no_call_id"),
            (ServerSettings(telnyx_account=account(fake.url, "KEYwrong")), "v3:a", "failed"),
        ):
            settings.transfer_to = {} if result == "no_number" else {"front_desk": FRONT_DESK}
            manager = CallManager(config, settings, Metrics())
            assert await transfer_call(manager, "telnyx", call_id, "front_desk") == result
            line = f'voicebot_provider_transfers_total{{provider="telnyx",result="{result}"}} 1.0'
            assert line in manager.metrics.render()[0].decode()
    assert [r.authorized for r in fake.requests] == [False]  # only the one with an account


async def test_transfer_of_a_live_telnyx_call_sends_the_transfer_command_after_the_goodbye() -> (
    None
):
    async with fake_telnyx() as fake:
        settings = {"telnyx_account": account(fake.url), "transfer_to": {"": FRONT_DESK}}
        async with stream_server(RESTAURANT_PIPELINE, **settings) as (url, events, app):
            telnyx = TelnyxClient(f"{url}/telnyx/media")
            async with telnyx:
                heard_at_transfer: list[int] = []
                fake.on_request = lambda _: heard_at_transfer.append(len(telnyx.heard))
                await until(lambda: of_type(events, "playback_stopped"), 30)  # the greeting
                call = live_call(app)
                await asyncio.sleep(0.5)
                telnyx.say(say("Can I talk to someone please?", 8000))
                end = await ended(events, within=30)
                await asyncio.wait_for(telnyx.closed.wait(), 10)
                await until(lambda: not app.state.manager.calls, 5)
            transferred = metric(
                app, 'voicebot_provider_transfers_total{provider="telnyx",result="dialed"} 1.0'
            )
    (transfer,) = of_type(events, "transfer")
    assert transfer["target"] == "front_desk" and end["reason"] == "transfer"
    (command,) = fake.requests  # exactly one transfer, of this call, to the number for any name
    assert command.authorized
    assert command.path == f"/v2/calls/{telnyx.call_control_id}/actions/transfer"
    assert command.body["to"] == FRONT_DESK
    assert call.transfer_result == "dialed" and transferred
    assert heard_at_transfer == [call.stream.frames_sent] and telnyx.heard  # after the goodbye
    assert (telnyx.close_code, telnyx.close_reason) == (1000, "transfer")


# --- dial-outs ---------------------------------------------------------------------------


def hangup(call_control_id: str, cause: str) -> dict[str, Any]:
    """Telnyx's ``call.hangup`` webhook."""
    return {
        "data": {
            "event_type": "call.hangup",
            "id": "0ccc7b54-4df3-4bca-a65a-3da1ecc777f0",
            "occurred_at": "2024-05-01T12:00:00.000000Z",
            "payload": {
                "call_control_id": call_control_id,
                "call_leg_id": "2dc6fc34-f9e0-11ea-b68e-02420a0f7768",
                "connection_id": CONNECTION_ID,
                "from": "+15550100",
                "to": "+15550111",
                "hangup_cause": cause,
                "hangup_source": "callee",
                "sip_hangup_cause": "200",
            },
            "record_type": "event",
        },
        "meta": {"attempt": 1, "delivered_to": "https://bot.example.com/telnyx/events"},
    }


async def test_a_telnyx_dial_out_streams_the_answered_call_and_counts_how_it_ended() -> None:
    async with fake_telnyx() as fake:
        settings = ServerSettings(token="key", public_host="bot.example.com")
        settings.telnyx_account = account(fake.url)
        app = create_app(load_pipeline(ECHO_PIPELINE), settings, warm=False)
        async with client(app) as http:
            body = {"to": "+15550111", "from": "+15550100"}
            response = await http.post(
                "/telnyx/calls", json=body, headers={"Authorization": "Bearer key"}
            )
            assert response.status_code == 201
            assert response.json() == {
                "provider": "telnyx",
                "call_id": NEW_CALL_CONTROL_ID,
                "status": "dialing",
            }
            (created,) = fake.requests
            assert created.authorized and created.body["connection_id"] == CONNECTION_ID
            assert created.body["stream_url"] == "wss://bot.example.com/telnyx/media"
            assert created.body["webhook_url"] == "https://bot.example.com/telnyx/events"
            assert (created.body["to"], created.body["from"]) == ("+15550111", "+15550100")

            answered = hangup(NEW_CALL_CONTROL_ID, "normal_clearing")
            answered["data"]["event_type"] = "call.answered"
            auth = {"Authorization": "Bearer key"}
            path = f"/telnyx/calls/{NEW_CALL_CONTROL_ID}"
            assert (await http.post("/telnyx/events", json=answered)).status_code == 204
            shown = (await http.get(path, headers=auth)).json()
            assert (shown["status"], shown["result"]) == ("answered", None)  # not an end
            for i, cause in enumerate(("normal_clearing", "user_busy", "timeout", "call_rejected")):
                if i:  # the next call (the fake gives every call the same id)
                    await http.post("/telnyx/calls", json=body, headers=auth)
                for _ in range(2):  # Telnyx retries a webhook: counted once
                    event = hangup(NEW_CALL_CONTROL_ID, cause)
                    assert (await http.post("/telnyx/events", json=event)).status_code == 204
                shown = (await http.get(path, headers=auth)).json()
                assert shown["status"] == "hangup"
                assert shown["result"] == TELNYX_RESULTS.get(cause, "failed")
            elsewhere = hangup("v3:someone-elses-call", "normal_clearing")  # not placed here
            assert (await http.post("/telnyx/events", json=elsewhere)).status_code == 204
            garbage = await http.post("/telnyx/events", content=b"[1, 2")
            assert garbage.status_code == 400 and "malformed JSON" in garbage.json()["error"]
    for result in ("answered", "busy", "no-answer", "failed"):
        assert metric(app, f'voicebot_outbound_calls_total{{result="{result}"}} 1.0'), result


async def test_a_telnyx_dial_out_without_an_account_is_503_and_a_refusal_502() -> None:
    async with fake_telnyx() as fake:
        apps = [
            create_app(load_pipeline(ECHO_PIPELINE), s, warm=False)
            for s in (ServerSettings(telnyx_account=account(fake.url)), ServerSettings())
        ]
        body = {"to": "+15550111", "from": "+15550100"}
        async with client(apps[1]) as http:
            no_account = await http.post("/telnyx/calls", json=body)
        assert no_account.status_code == 503
        assert "TELNYX_API_KEY" in no_account.json()["error"] and fake.requests == []
        async with client(apps[0]) as http:
            refused = await http.post("/telnyx/calls", json={**body, "from": "+1555"})
            no_vonage = await http.post("/vonage/calls", json=body)  # no Vonage account here
        assert refused.status_code == 502 and refused.json()["status"] == 422
        assert "+E.164" in refused.json()["error"]
        assert no_vonage.status_code == 503 and "VONAGE_APPLICATION_ID" in no_vonage.json()["error"]
        assert len(fake.requests) == 1


async def test_a_refused_telnyx_transfer_is_followed_by_the_apology_then_the_hang_up() -> None:
    """Telnyx refuses the transfer: the caller is still on the stream and hears the flow's
    apology (the ``transfer`` event's) before the socket closes."""
    async with fake_telnyx() as fake:
        fake.fail_next = 422
        settings = {"telnyx_account": account(fake.url), "transfer_to": {"": FRONT_DESK}}
        async with stream_server(RESTAURANT_PIPELINE, **settings) as (url, events, app):
            telnyx = TelnyxClient(f"{url}/telnyx/media")
            async with telnyx:
                heard_at_transfer: list[float] = []
                fake.on_request = lambda _: heard_at_transfer.append(telnyx.heard_seconds)
                await until(lambda: of_type(events, "playback_stopped"), 30)  # the greeting
                call = live_call(app)
                await asyncio.sleep(0.5)
                telnyx.say(say("Can I talk to someone please?", 8000))
                await ended(events, within=30)
                await asyncio.wait_for(telnyx.closed.wait(), 20)
    (transfer,) = of_type(events, "transfer")
    assert transfer["apology"].startswith("Sorry, I could not connect you")
    assert call.transfer_result == "failed" and len(fake.requests) == 1
    (before,) = heard_at_transfer
    assert telnyx.heard_seconds - before >= 2.0  # the apology, played to its end
    assert (telnyx.close_code, telnyx.close_reason) == (1000, "transfer")
