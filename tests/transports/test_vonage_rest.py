"""Transfers and dial-outs through Vonage's Voice API, against a local fake of it.

The fake (``tests/support/fake_vonage.py``) verifies each request's JWT with
the public half of a key pair made for the test, checks paths and JSON fields
and answers in Vonage's JSON; the live call is the restaurant bot over a
protocol-faithful Vonage WebSocket, connected by the NCCO our answer webhook
gave.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.fake_vonage import (
    APPLICATION_ID,
    LIVE_CALL_UUID,
    NEW_CALL_UUID,
    fake_vonage,
    key_pair,
)
from tests.support.paths import ECHO_PIPELINE, RESTAURANT_PIPELINE
from tests.support.speech import say
from tests.support.stream_clients import VonageClient
from tests.support.stream_server import ended, live_call, of_type, stream_server, until
from voicebot.config import load_pipeline
from voicebot.providers.errors import ProviderError
from voicebot.server.app import create_app
from voicebot.server.calls import CallManager, ServerSettings
from voicebot.server.metrics import Metrics
from voicebot.server.provider_calls import VONAGE_RESULTS
from voicebot.server.provider_transfer import transfer_call
from voicebot.server.serve import add_serve_arguments, settings_from_args
from voicebot.transports.media_stream.vonage_rest import (
    VonageAccount,
    VonageError,
    VonageRest,
    account_from_env,
    endpoint,
)

FRONT_DESK = "+15550123"


def account(url: str, application_id: str = APPLICATION_ID) -> VonageAccount:
    return VonageAccount(application_id, key_pair()[0], base_url=url)


def metric(app: Any, line: str) -> bool:
    return line in app.state.metrics.render()[0].decode()


def client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bot")


# --- the client --------------------------------------------------------------------------


async def test_the_client_signs_each_request_with_its_own_jwt() -> None:
    async with fake_vonage() as fake:
        rest = VonageRest(account(fake.url))
        await rest.transfer(LIVE_CALL_UUID, FRONT_DESK)
        await rest.transfer(LIVE_CALL_UUID, "sip:desk@pbx.example.com")
        created = await rest.create_call(
            "+15550111", "+15550100", answer_url="https://bot/a", event_url="https://bot/e"
        )
    assert created["uuid"] == NEW_CALL_UUID and created["status"] == "started"
    phone, sip, create = fake.requests
    assert all(r.authorized for r in fake.requests)
    assert len({r.claims["jti"] for r in fake.requests if r.claims}) == 3
    assert phone.claims and phone.claims["exp"] > phone.claims["iat"]
    assert (phone.method, phone.path) == ("PUT", f"/v1/calls/{LIVE_CALL_UUID}")
    assert phone.body == {
        "action": "transfer",
        "destination": {
            "type": "ncco",
            "ncco": [{"action": "connect", "endpoint": [{"type": "phone", "number": "15550123"}]}],
        },
    }
    assert sip.body["destination"]["ncco"][0]["endpoint"] == [
        {"type": "sip", "uri": "sip:desk@pbx.example.com"}
    ]
    assert (create.method, create.path) == ("POST", "/v1/calls")
    assert create.body == {
        "to": [{"type": "phone", "number": "15550111"}],
        "from": {"type": "phone", "number": "15550100"},
        "answer_url": ["https://bot/a"],
        "answer_method": "GET",
        "event_url": ["https://bot/e"],
        "event_method": "POST",
    }


async def test_vonage_refusing_is_a_vonage_error_and_a_dial_is_never_sent_twice() -> None:
    async with fake_vonage() as fake:
        with pytest.raises(VonageError) as refused:
            await VonageRest(account(fake.url, "another-app")).transfer(LIVE_CALL_UUID, FRONT_DESK)
        assert refused.value.status == 401 and isinstance(refused.value, ProviderError)
        assert "Unauthorized" in str(refused.value)
        with pytest.raises(VonageError) as gone:
            await VonageRest(account(fake.url)).transfer("no-such-call", FRONT_DESK)
        assert gone.value.status == 404

        fake.requests.clear()
        fake.fail_next = 500
        with pytest.raises(VonageError) as failed:
            await VonageRest(account(fake.url)).create_call(
                "+15550111", "+15550100", answer_url="https://b/a", event_url="https://b/e"
            )
        assert failed.value.status == 500 and len(fake.requests) == 1  # Vonage may have dialed
        fake.fail_next = 503  # a transfer is the same request again: retried
        await VonageRest(account(fake.url)).transfer(LIVE_CALL_UUID, FRONT_DESK)
        assert len(fake.requests) == 3
    assert "PRIVATE KEY" not in repr(account(fake.url))


def test_the_account_comes_from_the_environment(tmp_path: Path) -> None:
    private = key_pair()[0]
    escaped = private.replace("\n", "\\n")  # a PEM in a one-line variable
    from_text = account_from_env(
        {"VONAGE_APPLICATION_ID": APPLICATION_ID, "VONAGE_PRIVATE_KEY": escaped}
    )
    assert from_text == VonageAccount(APPLICATION_ID, private.strip())
    key_file = tmp_path / "private.key"
    key_file.write_text(private)
    from_file = account_from_env(
        {"VONAGE_APPLICATION_ID": APPLICATION_ID, "VONAGE_PRIVATE_KEY_PATH": str(key_file)}
    )
    assert from_file is not None and from_file.private_key == private.strip()
    assert account_from_env({"VONAGE_APPLICATION_ID": APPLICATION_ID}) is None
    assert account_from_env({"VONAGE_PRIVATE_KEY": private}) is None
    with pytest.raises(ValueError, match="VONAGE_PRIVATE_KEY_PATH"):
        account_from_env(
            {"VONAGE_APPLICATION_ID": "a", "VONAGE_PRIVATE_KEY_PATH": str(tmp_path / "none")}
        )
    with pytest.raises(ValueError, match="not an unencrypted PEM private key"):
        account_from_env({"VONAGE_APPLICATION_ID": "a", "VONAGE_PRIVATE_KEY": "not a key"})
    assert endpoint("+4930123456") == {"type": "phone", "number": "4930123456"}
    assert endpoint("sips:desk@pbx") == {"type": "sip", "uri": "sips:desk@pbx"}


def test_serve_reads_the_vonage_account(monkeypatch: pytest.MonkeyPatch) -> None:
    parser = argparse.ArgumentParser()
    add_serve_arguments(parser)
    monkeypatch.setenv("VONAGE_APPLICATION_ID", APPLICATION_ID)
    monkeypatch.setenv("VONAGE_PRIVATE_KEY", key_pair()[0])
    settings = settings_from_args(parser.parse_args(["--vonage-api-url", "http://fake/v1"]))
    assert settings.vonage_account == VonageAccount(
        APPLICATION_ID, key_pair()[0].strip(), "http://fake/v1"
    )


# --- the answer webhook and transfers ----------------------------------------------------


async def test_the_answer_ncco_connects_the_stream_with_the_calls_uuid() -> None:
    settings = ServerSettings(public_host="bot.example.com", max_calls=1)
    app = create_app(load_pipeline(ECHO_PIPELINE), settings, warm=False)
    query = {"uuid": LIVE_CALL_UUID, "conversation_uuid": "CON-1", "from": "447700900000"}
    async with client(app) as http:
        answer = await http.get("/vonage/answer", params={**query, "to": "447700900001"})
        app.state.manager.calls["x"] = object()  # at the call limit
        busy = await http.get("/vonage/answer", params=query)
    assert answer.status_code == 200
    assert answer.json() == [
        {
            "action": "connect",
            "endpoint": [
                {
                    "type": "websocket",
                    "uri": "wss://bot.example.com/vonage/media",
                    "content-type": "audio/l16;rate=16000",
                    "headers": {
                        "uuid": LIVE_CALL_UUID,
                        "from": "447700900000",
                        "to": "447700900001",
                    },
                }
            ],
        }
    ]
    assert busy.json() == []  # nothing to do: Vonage hangs up
    assert metric(app, 'voicebot_offers_rejected_total{reason="busy",transport="vonage"} 1.0')


async def test_a_vonage_transfer_without_an_account_a_number_or_the_uuid_just_ends() -> None:
    config = load_pipeline(ECHO_PIPELINE)
    async with fake_vonage() as fake:
        for settings, call_id, result in (
            (ServerSettings(), LIVE_CALL_UUID, "no_account"),
            (ServerSettings(vonage_account=account(fake.url)), LIVE_CALL_UUID, "no_number"),
            (ServerSettings(vonage_account=account(fake.url)), "", "no_call_id"),
            (ServerSettings(vonage_account=account(fake.url, "x")), LIVE_CALL_UUID, "failed"),
        ):
            settings.transfer_to = {} if result == "no_number" else {"front_desk": FRONT_DESK}
            manager = CallManager(config, settings, Metrics())
            assert await transfer_call(manager, "vonage", call_id, "front_desk") == result
            line = f'voicebot_provider_transfers_total{{provider="vonage",result="{result}"}} 1.0'
            assert line in manager.metrics.render()[0].decode()
    assert [r.authorized for r in fake.requests] == [False]  # only the one with an account


async def test_transfer_of_a_live_vonage_call_puts_the_connect_ncco_after_the_goodbye() -> None:
    async with fake_vonage() as fake:
        settings = {"vonage_account": account(fake.url), "transfer_to": {"front_desk": FRONT_DESK}}
        async with stream_server(RESTAURANT_PIPELINE, **settings) as (url, events, app):
            http_url = url.replace("ws://", "http://")
            async with httpx.AsyncClient(base_url=http_url) as http:  # Vonage asks for the NCCO
                ncco = (await http.get("/vonage/answer", params={"uuid": LIVE_CALL_UUID})).json()
            (websocket,) = ncco[0]["endpoint"]
            vonage = VonageClient(f"{url}/vonage/media")
            vonage.custom_headers = websocket["headers"]  # websocket:connected carries them
            async with vonage:
                heard_at_transfer: list[int] = []
                fake.on_request = lambda _: heard_at_transfer.append(len(vonage.heard))
                await until(lambda: of_type(events, "playback_stopped"), 30)  # the greeting
                call = live_call(app)
                await asyncio.sleep(0.5)
                vonage.say(say("Can I talk to someone please?", 16000))
                end = await ended(events, within=30)
                await asyncio.wait_for(vonage.closed.wait(), 10)
                await until(lambda: not app.state.manager.calls, 5)
            transferred = metric(
                app, 'voicebot_provider_transfers_total{provider="vonage",result="dialed"} 1.0'
            )
    (transfer,) = of_type(events, "transfer")
    assert transfer["target"] == "front_desk" and end["reason"] == "transfer"
    (put,) = fake.requests  # exactly one transfer, of the call the NCCO named
    assert put.authorized and (put.method, put.path) == ("PUT", f"/v1/calls/{LIVE_CALL_UUID}")
    assert put.body["destination"]["ncco"][0]["endpoint"] == [
        {"type": "phone", "number": "15550123"}
    ]
    assert call.stream_start.call_id == LIVE_CALL_UUID and call.transfer_result == "dialed"
    assert transferred and vonage.heard
    assert heard_at_transfer == [call.stream.frames_sent]  # after the goodbye had played
    assert (vonage.close_code, vonage.close_reason) == (1000, "transfer")


# --- dial-outs ---------------------------------------------------------------------------


def status_event(call_uuid: str, status: str) -> dict[str, Any]:
    """Vonage's call status webhook."""
    return {
        "from": "15550100",
        "to": "15550111",
        "uuid": call_uuid,
        "conversation_uuid": "CON-f972836a-550f-45fa-956c-12a2ab5b7d22",
        "status": status,
        "direction": "outbound",
        "timestamp": "2024-05-01T12:00:00.000Z",
    }


