"""The HTTP side of ``voicebot serve``: real uvicorn on a loopback port, real aiortc callers.

Each test runs the Starlette app in-process (``create_app``) on a free port and
talks to it over real HTTP; calls are real WebRTC connections from
``voicebot.transports.webrtc_client.Caller``.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
import uvicorn
from aiortc import RTCConfiguration, RTCPeerConnection
from starlette.applications import Starlette

from tests.support.paths import ECHO_PIPELINE
from tests.support.speech import say
from voicebot.config import load_pipeline
from voicebot.server.app import create_app
from voicebot.server.calls import ServerSettings
from voicebot.transports.jitter import AudioJitterBuffer, audio_jitter_ms
from voicebot.transports.webrtc_client import Caller, OfferRejected

Serve = Callable[[ServerSettings], Awaitable[str]]


async def start_server(app: Starlette) -> tuple[uvicorn.Server, asyncio.Task[None], str]:
    """Real uvicorn serving ``app`` on a free loopback port."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        assert not task.done(), "server failed to start"
        await asyncio.sleep(0.05)
    return server, task, f"http://127.0.0.1:{port}"


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start the echo bot's app with given settings; returns its base URL."""
    config = load_pipeline(ECHO_PIPELINE)
    servers: list[tuple[uvicorn.Server, asyncio.Task[None]]] = []

    async def start(settings: ServerSettings) -> str:
        server, task, url = await start_server(create_app(config, settings))
        servers.append((server, task))
        return url

    yield start
    for server, task in servers:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


