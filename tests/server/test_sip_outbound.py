"""Calls the bot places: ``POST /calls`` dials over the SIP listener.

The callee is baresip with ``answermode=auto`` (it answers at once, hears the
greeting and hangs up when its silent microphone WAV ends), or, for the calls
that are not answered, a SIP stack of the test's own (aiosipua's UAS) that
answers 486 or 404, or rings and never answers (we CANCEL at the ring timeout).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from aiosipua import IncomingCall, SipRequest, SipUAS

from tests.support.paths import ECHO_PIPELINE, RESTAURANT_PIPELINE
from tests.support.sip import (
    BARESIP,
    ended,
    heard,
    needs_baresip,
    of_type,
    phone,
    sip_server,
    until,
    write_wav,
)
from tests.support.speech import silence
from voicebot.asr.whisper import WhisperEngine
from voicebot.config import load_pipeline
from voicebot.server.app import create_app
from voicebot.server.calls import ServerSettings
from voicebot.server.child import ChildServer, free_port
from voicebot.transports.sip.udp import UdpTransport

TOKEN = "dial-secret"


def api(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://voicebot",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )


async def status_of(client: httpx.AsyncClient, call_id: str) -> dict[str, Any]:
    response = await client.get(f"/calls/{call_id}")
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


async def settled(client: httpx.AsyncClient, call_id: str, within: float) -> dict[str, Any]:
    """The call's status once it is past dialling and ringing."""
    for _ in range(round(within / 0.1)):
        data = await status_of(client, call_id)
        if data["status"] not in ("dialing", "ringing"):
            return data
        await asyncio.sleep(0.1)
    raise TimeoutError(f"call {call_id} still ringing after {within} s")


@needs_baresip
async def test_baresip_answers_and_hears_the_greeting(tmp_path: Path) -> None:
    confdir = phone(tmp_path, write_wav(tmp_path / "mic.wav", silence(9.0, 8000)))
    listen = re.search(r"sip_listen 127.0.0.1:(\d+)", (confdir / "config").read_text())
    assert listen is not None
    port = int(listen[1])
    (confdir / "accounts").write_text(
        "<sip:callee@127.0.0.1>;regint=0;answermode=auto;audio_codecs=PCMU\n"
    )
    assert BARESIP is not None
    proc = await asyncio.create_subprocess_exec(
        BARESIP,
        "-f",
        str(confdir),
        "-t",
        "40",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=confdir,
    )
    try:
        await asyncio.sleep(1.0)  # listening
        async with sip_server(RESTAURANT_PIPELINE, token=TOKEN, rtp_timeout=30) as (_, events, app):
            async with api(app) as client:
                response = await client.post("/calls", json={"to": f"sip:callee@127.0.0.1:{port}"})
                assert response.status_code == 202, response.text
                placed = response.json()
                assert placed["status"] == "dialing"
                answered = await settled(client, placed["call_id"], 10)
                assert answered["status"] == "answered" and answered["sip_status"] == 200
                end = await ended(events, within=20)  # baresip hangs up at its WAV's end
                await until(lambda: app.state.sip.placed[placed["call_id"]].status == "ended", 5)
                final = await status_of(client, placed["call_id"])
            metrics = app.state.metrics.render()[0].decode()
            assert not app.state.manager.calls
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        assert proc.stdout is not None
        output = (await proc.stdout.read()).decode(errors="replace")
        await proc.wait()
    assert "Call established" in output, output[-2000:]
    assert end["reason"] == "hangup" and final == {**final, "status": "ended", "reason": "hangup"}
    kinds = [e["type"] for e in events]
    assert kinds.index("dial") < kinds.index("call_started")  # answered, then the call
    (dial,) = of_type(events, "dial")
    assert dial["status"] == "answered" and dial["to"] == f"sip:callee@127.0.0.1:{port}"
    assert 'voicebot_sip_dials_total{status="answered"} 1.0' in metrics
    audio = heard(confdir)  # the bot spoke first: its greeting reached the callee
    assert np.sqrt(np.mean(audio.astype(np.float32) ** 2)) > 100, "baresip heard silence"
    result = await WhisperEngine("tiny.en").transcribe(audio.astype(np.float32) / 32768, "en")
    assert "thank you for calling" in result.text.lower(), result.text


