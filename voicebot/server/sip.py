"""The SIP listener (UAS) of ``voicebot serve``: answers INVITEs on UDP and TCP.

Signalling is aiosipua's (transactions, dialogs, 100 Trying, 2xx
retransmission until the ACK, OPTIONS keep-alives, CANCEL, session timers);
this module admits each INVITE through the server's ``CallManager`` (the same
call limit, metrics and events as WebRTC calls), answers it with a
``SipCall`` and routes the dialog's later requests (BYE, re-INVITE, INFO) to it.
An INFO carrying a key press (``application/dtmf-relay`` "Signal=5", or
``application/dtmf``) is answered ``200 OK`` and the key goes to the call;
an INFO of another content type gets ``415``.
Any user part is answered: ``sip:bot@host``, ``sip:+4930123@host``, … all
reach the pipeline.

At the call limit an INVITE gets ``503 Service Unavailable`` (a proxy tries
its next server), and so does one that finds every port of the RTP range
(``--rtp-ports``, ``transports/sip/ports.py``) taken; an offer without a common
codec gets ``488``. An INVITE without SDP (late offer) is answered with our
offer; the ACK carries the caller's answer (our ACK handler hands it to the call
after aiosipua's).

Each agent has a ``SipClient`` (aiosipua's UAC) for our own requests: REFERs
(``sip_transfer.py``; the NOTIFYs come back through ``on_transfer_progress``),
the REGISTERs of ``--sip-register`` (``sip_register.py``) and the INVITEs of
calls we place (``dial``, ``sip_outbound.py``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from functools import partial
from typing import TYPE_CHECKING, Any

from aiosipua import IncomingCall, SipRequest, SipUAS
from aiosipua.dialog import dialog_matches
from aiosipua.transport import SipTransport, TcpSipTransport
from aiosipua.uas_requests import handle_ack

from voicebot.dialog.transfer import valid_uri
from voicebot.server.calls import Busy
from voicebot.server.sip_call import RtpCall, SipCall
from voicebot.server.sip_outbound import OutboundCall
from voicebot.server.sip_register import Registrar
from voicebot.server.sip_transfer import SipClient
from voicebot.transports.dtmf import INFO_TYPES, info_digit
from voicebot.transports.sip.ports import NoRtpPort, RtpPorts
from voicebot.transports.sip.sdp import OfferNotAcceptable
from voicebot.transports.sip.settings import SipSettings
from voicebot.transports.sip.udp import (
    ANY_HOST,
    UdpTransport,
    bound_port,
    default_ip,
    route_ip,
    uri_address,
)

if TYPE_CHECKING:
    from voicebot.server.calls import CallManager

log = logging.getLogger(__name__)

PLACED_KEPT = 100  # calls we placed whose status GET /calls/{id} still answers


class SipServer:
    """UDP and TCP listeners on one port, sharing their calls."""

    def __init__(self, manager: CallManager, settings: SipSettings) -> None:
        self.manager = manager
        self.settings = settings
        self.calls: dict[str, SipCall] = {}  # by SIP Call-ID
        self.agents: list[SipUAS] = []
        self.clients: dict[int, SipClient] = {}  # by id(agent): our requests on its transport
        self._tasks: set[asyncio.Task[None]] = set()
        self.registrar: Registrar | None = None  # --sip-register
        self.placed: dict[str, OutboundCall] = {}  # by our call id, newest last
        self.rtp_ports = RtpPorts(settings.rtp_ports)  # every call's RTP port comes from here

    @property
    def port(self) -> int:
        """The UDP port listened on (the one asked for, or the one found for port 0)."""
        return bound_port(self.agents[0].transport) if self.agents else self.settings.port

    async def start(self) -> None:
        s = self.settings
        udp = await self._listen(UdpTransport(local_addr=(s.host, s.port)))
        port = bound_port(udp)  # port 0 asked: TCP takes the one UDP got
        await self._listen(TcpSipTransport(local_addr=(s.host, port)))
        # A dialog's requests may come over either transport (a Contact has no transport
        # parameter): both agents see every call.
        self.agents[1]._calls = self.agents[0]._calls
        log.info("sip: listening on %s:%d (UDP and TCP)", s.host, port)
        if s.rtp_ports is not None:
            low, high = s.rtp_ports
            log.info("sip: RTP on even ports of %d-%d (%d calls)", low, high, self.rtp_ports.free)
        if s.register is not None:
            client = self.clients[id(self.agents[0])]  # REGISTER over UDP
            self.registrar = Registrar(client, s, self.manager.metrics)
            await self.registrar.start()

    async def _listen(self, transport: SipTransport) -> SipTransport:
        s = self.settings
        client = SipClient(transport)
        uas = SipUAS(
            transport, user_agent=s.user_agent, session_expires=s.session_expires, uac=client
        )
        uas.on_transfer_progress = client.progress
        uas.on_invite = lambda invite: self._spawn(self._answer(uas, invite))
        uas.on_reinvite = self._on_reinvite
        uas.on_bye = self._on_bye
        uas.on_cancel = self._on_cancel
        uas.on_ack_timeout = lambda invite: self._end(invite, "no_ack")
        uas.on_session_expired = lambda invite: self._end(invite, "session_expired")
        uas._handlers["INFO"] = partial(self._on_info, uas)  # aiosipua answers INFO with 405
        uas._handlers["ACK"] = partial(self._on_ack, uas)  # aiosipua drops an ACK's body
        await uas.start()
        advertised = s.advertised_host or (default_ip() if s.host in ANY_HOST else s.host)
        uas.advertised_addr = (advertised, bound_port(transport))  # for Via and Contact
        client.advertised_addr = uas.advertised_addr
        self.clients[id(uas)] = client
        self.agents.append(uas)
        return transport

    async def stop(self) -> None:
        """Stop listening (hang up the calls first: ``CallManager.close``)."""
        if self.registrar is not None:
            await self.registrar.stop()
            await asyncio.sleep(0.05)  # the REGISTER removing the binding goes out
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for uas in self.agents:
            await uas.stop()
        self.agents.clear()
        self.clients.clear()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- requests -----------------------------------------------------------------
    async def _answer(self, uas: SipUAS, invite: IncomingCall) -> None:
        metrics = self.manager.metrics
        call = SipCall(self.manager, invite, self.settings, self.clients.get(id(uas)))
        try:
            self.manager.admit(call)
        except Busy:
            invite.reject(503, "Service Unavailable")
            uas._calls.pop(invite.call_id, None)
            return
        local_ip = self._local_ip(invite.source_addr[0])
        try:
            sdp = await call.open(local_ip, self.settings.host, self.rtp_ports)
        except (OfferNotAcceptable, NoRtpPort) as exc:
            log.info("sip: INVITE %s refused: %s", invite.call_id, exc)
            busy = isinstance(exc, NoRtpPort)
            metrics.rejected.labels("no_rtp_port" if busy else "bad_request", call.transport).inc()
            invite.reject(*((503, "Service Unavailable") if busy else (488, "Not Acceptable Here")))
            uas._calls.pop(invite.call_id, None)
            self.manager.withdraw(call)
            call.abort()
            return
        except BaseException:
            self.manager.withdraw(call)
            call.abort()
            raise
        if invite.call_id not in uas._calls:  # CANCELled while we were getting ready
            self.manager.withdraw(call)
            call.abort()
            return
        invite.accept(sdp)
        self.calls[invite.call_id] = call
        call.start()  # at once; after a late offer, once the ACK has answered it
        assert call.task is not None
        call.task.add_done_callback(lambda _: self._forget(uas, invite.call_id))
        log.info(
            "sip: call %s from %s answered (%s, call id %s)",
            invite.call_id,
            invite.caller,
            call.codec_name or "late offer: our offer in the 200 OK, the answer in the ACK",
            call.call_id,
        )

    async def dial(self, to: str, ring_timeout: float | None = None) -> OutboundCall:
        """Place a call to ``to`` (``sip:…``); raises ``ValueError`` for a bad URI,
        ``Busy`` at the call limit, ``NoRtpPort`` when the RTP range is used up. The call
        rings, and runs once answered, as its task."""
        if not to.lower().startswith(("sip:", "sips:")) or not valid_uri(to):
            raise ValueError(f"not a SIP URI: {to!r} (sip:user@host[:port])")
        remote = await uri_address(to)  # OSError: the host does not resolve
        uas = self.agents[0]
        s = self.settings
        contact_host, port = uas.advertised_addr or (s.host, self.port)
        from_uri = s.register or f"sip:voicebot@{contact_host}:{port}"
        call = OutboundCall(
            self.manager,
            s,
            self.clients[id(uas)],
            to,
            from_uri,
            s.ring_timeout if ring_timeout is None else ring_timeout,
        )
        self.manager.admit(call)
        try:
            await call.bind(s.host, self.rtp_ports)
        except BaseException as exc:
            if isinstance(exc, NoRtpPort):
                self.manager.metrics.rejected.labels("no_rtp_port", call.transport).inc()
            self.manager.withdraw(call)
            call.abort()
            raise
        self.placed[call.call_id] = call
        while len(self.placed) > PLACED_KEPT:
            del self.placed[next(iter(self.placed))]
        call.dial(self._local_ip(remote[0]), remote)
        log.info("sip: call %s: dialling %s", call.call_id, to)
        return call

    def _forget(self, uas: SipUAS, sip_call_id: str) -> None:
        self.calls.pop(sip_call_id, None)
        uas._calls.pop(sip_call_id, None)

    def _on_reinvite(self, invite: IncomingCall) -> None:
        call = self.calls.get(invite.call_id)
        if call is not None:
            call.reinvited(self._local_ip(invite.source_addr[0]))

    def _on_info(self, uas: SipUAS, request: SipRequest, addr: tuple[str, int]) -> None:
        """An in-dialog INFO: a key press (SIP INFO DTMF), or an empty keep-alive."""
        sip_call_id = request.call_id or ""
        _, dialog = uas._find_dialog(sip_call_id)  # a call we answered, or one we placed
        call = self._find(sip_call_id)
        if dialog is None or call is None:
            uas._send_error(request, 481, "Call/Transaction Does Not Exist")
            return
        if not uas._validate_in_dialog(dialog, request):
            return
        kind = (request.content_type or "").split(";")[0].strip().lower()
        if request.body and kind not in INFO_TYPES:
            response = dialog.create_response(request, 415, "Unsupported Media Type")
            response.headers.set_single("Accept", ", ".join(INFO_TYPES))
            uas.transport.send_reply(response)
            return
        uas.transport.send_reply(dialog.create_response(request, 200, "OK"))
        key = info_digit(kind, request.text) if request.body else None
        if key is not None:
            call.dtmf(key, "info")

    def _on_ack(self, uas: SipUAS, request: SipRequest, addr: tuple[str, int]) -> None:
        """aiosipua confirms the dialog; the call reads a late offer's answer from the body."""
        handle_ack(uas, request, addr)
        call = self.calls.get(request.call_id or "")
        if call is not None and dialog_matches(call.invite.dialog, request):
            call.acknowledged(request)

    def _on_bye(self, invite: IncomingCall, request: SipRequest) -> None:
        self._end(invite, "hangup")

    def _on_cancel(self, request: SipRequest, addr: tuple[str, int]) -> None:
        self._end_by_id(request.call_id or "", "cancelled")

    def _end(self, invite: IncomingCall, reason: str) -> None:
        self._end_by_id(invite.call_id, reason)

    def _end_by_id(self, sip_call_id: str, reason: str) -> None:
        call = self._find(sip_call_id)
        if call is not None:
            call.hang_up(reason)

    def _find(self, sip_call_id: str) -> RtpCall | None:
        """The live call of a dialog, answered or placed."""
        call: RtpCall | None = self.calls.get(sip_call_id)
        if call is None and sip_call_id:
            call = next((c for c in self.placed.values() if c.sip_call_id == sip_call_id), None)
        return call

    # --- addresses ----------------------------------------------------------------
    def _local_ip(self, peer: str) -> str:
        """The address our SDP gives for media: advertised, bound, or the route to the peer."""
        s = self.settings
        if s.advertised_host:
            return s.advertised_host
        if s.host not in ANY_HOST:
            return s.host
        return route_ip(peer)
