"""Calls the bot places (``POST /calls``, ``voicebot call sip:…``) from the SIP listener.

An ``OutboundCall`` is admitted like any call (the same call limit), binds its
RTP port (of ``--rtp-ports``: none free, ``NoRtpPort`` and ``POST /calls``
answers 503) and sends an INVITE with our offer (G.722, G.711, telephone-event)
from the server's UDP transport, as ``--sip-register``'s address of record
when there is one (its credentials answer a 401/407). It rings for the ring
timeout: answered (2xx), the pipeline runs as on a call we answered, the
greeting first; ``busy`` (486, 600); ``no_answer`` (no final answer in time:
we CANCEL); ``failed`` (any other final error, or an answer with no codec of
ours); ``cancelled`` (hung up, e.g. at shutdown, while ringing). The outcome is
a ``dial`` event, ``voicebot_sip_dials_total{status}`` and ``status`` (what
``GET /calls/{id}`` shows; ``ended`` once an answered call is over).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from aiosipua import SipDigestAuth
from aiosipua.dialog import Dialog
from aiosipua.outgoing_call import OutgoingCall

from voicebot.events import DialEvent, EventBus
from voicebot.server.sip_call import NO_ADDRESS, RtpCall
from voicebot.transports.sip.codecs import RtpCodec
from voicebot.transports.sip.rtp import RtpStream
from voicebot.transports.sip.sdp import OfferNotAcceptable, make_offer, read_answer

if TYPE_CHECKING:
    from voicebot.server.calls import CallManager
    from voicebot.server.sip_transfer import SipClient
    from voicebot.transports.sip.ports import RtpPorts
    from voicebot.transports.sip.settings import SipSettings

log = logging.getLogger(__name__)

BUSY = (486, 600)  # Busy Here, Busy Everywhere


class OutboundCall(RtpCall):
    """A call we place to ``to``; ``start`` dials, then runs it like any phone call."""

    def __init__(
        self,
        manager: CallManager,
        settings: SipSettings,
        client: SipClient,
        to: str,
        from_uri: str,
        ring_timeout: float,
    ) -> None:
        super().__init__(manager, settings, client)
        self.sip_client = client
        self.to = to
        self.from_uri = from_uri
        self.ring_timeout = ring_timeout
        self.status = "dialing"  # ringing, answered, busy, no_answer, failed, cancelled, ended
        self.sip_status = 0
        self.outgoing: OutgoingCall | None = None

    @property
    def sip_call_id(self) -> str:
        return self.outgoing.call_id if self.outgoing is not None else ""

    def _dialog(self) -> tuple[Dialog, tuple[str, int]]:
        assert self.outgoing is not None
        return self.outgoing.dialog, self.outgoing.remote_addr

    def _bye(self) -> bool:
        # a BYE from the callee has removed the call from the client already
        if self.outgoing is None or self.sip_client.get_call(self.sip_call_id) is None:
            return False
        return self.outgoing.hangup(self.sip_client) is not None

    def describe(self) -> dict[str, object]:
        """What ``POST /calls`` and ``GET /calls/{id}`` answer."""
        out: dict[str, object] = {"call_id": self.call_id, "to": self.to, "status": self.status}
        if self.sip_status:
            out["sip_status"] = self.sip_status
        if self.status == "ended":
            out["reason"] = self.reason
        return out

    async def bind(self, rtp_host: str, ports: RtpPorts | None = None) -> None:
        """Take the call's RTP port (of ``ports``' range); raises ``NoRtpPort``."""
        s = self.settings
        first = RtpCodec(s.codecs[0])
        self.stream = await RtpStream.bind(rtp_host, first, NO_ADDRESS, s.jitter_ms, ports)

    def dial(self, local_ip: str, remote: tuple[str, int]) -> None:
        """Start ringing ``remote`` (the callee or a trunk) as the call's task (once bound)."""
        self.task = asyncio.get_running_loop().create_task(
            self._dial(local_ip, remote), name=f"sip:{self.call_id}:dial"
        )

    async def _dial(self, local_ip: str, remote: tuple[str, int]) -> None:
        s = self.settings
        assert self.stream is not None
        try:
            session = str(int(time.time()))
            offer = make_offer(local_ip, self.stream.local_port, s.codecs, session)
            auth = (
                SipDigestAuth(s.register_username or "", s.register_password)
                if s.register_password
                else None
            )
            outgoing = self.outgoing = self.sip_client.send_invite(
                self.from_uri, self.to, remote, offer, user_agent=s.user_agent, auth=auth
            )
            outgoing.on_ringing = lambda _: self._ringing()
            try:
                await outgoing.wait_answered(self.ring_timeout)
            except TimeoutError:
                outgoing.cancel(self.sip_client)
                self._not_answered("no_answer")
                return
            except RuntimeError:
                code = outgoing._reject_code
                self._not_answered("busy" if code in BUSY else "failed", code)
                return
            try:
                answer = read_answer(outgoing.sdp_answer, offer, s.codecs)
            except OfferNotAcceptable as exc:
                log.info("call %s: %s", self.call_id, exc)
                outgoing.hangup(self.sip_client)
                self._not_answered("failed", 200)
                return
        except asyncio.CancelledError:
            if self.outgoing is not None:
                self.outgoing.cancel(self.sip_client)
            self._not_answered("cancelled")
            return
        codec = RtpCodec(answer.codec)
        self.stream.answered(codec, answer.remote)
        self._build(codec)
        self._hold(answer)
        self._report("answered", 200)
        self.manager.started(self)
        log.info("call %s: %s answered (%s)", self.call_id, self.to, codec.spec.name)
        try:
            await self._run()
        finally:
            self.status = "ended"

    def _ringing(self) -> None:
        if self.status == "dialing":
            self.status = "ringing"

    def _report(self, status: str, sip_status: int = 0) -> None:
        self.status, self.sip_status = status, sip_status
        self.manager.metrics.dials.labels(status).inc()
        bus = self.pipeline.ctx.bus if status == "answered" else EventBus(self.call_id, self.clock)
        if status != "answered":
            self.manager.observe(bus, self.transport)
        bus.emit(DialEvent(self.to, status, sip_status), t=0.0)

    def _not_answered(self, status: str, sip_status: int = 0) -> None:
        log.info("call %s: %s %s (%d)", self.call_id, self.to, status, sip_status)
        self.reason = self.reason or status
        self._report(status, sip_status)
        self.abort()
        self.manager.release(self)
