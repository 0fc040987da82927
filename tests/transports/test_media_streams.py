"""Calls over provider media streams: Twilio Media Streams and the raw ``WS /ws/audio``.

The server runs in this process on a real uvicorn socket (``stream_server.py``:
the test sees the calls' events and the call registry); the provider is a
protocol-faithful client (``stream_clients.py``) speaking synthesized sentences
at real time.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import re

import httpx
import numpy as np
import pytest

from tests.support.paths import ECHO_PIPELINE, RESTAURANT_PIPELINE
from tests.support.speech import say
from tests.support.stream_clients import (
    RawClient,
    StreamClient,
    TelnyxClient,
    TwilioClient,
    VonageClient,
)
from tests.support.stream_server import ended, live_call, of_type, stream_server, until
from voicebot.asr.whisper import WhisperEngine
from voicebot.audio.resample import StreamResampler
from voicebot.config import load_pipeline
from voicebot.server.app import create_app
from voicebot.server.calls import ServerSettings
from voicebot.server.serve import add_serve_arguments, settings_from_args
from voicebot.transports.media_stream.twilio import TwilioProtocol, signature

ECHO = ECHO_PIPELINE
RESTAURANT = RESTAURANT_PIPELINE
SENTENCE = "Hello, can you hear me? I would like to book a table."


def assert_real_time(arrivals: list[float]) -> None:
    """The bot's media came at 20 ms a message: never more than 1 s worth in any second
    (plus a few frames of scheduling slack), and a long stretch at real time."""
    assert len(arrivals) > 20, len(arrivals)
    t = np.array(arrivals)
    ends = np.searchsorted(t, t + 1.0)
    assert (ends - np.arange(len(t))).max() <= 53  # 50 frames a second, +3
    gaps = np.diff(t)
    stretch = t[: int(np.argmax(gaps > 0.2)) or len(t)]  # the first reply, up to a pause
    if len(stretch) > 50:
        pace = (stretch[-1] - stretch[0]) / (len(stretch) - 1)
        assert 0.0195 < pace < 0.025, pace  # slack: client and server share one loop


async def transcribe(pcm: np.ndarray, rate: int) -> str:
    resampler = StreamResampler(rate, 1, 16000, 1)
    lead = np.zeros(8000, np.int16)  # whisper misses a first word that starts at once
    audio = np.concatenate([lead, resampler.process(pcm), resampler.flush()])
    result = await WhisperEngine("tiny.en").transcribe(audio.astype(np.float32) / 32768, "en")
    return " ".join(re.sub(r"[^a-z ]+", " ", result.text.lower()).split())


# --- Twilio ------------------------------------------------------------------------------


async def test_twilio_stream_echoes_the_caller_and_marks_track_what_was_heard() -> None:
    async with stream_server(ECHO) as (url, events, app):
        async with TwilioClient(f"{url}/twilio/media", {"from": "+15550100"}) as twilio:
            await until(lambda: app.state.manager.calls, 10)
            call = live_call(app)
            await asyncio.sleep(1.0)
            twilio.say(say(SENTENCE, 8000))
            await twilio.said()
            await until(lambda: of_type(events, "playback_stopped"), 20)
            await asyncio.sleep(0.5)  # the last frames play out, the last mark is answered
            await twilio.dtmf("5")  # a key on the phone: dialog input, as on a SIP call
            await until(lambda: of_type(events, "dtmf"), 5)
            await twilio.stop()
            end = await ended(events)
            await until(lambda: not app.state.manager.calls, 5)
        metrics = app.state.metrics.render()[0].decode()
    (started,) = of_type(events, "call_started")
    assert started["transport"] == "twilio"
    assert [(e["digit"], e["via"]) for e in of_type(events, "dtmf")] == [("5", "stream")]
    assert call.stream_start.call_id == twilio.call_sid
    assert call.stream_start.parameters == {"from": "+15550100"}
    finals = [e["text"] for e in of_type(events, "transcript") if e["final"]]
    assert len(finals) == 1 and "book a table" in finals[0].lower(), finals
    assert end["reason"] == "hangup"  # Twilio's stop
    assert 'voicebot_calls_total{reason="hangup",transport="twilio"} 1.0' in metrics
    assert 'voicebot_turns_total{transport="twilio"} 1.0' in metrics
    assert twilio.stream_sids == {twilio.stream_sid}  # every reply addressed to the stream

    assert_real_time(twilio.arrivals)
    heard = np.concatenate(twilio.heard)
    text = await transcribe(heard, 8000)
    assert "book a table" in text, text  # tiny.en at 8 kHz often mangles "you said"
    # Marks: every one was answered after its audio played, and the server counts
    # exactly the frames before the last answered mark as heard: all of them.
    assert twilio.marks_received and twilio.marks_answered == twilio.marks_received
    assert call.stream.frames_sent == len(twilio.heard)
    assert call.stream.heard_frames == call.stream.frames_sent
    assert not twilio.clears


PROVIDERS = {
    "twilio": ("/twilio/media", lambda url: TwilioClient(url)),
    "telnyx": ("/telnyx/media", lambda url: TelnyxClient(url)),
    "vonage": ("/vonage/media", lambda url: VonageClient(url)),
    "raw": ("/ws/audio", lambda url: RawClient(url)),
}


@pytest.mark.parametrize("transport", list(PROVIDERS))
async def test_barge_in_sends_clear_and_a_dropped_socket_frees_the_call(transport: str) -> None:
    path, client_for = PROVIDERS[transport]
    async with stream_server(ECHO) as (url, events, app):
        client: StreamClient
        async with client_for(f"{url}{path}") as client:
            await until(lambda: app.state.manager.calls, 10)
            call = live_call(app)
            await asyncio.sleep(1.0)
            client.say(say(SENTENCE, client.sample_rate))
            await until(lambda: client.heard_seconds > 0.8, 20, events)  # the echo is playing
            client.say(say("Sorry, one more thing.", client.sample_rate))
            await until(lambda: client.clears or client.broken(), 10, events)
            assert not client.broken(), client.broken()
            await until(lambda: of_type(events, "interrupted"), 5, events)
            client.drop()  # and then the line dies: no stop, no close handshake
            end = await ended(events)
            await until(lambda: not app.state.manager.calls, 5)
        metrics = app.state.metrics.render()[0].decode()
    (started,) = of_type(events, "call_started")
    assert started["transport"] == transport
    (interrupted,) = of_type(events, "interrupted")
    assert len(client.clears) == 1 and call.stream.clears == 1
    assert end["reason"] == "peer_gone"
    assert f'voicebot_calls_total{{reason="peer_gone",transport="{transport}"}} 1.0' in metrics
    assert "voicebot_calls_active 0.0" in metrics
    # The reply was cut short of a full echo, and the server's count of heard frames
    # never includes audio the clear dropped (the marks it answered do not count).
    assert interrupted["heard_ms"] < 3000
    assert call.stream.heard_frames <= len(client.heard) <= call.stream.frames_sent
    assert_real_time(client.arrivals)


async def test_telnyx_stream_echoes_over_a_law() -> None:
    async with stream_server(ECHO) as (url, events, app):
        async with TelnyxClient(f"{url}/telnyx/media", "PCMA") as telnyx:
            await until(lambda: app.state.manager.calls, 10)
            call = live_call(app)
            await asyncio.sleep(1.0)
            telnyx.say(say(SENTENCE, 8000))
            await until(lambda: of_type(events, "playback_stopped"), 20)
            await asyncio.sleep(0.5)
            await telnyx.stop()
            end = await ended(events)
            await until(lambda: not app.state.manager.calls, 5)
    assert end["reason"] == "hangup"
    assert (
        call.stream_start.encoding == "alaw" and call.stream_start.call_id == telnyx.call_control_id
    )
    assert telnyx.marks_answered == telnyx.marks_received != []
    assert call.stream.heard_frames == call.stream.frames_sent == len(telnyx.heard)
    text = await transcribe(np.concatenate(telnyx.heard), 8000)
    assert "book a table" in text, text


async def test_restaurant_bot_greets_and_the_call_limit_closes_the_socket() -> None:
    async with stream_server(RESTAURANT, max_calls=1) as (url, events, app):
        async with TwilioClient(f"{url}/twilio/media") as twilio:
            await until(lambda: twilio.heard_seconds > 3.5, 30)
            async with TwilioClient(f"{url}/twilio/media") as second:
                await asyncio.wait_for(second.closed.wait(), 10)
            assert second.close_code == 1013 and "limit" in second.close_reason
            await twilio.stop()
            await ended(events)
            await until(lambda: not app.state.manager.calls, 5)
        metrics = app.state.metrics.render()[0].decode()
    text = await transcribe(np.concatenate(twilio.heard), 8000)
    assert "for calling" in text and "how can i" in text, text  # tiny.en, 8 kHz μ-law
    assert 'voicebot_offers_rejected_total{reason="busy",transport="twilio"} 1.0' in metrics


async def test_transfer_without_provider_credentials_is_an_event_and_a_clean_hang_up() -> None:
    async with stream_server(RESTAURANT) as (url, events, app):
        async with TwilioClient(f"{url}/twilio/media") as twilio:
            await until(lambda: of_type(events, "playback_stopped"), 30)  # the greeting
            call = live_call(app)
            await asyncio.sleep(0.5)
            twilio.say(say("Can I talk to someone please?", 8000))
            end = await ended(events, within=30)
            await asyncio.wait_for(twilio.closed.wait(), 10)
            await until(lambda: not app.state.manager.calls, 5)
    (transfer,) = of_type(events, "transfer")
    assert transfer["target"] == "front_desk"
    assert end["reason"] == "transfer"
    # The server closed the socket only once Twilio had played the last word: every
    # mark answered, every frame heard.
    assert (twilio.close_code, twilio.close_reason) == (1000, "transfer")
    assert twilio.marks_answered == twilio.marks_received
    assert call.stream.heard_frames == call.stream.frames_sent == len(twilio.heard)
    text = await transcribe(np.concatenate(twilio.heard[-200:]), 8000)  # the last 4 s
    assert "connecting" in text, text


async def test_a_stream_that_never_starts_or_breaks_the_protocol_is_closed() -> None:
    from websockets.asyncio.client import connect

    async with stream_server(ECHO, connect_timeout=1.0) as (url, events, app):
        async with connect(f"{url}/twilio/media") as ws:
            await ws.send('{"event": "connected", "protocol": "Call", "version": "1.0.0"}')
            await asyncio.wait_for(ws.wait_closed(), 5)  # no start within the connect timeout
        async with connect(f"{url}/twilio/media") as ws:
            await ws.send(
                '{"event": "start", "start": {"streamSid": "MZ1", "mediaFormat": '
                '{"encoding": "audio/l16", "sampleRate": 16000, "channels": 1}}}'
            )
            await asyncio.wait_for(ws.wait_closed(), 5)
            assert ws.close_code == 1008
        await until(lambda: not app.state.manager.calls, 5)
        metrics = app.state.metrics.render()[0].decode()
    assert not of_type(events, "call_started")
    assert 'voicebot_calls_total{reason="connect_timeout",transport="twilio"} 1.0' in metrics
    assert 'voicebot_calls_total{reason="bad_request",transport="twilio"} 1.0' in metrics


async def test_vonage_stream_echoes_over_l16_and_a_clean_close_hangs_up() -> None:
    async with stream_server(ECHO) as (url, events, app):
        async with VonageClient(f"{url}/vonage/media", 16000) as vonage:
            await until(lambda: app.state.manager.calls, 10)
            call = live_call(app)
            await asyncio.sleep(1.0)
            vonage.say(say(SENTENCE, 16000))
            await until(lambda: of_type(events, "playback_stopped"), 20)
            await asyncio.sleep(0.5)
            assert vonage.ws is not None
            await vonage.ws.close()  # Vonage has no stop message: the socket ends the call
            end = await ended(events)
            await until(lambda: not app.state.manager.calls, 5)
    assert end["reason"] == "hangup"
    assert (
        call.stream_start.sample_rate == 16000
        and call.stream_start.parameters == vonage.custom_headers
    )
    assert vonage.marks_answered == vonage.marks_received != []
    assert call.stream.heard_frames == call.stream.frames_sent == len(vonage.heard)
    assert_real_time(vonage.arrivals)
    text = await transcribe(np.concatenate(vonage.heard), 16000)
    assert "you said" in text and "book a table" in text, text


# --- the TwiML webhook -------------------------------------------------------------------

# Twilio's published example (its request-validation docs and every helper library's tests).
VECTOR_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
VECTOR_PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+14158675309",
    "Digits": "1234",
    "From": "+14158675309",
    "To": "+18005551212",
}


def test_the_signature_is_twilios() -> None:
    assert signature("12345", VECTOR_URL, VECTOR_PARAMS) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    mac = hmac.new(b"t", b"https://h/twilio/voiceFromx", hashlib.sha1).digest()
    assert signature("t", "https://h/twilio/voice", {"From": "x"}) == base64.b64encode(mac).decode()


async def test_twilio_voice_answers_twiml_and_checks_the_signature() -> None:
    settings = ServerSettings(public_host="bot.example.com", twilio_auth_token="12345", max_calls=1)
    app = create_app(load_pipeline(ECHO), settings, warm=False)
    form = {"CallSid": "CA1", "From": "+15550100", "To": "+15550199", "AccountSid": "AC1"}
    good = signature("12345", "https://bot.example.com/twilio/voice", form)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8080"
    ) as client:
        ok = await client.post("/twilio/voice", data=form, headers={"X-Twilio-Signature": good})
        assert ok.status_code == 200 and ok.headers["content-type"].startswith("application/xml")
        assert ok.text == (
            '<?xml version="1.0" encoding="UTF-8"?><Response><Connect>'
            '<Stream url="wss://bot.example.com/twilio/media">'
            '<Parameter name="From" value="+15550100"/><Parameter name="To" value="+15550199"/>'
            '<Parameter name="CallSid" value="CA1"/></Stream></Connect></Response>'
        )
        for headers in ({"X-Twilio-Signature": "RSOYDt4T1cUTdK1PDd93/VVr8B8="}, {}):
            bad = await client.post("/twilio/voice", data=form, headers=headers)
            assert bad.status_code == 403
            assert bad.json() == {"error": "missing or wrong X-Twilio-Signature"}
        tampered = {**form, "From": "+15550666"}
        bad = await client.post(
            "/twilio/voice", data=tampered, headers={"X-Twilio-Signature": good}
        )
        assert bad.status_code == 403

        app.state.manager.calls["x"] = object()  # at the limit
        busy = await client.post("/twilio/voice", data=form, headers={"X-Twilio-Signature": good})
        assert busy.status_code == 200 and '<Reject reason="busy"/>' in busy.text
    metrics = app.state.metrics.render()[0].decode()
    assert 'voicebot_offers_rejected_total{reason="unauthorized",transport="twilio"} 3.0' in metrics


async def test_without_a_token_any_webhook_is_answered_on_the_request_host() -> None:
    app = create_app(load_pipeline(ECHO), ServerSettings(), warm=False)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://tunnel.example.org"
    ) as client:
        response = await client.post("/twilio/voice", data={})
    assert response.status_code == 200
    assert '<Stream url="wss://tunnel.example.org/twilio/media">' in response.text
    assert TwilioProtocol.name == "twilio"


def test_serve_takes_the_public_host_flag_and_the_auth_token_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parser = argparse.ArgumentParser()
    add_serve_arguments(parser)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "secret")
    settings = settings_from_args(parser.parse_args(["--public-host", "bot.example.com"]))
    assert settings.public_host == "bot.example.com" and settings.twilio_auth_token == "secret"
    monkeypatch.delenv("TWILIO_AUTH_TOKEN")
    settings = settings_from_args(parser.parse_args([]))
    assert settings.public_host is None and settings.twilio_auth_token is None


# --- raw PCM -----------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [16000, 8000])
async def test_raw_pcm_stream_echoes_and_sends_the_event_schema(rate: int) -> None:
    async with stream_server(ECHO) as (url, events, app):
        async with RawClient(f"{url}/ws/audio", rate) as client:
            await until(lambda: app.state.manager.calls, 10)
            call = live_call(app)
            await asyncio.sleep(1.0)
            client.say(say(SENTENCE, rate))
            await until(lambda: of_type(events, "playback_stopped"), 20)
            await asyncio.sleep(0.5)
            await client.send('{"type": "text", "text": "And a second turn, typed."}')
            await until(lambda: len(of_type(events, "playback_stopped")) == 2, 20)
            await asyncio.sleep(0.5)
            await client.send('{"type": "hangup"}')
            end = await ended(events)
            await asyncio.wait_for(client.closed.wait(), 10)
            await until(lambda: not app.state.manager.calls, 5)
        metrics = app.state.metrics.render()[0].decode()
    assert end["reason"] == "hangup" and client.close_code == 1000
    hello, *rest = client.events
    assert hello["type"] == "hello" and hello["sample_rate"] == rate
    assert hello["call_id"] == call.call_id and hello["pipeline"] == "echo"
    kinds = [e["type"] for e in rest]
    assert kinds[0] == "call_started" and rest[0]["transport"] == "raw"
    assert kinds[-1] == "call_ended"
    assert kinds.count("reply") == 2 and "transcript" in kinds
    assert [e["type"] for e in events] == kinds  # the same records as the server's listeners
    assert 'voicebot_calls_total{reason="hangup",transport="raw"} 1.0' in metrics
    assert_real_time(client.arrivals)
    assert call.stream.heard_frames == call.stream.frames_sent == len(client.heard)
    text = await transcribe(np.concatenate(client.heard), rate)
    # (tiny.en at 8 kHz writes "a" or "the" table depending on the stream's timing)
    heard = text.split()
    assert {"book", "table"} <= set(heard) and "second turn" in text, text


async def test_raw_stream_refuses_other_sample_rates_and_frees_a_dropped_call() -> None:
    from websockets.asyncio.client import connect

    async with stream_server(ECHO) as (url, events, app):
        async with connect(f"{url}/ws/audio?sample_rate=44100") as ws:
            await asyncio.wait_for(ws.wait_closed(), 5)
            assert ws.close_code == 1008
        async with RawClient(f"{url}/ws/audio") as client:
            await until(lambda: of_type(events, "call_started"), 10)
            client.say(say("Hello there.", 16000))
            await client.said()
            client.drop()
            end = await ended(events)
            await until(lambda: not app.state.manager.calls, 5)
    assert end["reason"] == "peer_gone"


async def test_a_silent_stream_ends_at_the_idle_timeout() -> None:
    async with stream_server(ECHO, idle_timeout=1.0) as (url, events, app):
        async with RawClient(f"{url}/ws/audio") as client:  # sends silence, as a line does
            end = await ended(events, within=10)
            await until(lambda: not app.state.manager.calls, 5)
            await asyncio.wait_for(client.closed.wait(), 5)
    assert end["reason"] == "idle_timeout" and 1.0 <= end["t"] < 4.0
