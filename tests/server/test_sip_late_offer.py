"""Late offer (RFC 3261 §13.2.1): an INVITE without SDP, our offer in the 200 OK, the
caller's answer in the ACK. The caller is a bare aiosipua phone whose ACK carries the
answer the test chooses (aiosipua's UAC would send it bare)."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable

import pytest
from aiosipua import SdpMessage, serialize_sdp
from aiosipua.sdp_negotiate import negotiate_sdp

from tests.support.paths import ECHO_PIPELINE
from tests.support.sip import ended, of_type, sip_server, until
from tests.support.sip_phone import AckBody, answer_port, bare_phone


def answering(payload_type: int, media: list[socket.socket]) -> AckBody:
    """The phone's ACK: an answer taking ``payload_type`` from our offer, for its media socket."""

    def body(offer: SdpMessage) -> tuple[str, str]:
        port = media[0].getsockname()[1]
        sdp, chosen = negotiate_sdp(offer, "127.0.0.1", port, supported_codecs=[payload_type])
        assert chosen == payload_type
        return "application/sdp", serialize_sdp(sdp)

    return body


async def received(media: socket.socket, count: int, within: float = 5.0) -> list[bytes]:
    packets: list[bytes] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while len(packets) < count and loop.time() < deadline:
        try:
            packets.append(media.recv(2048))
        except BlockingIOError:
            await asyncio.sleep(0.01)
    return packets


async def test_an_invite_without_sdp_gets_our_offer_and_the_ack_answers_it() -> None:
    media: list[socket.socket] = []
    async with (
        sip_server(ECHO_PIPELINE, rtp_timeout=30) as (port, events, app),
        bare_phone(answering(0, media)) as phone,  # PCMU, though G.722 comes first in ours
    ):
        media.append(phone.media)
        call = await phone.dial(port, offer=False)
        offer = call.sdp_answer  # the 200 OK's body: our offer
        assert offer is not None and offer.audio is not None
        assert offer.audio.formats == ["9", "0", "8", "101"]  # G.722, PCMU, PCMA, keys
        names = {c.payload_type: c.encoding_name for c in offer.audio.codecs}
        assert names == {9: "G722", 0: "PCMU", 8: "PCMA", 101: "telephone-event"}
        await until(lambda: of_type(events, "call_started"), 10)
        (started,) = of_type(events, "call_started")
        assert started["transport"] == "sip"
        packets = await received(phone.media, 10)  # the bot's stream, where the ACK said
        assert len(packets) == 10
        assert {p[1] & 0x7F for p in packets} == {0}  # PCMU, the codec the ACK chose
        (live,) = app.state.sip.calls.values()
        assert (live.codec_name, live.stream.remote) == ("PCMU", ("127.0.0.1", phone.media_port))
        assert live.stream.local_port == answer_port(call)
        assert live.stream.dtmf_payload_type == 101  # the answer kept telephone-event
        phone.hang_up()
        end = await ended(events, within=10)
    assert end["reason"] == "hangup"


def g729_only(port: int) -> tuple[str, str]:
    """An answer in a codec our offer did not list."""
    lines = [
        "v=0",
        "o=phone 1 1 IN IP4 127.0.0.1",
        "s=-",
        "c=IN IP4 127.0.0.1",
        "t=0 0",
        f"m=audio {port} RTP/AVP 18",
        "a=rtpmap:18 G729/8000",
    ]
    return "application/sdp", "\r\n".join(lines) + "\r\n"


ACKS: dict[str, Callable[[int], tuple[str, str] | None]] = {
    "bare": lambda port: None,
    "text": lambda port: ("text/plain", "hello\r\n"),
    "g729": g729_only,
}


@pytest.mark.parametrize(
    ("ack", "problem"),
    [
        ("bare", "the ACK has no SDP"),
        ("text", "the ACK's body is text/plain, not application/sdp"),
        ("g729", "the answer takes none of our codecs: ['18']"),
    ],
)
async def test_an_ack_without_a_usable_answer_gets_our_bye(
    ack: str, problem: str, caplog: pytest.LogCaptureFixture
) -> None:
    media: list[socket.socket] = []
    caplog.set_level(logging.INFO, logger="voicebot.server.sip_call")
    async with (
        sip_server(ECHO_PIPELINE, rtp_timeout=30) as (port, events, app),
        bare_phone(lambda offer: ACKS[ack](media[0].getsockname()[1])) as phone,
    ):
        media.append(phone.media)
        call = await phone.dial(port, offer=False)
        await until(lambda: phone.byes, 5)  # our BYE, at once
        assert phone.byes == [call.call_id]
        await until(lambda: not app.state.manager.calls, 5)
        metrics = app.state.metrics.render()[0].decode()
    assert not of_type(events, "call_started")  # no media, no pipeline
    assert 'voicebot_calls_total{reason="bad_ack",transport="sip"} 1.0' in metrics
    lines = [r.getMessage() for r in caplog.records]
    (line,) = [m for m in lines if "ACK brings no usable" in m]
    assert problem in line and line.endswith(": hanging up")


async def test_an_invite_whose_body_is_not_sdp_gets_488() -> None:
    """A late offer is an INVITE without a body; one with a body we cannot read is refused."""
    async with (
        sip_server(ECHO_PIPELINE, rtp_timeout=30) as (port, _, app),
        bare_phone() as phone,
    ):
        phone.transport.invite_body = ("application/isup", "\x01\x00\x49")
        with pytest.raises(RuntimeError, match="488"):
            await phone.dial(port, offer=False)
        metrics = app.state.metrics.render()[0].decode()
        assert not app.state.manager.calls
    assert 'voicebot_offers_rejected_total{reason="bad_request",transport="sip"} 1.0' in metrics
