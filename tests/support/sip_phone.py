"""A bare SIP phone for the server's tests: aiosipua's UAC and UAS on one UDP socket.

It dials with an SDP offer (PCMU) or with none (a late offer: then ``ack_body``
says what its ACK carries, the answer to the offer in our 200 OK), hangs up with
a BYE and notes the BYEs it gets. Its media socket only receives; it sends no RTP.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiosipua import SdpMessage, SipRequest, SipResponse, SipUAC, SipUAS, build_sdp
from aiosipua.outgoing_call import OutgoingCall

from voicebot.transports.sip.udp import UdpTransport

AckBody = Callable[[SdpMessage], tuple[str, str] | None]  # our offer -> (type, body) or bare


class AckingTransport(UdpTransport):
    """aiosipua's UAC sends the ACK of a 2xx without a body; this one fills it in
    for a late offer, from the offer the UAC read out of the 200 OK."""

    def __init__(self, local_addr: tuple[str, int]) -> None:
        super().__init__(local_addr=local_addr)
        self.uac: SipUAC | None = None
        self.ack_body: AckBody | None = None
        self.invite_body: tuple[str, str] | None = None  # a body other than SDP for the INVITE

    def send(self, message: SipRequest | SipResponse, addr: tuple[str, int]) -> None:
        if isinstance(message, SipRequest) and message.method == "ACK" and self.ack_body:
            assert self.uac is not None
            call = self.uac.get_call(message.call_id or "")
            offer = call.sdp_answer if call is not None else None  # what our 200 OK carried
            body = self.ack_body(offer) if offer is not None else None
            if body is not None:
                message.headers.set_single("Content-Type", body[0])
                message.text = body[1]
        if isinstance(message, SipRequest) and message.method == "INVITE" and self.invite_body:
            message.headers.set_single("Content-Type", self.invite_body[0])
            message.text = self.invite_body[1]
        super().send(message, addr)


@dataclass
class Phone:
    uac: SipUAC
    uas: SipUAS
    transport: AckingTransport
    media: socket.socket
    byes: list[str] = field(default_factory=list)
    call: OutgoingCall | None = None
    server: tuple[str, int] = ("127.0.0.1", 0)

    @property
    def media_port(self) -> int:
        return int(self.media.getsockname()[1])

    def invite(self, port: int, offer: bool = True) -> OutgoingCall:
        """Send the INVITE: with a PCMU offer, or without SDP (``offer=False``)."""
        self.server = ("127.0.0.1", port)
        sdp = build_sdp("127.0.0.1", self.media_port, 0, "PCMU", session_id="1") if offer else None
        self.call = self.uac.send_invite(
            "sip:caller@127.0.0.1", f"sip:bot@127.0.0.1:{port}", self.server, sdp
        )
        return self.call

    async def dial(self, port: int, offer: bool = True) -> OutgoingCall:
        """Dial and wait for the answer (``RuntimeError`` with the status if refused)."""
        call = self.invite(port, offer)
        await call.wait_answered(10)
        return call

    def hang_up(self) -> None:
        assert self.call is not None
        self.call.hangup(self.uac)


@asynccontextmanager
async def bare_phone(ack_body: AckBody | None = None) -> AsyncIterator[Phone]:
    transport = AckingTransport(local_addr=("127.0.0.1", 0))
    uac = SipUAC(transport)
    transport.uac, transport.ack_body = uac, ack_body
    uas = SipUAS(transport, uac=uac)
    media = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    media.bind(("127.0.0.1", 0))
    media.setblocking(False)
    phone = Phone(uac, uas, transport, media)
    uas.on_bye = lambda call, request: phone.byes.append(call.call_id)
    await uas.start()
    assert transport._udp_transport is not None
    me = transport._udp_transport.get_extra_info("sockname")
    uac.advertised_addr = uas.advertised_addr = (me[0], me[1])
    try:
        yield phone
    finally:
        media.close()
        await uas.stop()


def answer_port(call: OutgoingCall) -> int:
    """The RTP port the server's SDP (its answer, or its late offer) names."""
    assert call.sdp_answer is not None and call.sdp_answer.audio is not None
    return call.sdp_answer.audio.port
