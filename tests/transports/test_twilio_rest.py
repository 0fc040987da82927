"""Transfers and dial-outs through Twilio's REST API, against a local fake of it.

The fake (``tests/support/fake_twilio.py``) checks basic auth, paths and form
fields and answers in Twilio's JSON; the live call is the restaurant bot over a
protocol-faithful Twilio media stream.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import httpx
import pytest

from tests.support.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, NEW_CALL_SID, fake_twilio
from tests.support.paths import ECHO_PIPELINE, RESTAURANT_PIPELINE
from tests.support.speech import say
from tests.support.stream_clients import TwilioClient
from tests.support.stream_server import ended, live_call, of_type, stream_server, until
from voicebot.config import load_pipeline
from voicebot.errors import VoicebotError
from voicebot.providers.errors import ProviderError
from voicebot.server.app import create_app
from voicebot.server.calls import CallManager, ServerSettings
from voicebot.server.metrics import Metrics
from voicebot.server.provider_calls import TWILIO_RESULTS
from voicebot.server.provider_transfer import transfer_call, transfer_number
from voicebot.server.serve import add_serve_arguments, settings_from_args
from voicebot.transports.media_stream.twilio import signature
from voicebot.transports.media_stream.twilio_rest import (
    TwilioAccount,
    TwilioError,
    TwilioRest,
    account_from_env,
    dial_twiml,
)

FRONT_DESK = "+15550123"
CALLS = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls"


def account(url: str, token: str = AUTH_TOKEN) -> TwilioAccount:
    return TwilioAccount(ACCOUNT_SID, token, base_url=url)


def metric(app: Any, line: str) -> bool:
    return line in app.state.metrics.render()[0].decode()


# --- the client --------------------------------------------------------------------------


async def test_the_client_posts_twilios_forms_with_basic_auth() -> None:
    async with fake_twilio() as fake:
        rest = TwilioRest(account(fake.url))
        updated = await rest.update_call("CA1", dial_twiml(FRONT_DESK))
        created = await rest.create_call(
            "+15550111", "+15550100", url="https://bot/x", status_callback="https://bot/s"
        )
    assert updated["status"] == "in-progress" and created["sid"] == NEW_CALL_SID
    first, second = fake.requests
    assert first.authorized and first.path == f"{CALLS}/CA1.json"
    assert first.form == {
        "Twiml": '<?xml version="1.0" encoding="UTF-8"?><Response><Dial>+15550123</Dial></Response>'
    }
    assert second.path == f"{CALLS}.json"
    assert second.form == {
        "To": "+15550111",
        "From": "+15550100",
        "Url": "https://bot/x",
        "StatusCallback": "https://bot/s",
        "StatusCallbackMethod": "POST",
    }


async def test_twilio_refusing_is_a_twilio_error_and_a_dial_out_is_never_sent_twice() -> None:
    async with fake_twilio() as fake:
        with pytest.raises(TwilioError) as refused:
            await TwilioRest(account(fake.url, "wrong")).update_call("CA1", "<Response/>")
        assert refused.value.status == 401 and refused.value.kind == "http"
        assert "Authenticate" in str(refused.value) and "wrong" not in str(refused.value)
        assert isinstance(refused.value, ProviderError) and isinstance(refused.value, VoicebotError)

        fake.requests.clear()
        fake.fail_next = 500
        with pytest.raises(TwilioError) as failed:
            await TwilioRest(account(fake.url)).create_call("+15550111", "+1555", twiml="<R/>")
        assert failed.value.status == 500 and len(fake.requests) == 1  # Twilio may have dialed

        fake.fail_next = 503  # a redirect is the same request again: retried
        await TwilioRest(account(fake.url)).update_call("CA1", "<Response/>")
        assert len(fake.requests) == 3
    with pytest.raises(ValueError):
        await TwilioRest(account(fake.url)).create_call("+1", "+2")
    assert AUTH_TOKEN not in repr(account(fake.url))


def test_the_account_comes_from_the_environment() -> None:
    env = {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN}
    assert account_from_env(env) == TwilioAccount(ACCOUNT_SID, AUTH_TOKEN)
    assert account_from_env({"TWILIO_AUTH_TOKEN": AUTH_TOKEN}) is None
    keyed = account_from_env(
        {
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_API_KEY_SID": "SK1",
            "TWILIO_API_KEY_SECRET": "s",
        }
    )
    assert keyed is not None and keyed.basic_auth() == "Basic U0sxOnM="  # SK1:s
    assert dial_twiml("sip:desk@pbx.example.com").endswith(
        "<Dial><Sip>sip:desk@pbx.example.com</Sip></Dial></Response>"
    )


def test_serve_reads_the_transfer_numbers_and_the_account(monkeypatch: pytest.MonkeyPatch) -> None:
    parser = argparse.ArgumentParser()
    add_serve_arguments(parser)
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", ACCOUNT_SID)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", AUTH_TOKEN)
    args = ["--transfer-to", "front_desk=+15550123", "--transfer-to", "+15550199"]
    settings = settings_from_args(parser.parse_args([*args, "--twilio-api-url", "http://fake"]))
    assert settings.transfer_to == {"front_desk": "+15550123", "": "+15550199"}
    assert settings.twilio_account == TwilioAccount(ACCOUNT_SID, AUTH_TOKEN, base_url="http://fake")
    assert transfer_number("front_desk", settings.transfer_to) == "+15550123"
    assert transfer_number("kitchen", settings.transfer_to) == "+15550199"
    assert transfer_number("+4930123456", {}) == "+4930123456"
    assert transfer_number("front_desk", {}) is None
    monkeypatch.delenv("TWILIO_ACCOUNT_SID")
    assert settings_from_args(parser.parse_args([])).twilio_account is None


# --- transfers ---------------------------------------------------------------------------


async def test_a_transfer_without_a_number_or_with_a_refused_redirect_still_just_ends() -> None:
    config = load_pipeline(ECHO_PIPELINE)
    async with fake_twilio() as fake:
        for settings, result in (
            (ServerSettings(), "no_account"),
            (ServerSettings(twilio_account=account(fake.url)), "no_number"),
            (ServerSettings(twilio_account=account(fake.url, "wrong")), "failed"),
        ):
            settings.transfer_to = {} if result == "no_number" else {"front_desk": FRONT_DESK}
            manager = CallManager(config, settings, Metrics())
            assert await transfer_call(manager, "twilio", "CA1", "front_desk") == result
            line = f'voicebot_provider_transfers_total{{provider="twilio",result="{result}"}} 1.0'
            assert line in manager.metrics.render()[0].decode()
    assert [r.authorized for r in fake.requests] == [False]  # only the one with an account


async def test_transfer_of_a_live_twilio_call_redirects_it_to_dial_after_the_goodbye() -> None:
    async with fake_twilio() as fake:
        settings = {"twilio_account": account(fake.url), "transfer_to": {"front_desk": FRONT_DESK}}
        async with stream_server(RESTAURANT_PIPELINE, **settings) as (url, events, app):
            twilio = TwilioClient(f"{url}/twilio/media")
            async with twilio:
                heard_at_redirect: list[int] = []
                fake.on_request = lambda _: heard_at_redirect.append(len(twilio.heard))
                await until(lambda: of_type(events, "playback_stopped"), 30)  # the greeting
                call = live_call(app)
                await asyncio.sleep(0.5)
                twilio.say(say("Can I talk to someone please?", 8000))
                end = await ended(events, within=30)
                await asyncio.wait_for(twilio.closed.wait(), 10)
                await until(lambda: not app.state.manager.calls, 5)
            transferred = metric(
                app, 'voicebot_provider_transfers_total{provider="twilio",result="dialed"} 1.0'
            )
    (transfer,) = of_type(events, "transfer")
    assert transfer["target"] == "front_desk" and end["reason"] == "transfer"
    (redirect,) = fake.requests  # exactly one update, for this call
    assert redirect.authorized and redirect.path == f"{CALLS}/{twilio.call_sid}.json"
    assert redirect.form == {"Twiml": dial_twiml(FRONT_DESK)}
    assert call.transfer_result == "dialed" and transferred
    # Redirected only once the goodbye had played: a <Dial> cuts the stream off.
    assert heard_at_redirect == [call.stream.frames_sent] and twilio.heard
    assert twilio.marks_answered == twilio.marks_received
    assert (twilio.close_code, twilio.close_reason) == (1000, "transfer")


# --- dial-outs ---------------------------------------------------------------------------


async def test_a_dial_out_connects_the_answered_call_to_the_stream_and_records_its_status() -> None:
    async with fake_twilio() as fake:
        settings = ServerSettings(
            token="key", public_host="bot.example.com", twilio_auth_token=AUTH_TOKEN
        )
        settings.twilio_account = account(fake.url)
        app = create_app(load_pipeline(ECHO_PIPELINE), settings, warm=False)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8080"
        ) as client:
            body = {"to": "+15550111", "from": "+15550100"}
            auth = {"Authorization": "Bearer key"}
            response = await client.post("/twilio/calls", json=body, headers=auth)
            assert response.status_code == 201
            assert response.json() == {
                "provider": "twilio",
                "call_id": NEW_CALL_SID,
                "status": "queued",
            }
            (created,) = fake.requests
            assert created.authorized and created.path == f"{CALLS}.json"
            assert created.form == {
                "To": "+15550111",
                "From": "+15550100",
                "Twiml": '<?xml version="1.0" encoding="UTF-8"?><Response><Connect>'
                '<Stream url="wss://bot.example.com/twilio/media">'
                '<Parameter name="From" value="+15550100"/>'
                '<Parameter name="To" value="+15550111"/></Stream></Connect></Response>',
                "StatusCallback": "https://bot.example.com/twilio/status",
                "StatusCallbackMethod": "POST",
            }

            callback = "https://bot.example.com/twilio/status"
            shown = await client.get(f"/twilio/calls/{NEW_CALL_SID}", headers=auth)
            assert shown.json() == {
                "provider": "twilio",
                "call_id": NEW_CALL_SID,
                "to": "+15550111",
                "from": "+15550100",
                "status": "queued",
                "result": None,
            }
            for i, call_status in enumerate(
                ("completed", "busy", "no-answer", "failed", "canceled")
            ):
                if i:  # the next call (the fake gives every call the same sid)
                    await client.post("/twilio/calls", json=body, headers=auth)
                form = {"CallSid": NEW_CALL_SID, "CallStatus": call_status}
                signed = {"X-Twilio-Signature": signature(AUTH_TOKEN, callback, form)}
                for _ in range(2):  # a callback Twilio sends again counts once
                    status = await client.post("/twilio/status", data=form, headers=signed)
                    assert status.status_code == 204
                shown = await client.get(f"/twilio/calls/{NEW_CALL_SID}", headers=auth)
                assert shown.json()["status"] == call_status
                assert shown.json()["result"] == TWILIO_RESULTS[call_status]
            assert (await client.get(f"/twilio/calls/{NEW_CALL_SID}")).status_code == 401
            unknown = await client.get("/twilio/calls/CA0", headers=auth)
            assert unknown.status_code == 404 and "error" in unknown.json()
            forged = await client.post(
                "/twilio/status",
                data={"CallSid": NEW_CALL_SID, "CallStatus": "completed"},
                headers={"X-Twilio-Signature": "AAAA"},
            )
            assert forged.status_code == 403 and "Signature" in forged.json()["error"]
    for result, n in (("answered", 1), ("busy", 1), ("no-answer", 2), ("failed", 1)):
        assert metric(app, f'voicebot_outbound_calls_total{{result="{result}"}} {n:.1f}'), result


async def test_a_dial_out_is_refused_without_the_key_an_account_or_a_number() -> None:
    async with fake_twilio() as fake:
        with_account = ServerSettings(token="key", max_calls=1, twilio_account=account(fake.url))
        without = ServerSettings(token="key")
        apps = [
            create_app(load_pipeline(ECHO_PIPELINE), s, warm=False) for s in (with_account, without)
        ]
        body = {"to": "+15550111", "from": "+15550100"}
        auth = {"Authorization": "Bearer key"}

        async def post(app: Any, **kw: Any) -> httpx.Response:
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://bot"
            ) as client:
                return await client.post("/twilio/calls", **kw)

        bad_key = await post(apps[0], json=body, headers={"Authorization": "Bearer nope"})
        assert bad_key.status_code == 401
        assert bad_key.json() == {"error": "missing or wrong bearer token"}
        assert bad_key.headers["www-authenticate"].startswith("Bearer")
        no_account = await post(apps[1], json=body, headers=auth)
        assert no_account.status_code == 503 and "TWILIO_ACCOUNT_SID" in no_account.json()["error"]
        not_json = await post(apps[0], content=b"to=+1", headers=auth)
        assert not_json.status_code == 415
        no_number = await post(apps[0], json={"to": "front desk", "from": "+1555"}, headers=auth)
        assert no_number.status_code == 400 and '"to"' in no_number.json()["error"]
        assert fake.requests == []

        refused = await post(apps[0], json={**body, "to": "sip:desk@pbx"}, headers=auth)
        assert refused.status_code == 502  # Twilio's 400: its message passed on
        assert "not a valid phone number" in refused.json()["error"]
        assert refused.json()["status"] == 400

        apps[0].state.manager.calls["x"] = object()  # at the call limit
        busy = await post(apps[0], json=body, headers=auth)
        assert busy.status_code == 503 and busy.headers["retry-after"] == "5"
        assert len(fake.requests) == 1
