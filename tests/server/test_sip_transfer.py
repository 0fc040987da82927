"""Blind transfer by REFER: a flow's ``transfer`` to a SIP URI on a phone call.

The caller is a bare SIP client (aiosipua's UAC and UAS on one socket, no media):
it presses "0" by SIP INFO (the restaurant flow's way to the front desk), takes
our REFER with 202 (aiosipua's own REFER handling) and reports the transfer's
outcome with a NOTIFY whose sipfrag the test chooses. A transfer target that
is a name, not a URI, ends the call with a clean BYE as before.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosipua import IncomingCall, SipRequest, SipUAC, SipUAS, build_sdp

from tests.support.paths import RESTAURANT_FLOW, RESTAURANT_INTENTS, RESTAURANT_PIPELINE
from tests.support.sip import ended, of_type, sip_server, until
from voicebot.dialog.bot import check_files
from voicebot.dialog.transfer import refer_target, valid_uri
from voicebot.transports.sip.udp import UdpTransport

FRONT_DESK = "sip:frontdesk@127.0.0.1:5999"


@dataclass
class Caller:
    """A SIP client that dials, presses keys by INFO and answers REFERs."""

    uac: SipUAC  # the caller sends no RTP: the servers here wait 30 s for it
    uas: SipUAS
    media: socket.socket
    notify: int | None = 200  # the sipfrag status reported for a REFER; None: no NOTIFY
    refers: list[SipRequest] = field(default_factory=list)
    byes: list[str] = field(default_factory=list)
    call: Any = None
    server: tuple[str, int] = ("127.0.0.1", 0)

    def on_refer(self, wrapper: IncomingCall, refer_to: str) -> None:
        self.refers.append(wrapper.invite)
        if self.notify is not None:  # "ringing" at the target, then its answer
            status = self.notify
            asyncio.get_running_loop().call_later(0.2, self._notify, status)

    def _notify(self, status: int) -> None:
        self.uac._send_in_dialog(
            self.call.dialog,
            "NOTIFY",
            self.server,
            body=f"SIP/2.0 {status} {'OK' if status == 200 else 'Busy Here'}\r\n",
            content_type="message/sipfrag;version=2.0",
            extra_headers={"Event": "refer", "Subscription-State": "terminated;reason=noresource"},
        )

    async def dial(self, port: int) -> None:
        self.server = ("127.0.0.1", port)
        offer = build_sdp("127.0.0.1", self.media.getsockname()[1], 0, "PCMU", session_id="1")
        self.call = self.uac.send_invite(
            "sip:caller@127.0.0.1", f"sip:bot@127.0.0.1:{port}", self.server, offer
        )
        await self.call.wait_answered(10)

    def press(self, key: str) -> None:
        body = f"Signal={key}\r\nDuration=160\r\n"
        self.uac.send_info(self.call.dialog, body, "application/dtmf-relay", self.server)


@asynccontextmanager
async def caller() -> AsyncIterator[Caller]:
    transport = UdpTransport(local_addr=("127.0.0.1", 0))
    uac = SipUAC(transport)
    uas = SipUAS(transport, uac=uac)
    media = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    media.bind(("127.0.0.1", 0))
    phone = Caller(uac, uas, media)
    uas.on_refer = phone.on_refer
    uas.on_bye = lambda call, request: phone.byes.append(call.call_id)
    await uas.start()
    me = transport._udp_transport.get_extra_info("sockname")  # type: ignore[union-attr]
    uac.advertised_addr = uas.advertised_addr = (me[0], me[1])
    try:
        yield phone
    finally:
        media.close()
        await uas.stop()


def front_desk_flow(tmp_path: Path) -> Path:
    """The restaurant flow with its front desk at a SIP URI."""
    text = RESTAURANT_FLOW.read_text()
    assert "transfer: front_desk" in text
    path = tmp_path / "restaurant_flow.yaml"
    path.write_text(text.replace("transfer: front_desk", f'transfer: "{FRONT_DESK}"'))
    return path


@pytest.mark.parametrize(
    ("notify", "result", "status"),
    [(200, "transferred", 200), (486, "failed", 486), (None, "timeout", 0)],
)
async def test_a_transfer_to_a_sip_uri_is_a_refer(
    tmp_path: Path, notify: int | None, result: str, status: int
) -> None:
    """The goodbye is played, the REFER names the target (and us), the NOTIFY's
    sipfrag decides the result; every way, the call ends with our BYE."""
    async with (
        caller() as phone,
        sip_server(
            RESTAURANT_PIPELINE,
            flow=front_desk_flow(tmp_path),
            transfer_timeout=2.0,
            rtp_timeout=30,
        ) as (
            port,
            events,
            app,
        ),
    ):
        phone.notify = notify
        heard: list[tuple[float, bool]] = []  # (when, voice in it) per RTP packet we got
        loop = asyncio.get_running_loop()
        loop.add_reader(phone.media.fileno(), _hear, phone.media, heard)
        await phone.dial(port)
        phone.press("0")
        end = await ended(events, within=20)
        await until(lambda: of_type(events, "transfer_result"), 5)
        result_at = time.monotonic()
        await until(lambda: phone.byes, 15)
        loop.remove_reader(phone.media.fileno())
        metrics = app.state.metrics.render()[0].decode()
    assert end["reason"] == "transfer"
    (transfer,) = of_type(events, "transfer")
    assert transfer["target"] == FRONT_DESK
    (refer,) = phone.refers
    assert refer.get_header("refer-to") == f"<{FRONT_DESK}>"
    assert "sip:bot@127.0.0.1" in (refer.get_header("referred-by") or "")
    (done,) = of_type(events, "transfer_result")
    assert (done["target"], done["result"], done.get("status", 0)) == (FRONT_DESK, result, status)
    # the REFER came once the goodbye had been played: after the last playback
    kinds = [e["type"] for e in events]
    assert kinds.index("transfer_result") > kinds.index("call_ended")
    assert of_type(events, "playback_stopped")
    assert phone.byes == [phone.call.call_id]
    assert f'voicebot_sip_transfers_total{{result="{result}",transport="sip"}} 1.0' in metrics
    # a failed transfer: the caller is still there and hears the flow's apology, then our BYE
    assert transfer["apology"].startswith("Sorry, I could not connect you")
    spoken_after = sum(voice for at, voice in heard if at > result_at)
    if result == "transferred":
        assert spoken_after == 0
    else:
        assert spoken_after >= 50, spoken_after  # a second of speech at least


def _hear(media: socket.socket, heard: list[tuple[float, bool]]) -> None:
    """One RTP packet (PCMU): whether its payload is more than silence."""
    try:
        packet = media.recv(2048)
    except BlockingIOError:
        return
    payload = packet[12:]
    heard.append((time.monotonic(), any(b not in (0xFF, 0x7F, 0xFE, 0x7E) for b in payload)))


async def test_a_transfer_to_a_name_hangs_up_cleanly() -> None:
    """The restaurant flow's ``front_desk`` is no URI: no REFER, our BYE after the goodbye."""
    async with (
        caller() as phone,
        sip_server(RESTAURANT_PIPELINE, rtp_timeout=30) as (port, events, _),
    ):
        await phone.dial(port)
        phone.press("0")
        end = await ended(events, within=20)
        await until(lambda: phone.byes, 5)
    assert end["reason"] == "transfer"
    assert [e["target"] for e in of_type(events, "transfer")] == ["front_desk"]
    assert not phone.refers and not of_type(events, "transfer_result")