async def wait_idle(http: httpx.AsyncClient, url: str, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while (await http.get(f"{url}/healthz")).json()["calls_active"]:
        assert time.monotonic() < deadline, "the call was not released"
        await asyncio.sleep(0.1)


async def test_health_metrics_and_page(serve: Serve) -> None:
    url = await serve(ServerSettings())
    async with httpx.AsyncClient() as http:
        health = (await http.get(f"{url}/healthz")).json()
        assert health == {
            "status": "ok",
            "pipeline": "echo",
            "language": "en",
            "latency_budget_ms": 1200,
            "calls_active": 0,
            "max_calls": 4,
            "auth": False,
        }
        metrics = await http.get(f"{url}/metrics")
        assert metrics.status_code == 200
        assert metrics.headers["content-type"].startswith("text/plain")
        for name in (
            "voicebot_calls_active",
            "voicebot_calls_max",
            "voicebot_loop_lag_seconds",
            "voicebot_turn_stage_seconds",
            "voicebot_frame_drops",
            "process_resident_memory_bytes",
        ):
            assert name in metrics.text
        page = await http.get(f"{url}/")
        assert page.status_code == 200 and 'id="call"' in page.text
        for element in ('id="hangup"', 'id="transcript"', 'src="app.js"'):
            assert element in page.text
        script = await http.get(f"{url}/app.js")
        assert script.status_code == 200 and "RTCPeerConnection" in script.text


async def raw_get(url: str, path: str) -> tuple[int, bytes]:
    """A GET with the path sent byte for byte (HTTP clients normalise dot segments)."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    response = await reader.read()
    writer.close()
    await writer.wait_closed()
    return int(response.split(b" ", 2)[1]), response


async def test_static_files_stay_inside_demo_web(serve: Serve) -> None:
    url = await serve(ServerSettings())
    for path in (
        "/../pyproject.toml",
        "/%2e%2e/pyproject.toml",
        "/..%2fpyproject.toml",
        "/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/../../../../etc/passwd",
        "/static/../../voicebot/server/app.py",
    ):
        status, body = await raw_get(url, path)
        assert status in (400, 404), (path, status)
        assert b"[project]" not in body and b"root:" not in body and b"create_app" not in body


async def test_malformed_offers_get_400_and_the_server_keeps_serving(serve: Serve) -> None:
    url = await serve(ServerSettings())
    cases = [
        ("not json", "application/json", 400),
        ('["sdp", "offer"]', "application/json", 400),
        ('{"type": "offer"}', "application/json", 400),
        ('{"sdp": "v=0\\r\\n", "type": "answer"}', "application/json", 400),
        ('{"sdp": "hello", "type": "offer"}', "application/json", 400),
        (
            '{"sdp": "v=0\\r\\no=- 1 1 IN IP4 0.0.0.0\\r\\nm=audio x", "type": "offer"}',
            "application/json",
            400,
        ),
        ('{"sdp": "v=0", "type": "offer"}', "text/plain", 415),
        ('{"sdp": "v=0' + "x" * 70000 + '", "type": "offer"}', "application/json", 413),
    ]
    async with httpx.AsyncClient() as http:
        for body, content_type, status in cases:
            response = await http.post(
                f"{url}/offer", content=body, headers={"Content-Type": content_type}
            )
            assert response.status_code == status, (body[:60], response.text)
            assert isinstance(response.json()["error"], str)
        # An offer without audio (only a data channel) cannot become a call.
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.createDataChannel("events")
        await pc.setLocalDescription(await pc.createOffer())
        response = await http.post(
            f"{url}/offer", json={"sdp": pc.localDescription.sdp, "type": "offer"}
        )
        await pc.close()
        assert response.status_code == 400 and "audio" in response.json()["error"]
        await wait_idle(http, url)
        metrics = (await http.get(f"{url}/metrics")).text
        rejected = 'voicebot_offers_rejected_total{reason="bad_request",transport="webrtc"} 9.0'
        assert rejected in metrics
    async with Caller(url) as caller:  # still serving calls
        hello = await caller.connect()
        assert hello["pipeline"] == "echo" and hello["latency_budget_ms"] == 1200
        _, event = await caller.wait_event("hello", 5)
        assert event["call_id"] == hello["call_id"]


async def test_bearer_token(serve: Serve) -> None:
    url = await serve(ServerSettings(token="s3cret-token"))
    async with httpx.AsyncClient() as http:
        assert (await http.get(f"{url}/healthz")).json()["auth"] is True
        for headers in (
            {},
            {"Authorization": "Bearer wrong"},
            {"Authorization": "s3cret-token"},
            {"Authorization": "Basic s3cret-token"},
        ):
            response = await http.post(
                f"{url}/offer", json={"sdp": "v=0", "type": "offer"}, headers=headers
            )
            assert response.status_code == 401, headers
            assert response.headers["www-authenticate"].startswith("Bearer")
            assert "token" in response.json()["error"]
        response = await http.post(
            f"{url}/offer",
            content="{",
            headers={"Authorization": "Bearer s3cret-token", "Content-Type": "application/json"},
        )
        assert response.status_code == 400  # past the token check
    with pytest.raises(OfferRejected) as refused:
        async with Caller(url) as caller:
            await caller.connect()
    assert refused.value.status == 401
    async with Caller(url, token="s3cret-token") as caller:
        await caller.connect()
        await caller.wait_event("call_started", 10)


async def test_call_limit_answers_503(serve: Serve) -> None:
    url = await serve(ServerSettings(max_calls=1))
    async with httpx.AsyncClient() as http, Caller(url) as first:
        await first.connect()
        await first.wait_event("call_started", 10)
        with pytest.raises(OfferRejected) as refused:
            async with Caller(url) as second:
                await second.connect()
        assert refused.value.status == 503
        assert "limit" in refused.value.body["error"] and refused.value.body["max_calls"] == 1
        first.hang_up()
        _, ended = await first.wait_event("call_ended", 10)
        assert ended["reason"] == "hangup"
        await wait_idle(http, url)
        metrics = (await http.get(f"{url}/metrics")).text
        assert 'voicebot_offers_rejected_total{reason="busy",transport="webrtc"} 1.0' in metrics
        assert 'voicebot_calls_total{reason="hangup",transport="webrtc"} 1.0' in metrics
    async with Caller(url) as third:  # a line is free again
        await third.connect()
        await third.wait_event("call_started", 10)


async def test_cors_is_closed_unless_configured(serve: Serve) -> None:
    preflight = {
        "Origin": "http://elsewhere.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    closed = await serve(ServerSettings())
    opened = await serve(ServerSettings(cors_origins=["http://elsewhere.example"]))
    async with httpx.AsyncClient() as http:
        response = await http.options(f"{closed}/offer", headers=preflight)
        assert "access-control-allow-origin" not in response.headers
        response = await http.options(f"{opened}/offer", headers=preflight)
        assert response.headers["access-control-allow-origin"] == "http://elsewhere.example"


async def test_typed_text_is_a_caller_turn(serve: Serve) -> None:
    url = await serve(ServerSettings())
    async with Caller(url) as caller:
        await caller.connect()
        await caller.wait_event("call_started", 10)
        sent = time.monotonic()
        caller.send_text("  hello   there  ")
        _, final = await caller.wait_event("transcript", 10)
        assert final["final"] and final["text"] == "hello there" and final["turn"] == 1
        _, reply = await caller.wait_event("reply", 10)
        assert reply["text"] == "You said: hello there" and reply["turn"] == 1
        _, turn = await caller.wait_event("turn", 10)
        assert turn["asr_ms"] is None and turn["tts_ms"] is not None
        heard = await caller.reply(sent, within=10, quiet=0.5)
        assert 0.8 < heard.duration < 4.0
        caller.send_text("")  # nothing to say: refused, the call goes on
        _, error = await caller.wait_event("client_error", 5)
        caller._channel.send("{not json")
        await caller.wait_event("client_error", 5, start=caller.events.index(error) + 1)
        caller.hang_up()
        _, ended = await caller.wait_event("call_ended", 10)
        assert ended["reason"] == "hangup"


async def test_idle_calls_end(serve: Serve) -> None:
    url = await serve(ServerSettings(idle_timeout=1.0))
    async with Caller(url) as caller:
        await caller.connect()
        _, ended = await caller.wait_event("call_ended", 10)
        assert ended["reason"] == "idle_timeout" and 1.0 <= ended["t"] < 4.0


async def test_a_vanished_peer_ends_the_call(serve: Serve) -> None:
    url = await serve(ServerSettings())
    async with httpx.AsyncClient() as http:
        caller = Caller(url)
        await caller.connect()
        await caller.wait_event("call_started", 10)
        assert (await http.get(f"{url}/healthz")).json()["calls_active"] == 1
        await caller.close()  # no hang-up message: the connection just goes away
        await wait_idle(http, url)
        metrics = (await http.get(f"{url}/metrics")).text
        assert 'voicebot_calls_total{reason="peer_gone",transport="webrtc"} 1.0' in metrics


async def test_shutdown_hangs_up_live_calls() -> None:
    config = load_pipeline(ECHO_PIPELINE)
    app = create_app(config, ServerSettings())
    server, task, url = await start_server(app)
    async with Caller(url) as caller:
        await caller.connect()
        await caller.wait_event("call_started", 10)
        server.should_exit = True
        _, ended = await caller.wait_event("call_ended", 15)
        assert ended["reason"] == "server_shutdown"
    await asyncio.wait_for(task, 30)
    assert not app.state.manager.calls


@pytest.mark.parametrize("jitter_ms", [20, 60])
async def test_inbound_audio_jitter_buffer_has_the_configured_depth(jitter_ms: int) -> None:
    """aiortc holds 80 ms of inbound audio; the server asks for ``jitter_ms`` (and a changed
    aiortc internals layout fails here, not silently). Speech still arrives whole."""
    config = load_pipeline(ECHO_PIPELINE)
    app = create_app(config, ServerSettings(jitter_ms=jitter_ms))
    server, task, url = await start_server(app)
    try:
        async with Caller(url) as caller:
            await caller.connect()
            await caller.wait_event("call_started", 10)
            (call,) = app.state.manager.calls.values()
            audio = [t for t in call.pc.getTransceivers() if t.kind == "audio"]
            assert [audio_jitter_ms(t.receiver) for t in audio] == [jitter_ms]
            buffer = audio[0].receiver._RTCRtpReceiver__jitter_buffer  # type: ignore[attr-defined]
            assert isinstance(buffer, AudioJitterBuffer)
            await caller.say(say("I would like to book a table for four."), 16000)
            _, final = await caller.wait_event("transcript", 20, where=lambda e: e["final"])
            heard = final["text"].lower().replace(" 4", " four")  # Whisper may write digits
            assert "book a table for four" in heard, final
            assert buffer.late == 0  # loopback: nothing arrives out of order
            caller.hang_up()
            await caller.wait_event("call_ended", 10)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)