async def test_a_vonage_dial_out_fetches_the_ncco_and_counts_how_it_ended() -> None:
    async with fake_vonage() as fake:
        settings = ServerSettings(token="key", public_host="bot.example.com")
        settings.vonage_account = account(fake.url)
        app = create_app(load_pipeline(ECHO_PIPELINE), settings, warm=False)
        async with client(app) as http:
            body = {"to": "+15550111", "from": "+15550100"}
            response = await http.post(
                "/vonage/calls", json=body, headers={"Authorization": "Bearer key"}
            )
            assert response.status_code == 201
            assert response.json() == {
                "provider": "vonage",
                "call_id": NEW_CALL_UUID,
                "status": "started",
            }
            (created,) = fake.requests
            assert created.authorized
            assert created.body["answer_url"] == ["https://bot.example.com/vonage/answer"]
            assert created.body["event_url"] == ["https://bot.example.com/vonage/events"]

            auth = {"Authorization": "Bearer key"}
            path = f"/vonage/calls/{NEW_CALL_UUID}"
            for status in ("started", "ringing", "answered", "completed", "completed"):
                event = status_event(NEW_CALL_UUID, status)
                assert (await http.post("/vonage/events", json=event)).status_code == 204
                shown = (await http.get(path, headers=auth)).json()
                assert shown["status"] == status
                assert shown["result"] == ("answered" if status == "completed" else None)
            for status in ("busy", "unanswered"):  # the next calls (the fake's one uuid)
                await http.post("/vonage/calls", json=body, headers=auth)
                event = status_event(NEW_CALL_UUID, status)
                assert (await http.post("/vonage/events", json=event)).status_code == 204
                assert (await http.get(path, headers=auth)).json()["result"] == VONAGE_RESULTS[
                    status
                ]
            leg = {**status_event("e1b4a5d2-websocket-leg", "completed"), "to": "wss://bot/x"}
            assert (await http.post("/vonage/events", json=leg)).status_code == 204
    for result, n in (("answered", 1), ("busy", 1), ("no-answer", 1)):
        assert metric(app, f'voicebot_outbound_calls_total{{result="{result}"}} {n:.1f}'), result
    assert 'result="failed"' not in app.state.metrics.render()[0].decode()


async def test_a_vonage_dial_out_without_an_account_is_503_and_a_refusal_502() -> None:
    async with fake_vonage() as fake:
        apps = [
            create_app(load_pipeline(ECHO_PIPELINE), s, warm=False)
            for s in (ServerSettings(vonage_account=account(fake.url, "x")), ServerSettings())
        ]
        body = {"to": "+15550111", "from": "+15550100"}
        async with client(apps[1]) as http:
            no_account = await http.post("/vonage/calls", json=body)
        assert no_account.status_code == 503
        assert "VONAGE_PRIVATE_KEY" in no_account.json()["error"] and fake.requests == []
        async with client(apps[0]) as http:
            refused = await http.post("/vonage/calls", json=body)
        assert refused.status_code == 502 and refused.json()["status"] == 401
        assert "Unauthorized" in refused.json()["error"] and len(fake.requests) == 1