async def test_a_transfer_to_a_name_mapped_by_transfer_to_is_a_refer() -> None:
    """``--transfer-to front_desk=sip:…`` (or ``telephony.transfer_to``): the restaurant
    flow's ``front_desk`` is REFERred there."""
    async with (
        caller() as phone,
        sip_server(RESTAURANT_PIPELINE, rtp_timeout=30, transfer_to={"front_desk": FRONT_DESK}) as (
            port,
            events,
            _,
        ),
    ):
        await phone.dial(port)
        phone.press("0")
        await ended(events, within=20)
        await until(lambda: of_type(events, "transfer_result"), 5)
        await until(lambda: phone.byes, 15)
    (refer,) = phone.refers
    assert refer.get_header("refer-to") == f"<{FRONT_DESK}>"
    assert of_type(events, "transfer_result")[0]["result"] == "transferred"


def test_refer_targets_come_from_the_flow_or_the_servers_transfer_to() -> None:
    names = {"front_desk": "+4930123456", "kitchen": "sip:kitchen@pbx.example", "bar": "x y"}
    assert refer_target("sip:desk@pbx.example", {}) == "sip:desk@pbx.example"
    assert refer_target("sip:desk@@pbx", names) is None  # a malformed URI is not mapped
    assert refer_target("front_desk", names) == "tel:+4930123456"
    assert refer_target("kitchen", names) == "sip:kitchen@pbx.example"
    assert refer_target("bar", names) is None and refer_target("cellar", names) is None
    assert refer_target("cellar", {"": "sip:any@pbx.example"}) == "sip:any@pbx.example"


def test_transfer_uris_are_checked_in_the_flow(tmp_path: Path) -> None:
    flow = """\
flow: desk
languages: [en]
start: agent
states:
  agent: {say: "Connecting.", transfer: "sip:desk@@pbx"}
  other: {say: "Connecting.", transfer: "sip:desk@pbx.example:5060;transport=tcp",
          transfer_failed: "Nobody is free, sorry."}
  lost: {say: "Bye.", end: true, transfer_failed: "Sorry."}
"""
    path = tmp_path / "desk_flow.yaml"
    path.write_text(flow)
    _, _, diags = check_files([path], [RESTAURANT_INTENTS])
    errors = [(d.code, d.line) for d in diags if d.code.startswith("E")]
    assert errors == [("E419", 5), ("E420", 8)], diags
    assert valid_uri("tel:+15551234") and valid_uri("sips:pbx.example")
    assert not valid_uri("tel:call-me") and not valid_uri("sip:")