@contextlib.asynccontextmanager
async def callee(answer: int | None) -> AsyncIterator[tuple[int, list[str]]]:
    """A SIP UAS that answers every INVITE with ``answer`` (None: rings forever);
    yields its port and the methods it saw (INVITE, CANCEL)."""
    transport = UdpTransport(local_addr=("127.0.0.1", 0))
    uas = SipUAS(transport)
    seen: list[str] = []

    def on_invite(invite: IncomingCall) -> None:
        seen.append("INVITE")
        if answer is None:
            invite.ringing()
        else:
            invite.reject(answer)

    def on_cancel(request: SipRequest, addr: tuple[str, int]) -> None:
        seen.append("CANCEL")

    uas.on_invite = on_invite
    uas.on_cancel = on_cancel
    await uas.start()
    try:
        yield transport._udp_transport.get_extra_info("sockname")[1], seen  # type: ignore[union-attr]
    finally:
        await uas.stop()


@pytest.mark.parametrize(
    ("answer", "status", "sip_status"),
    [(486, "busy", 486), (404, "failed", 404), (None, "no_answer", 0)],
)
async def test_calls_not_answered_say_why(answer: int | None, status: str, sip_status: int) -> None:
    async with (
        callee(answer) as (port, seen),
        sip_server(ECHO_PIPELINE, token=TOKEN) as (_, events, app),
        api(app) as client,
    ):
        to = f"sip:+15551234@127.0.0.1:{port}"
        response = await client.post("/calls", json={"to": to, "ring_timeout": 1.0})
        assert response.status_code == 202, response.text
        call_id = response.json()["call_id"]
        if answer is None:
            await until(lambda: app.state.sip.placed[call_id].status == "ringing", 3)
        result = await settled(client, call_id, 5)
        if answer is None:
            await until(lambda: "CANCEL" in seen, 3)
        metrics = app.state.metrics.render()[0].decode()
        assert not app.state.manager.calls  # released
    assert result["status"] == status and result.get("sip_status", 0) == sip_status
    assert seen == ["INVITE"] + (["CANCEL"] if answer is None else [])
    (dial,) = of_type(events, "dial")
    assert (dial["to"], dial["status"], dial.get("sip_status", 0)) == (to, status, sip_status)
    assert not of_type(events, "call_started")
    assert f'voicebot_sip_dials_total{{status="{status}"}} 1.0' in metrics
    assert f'voicebot_calls_total{{reason="{status}",transport="sip"}} 1.0' in metrics


async def test_post_calls_checks_its_key_and_its_request() -> None:
    async with sip_server(ECHO_PIPELINE, token=TOKEN) as (_, _, app), api(app) as client:
        anonymous = await client.post(
            "/calls", json={"to": "sip:a@127.0.0.1"}, headers={"Authorization": ""}
        )
        assert anonymous.status_code == 401
        assert (await client.post("/calls", json={"to": "tel:+15551234"})).status_code == 400
        assert (await client.post("/calls", json={"number": "1"})).status_code == 400
        assert (await client.post("/calls", content=b"to=sip:a@b")).status_code == 415
        assert (await client.get("/calls/nope")).status_code == 404
    app = create_app(load_pipeline(ECHO_PIPELINE), ServerSettings(token=TOKEN), warm=False)
    async with app.router.lifespan_context(app), api(app) as client:  # no --sip-port
        assert (await client.post("/calls", json={"to": "sip:a@127.0.0.1"})).status_code == 503


async def test_voicebot_call_asks_the_server_and_follows_the_call() -> None:
    """``voicebot call`` against ``voicebot serve --sip-port`` (both child processes)."""
    env = {"VOICEBOT_TOKEN": TOKEN}
    sip_port = free_port()
    with ChildServer(
        "serve", ECHO_PIPELINE, "--sip-port", str(sip_port), "--no-warm-up", env=env
    ) as server:
        async with callee(486) as (port, seen):
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "voicebot",
                "call",
                f"sip:desk@127.0.0.1:{port}",
                "--server",
                server.url,
                env={**os.environ, **env},
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            output, _ = await asyncio.wait_for(proc.communicate(), 30)
    lines = output.decode().splitlines()
    assert proc.returncode == 1, lines  # not answered
    assert lines[0].endswith(": dialing") and lines[-1].endswith(": busy (486)"), lines
    assert seen == ["INVITE"]
