"""One phone call: a SIP dialog, its RTP stream, and the pipeline behind them.

The call answers at once (200 OK with our SDP) and the pipeline starts with
it, so the greeting is the first thing the caller hears. An INVITE without SDP
(a late offer, RFC 3261 §13.2.1) gets our offer in the 200 OK and the caller's
answer comes in the ACK: the pipeline starts once the ACK names the codec and
the address (an ACK without a usable answer: our BYE, reason ``bad_ack``). It ends on the
caller's BYE (``hangup``), the flow's ``end`` (``bot_hangup``: we send the
BYE once the goodbye has been played), no RTP for ``rtp_timeout`` seconds
while not on hold (``rtp_timeout``), the session timer running out
(``session_expired``), the 200 OK never being acknowledged (``no_ack``), the
server's idle timeout or shutdown. A flow's ``transfer`` to a ``sip:``/``tel:``
URI is a blind transfer: once the goodbye is played we send a REFER and wait
for the caller's NOTIFY (sipfrag 2xx: ``transferred``), then the BYE; when the
REFER is refused, the target fails or does not answer, the bot says the flow's
apology (the ``transfer`` event's) first, then sends the BYE (``transfer_result``
says which). Hold and
resume arrive as re-INVITEs: the bot stops sending while held and the RTP
timeout waits. Key presses (RFC 4733 from the RTP stream, SIP INFO from
``SipServer``) go to the graph through ``transports/dtmf.press``.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import time
import uuid
from typing import TYPE_CHECKING

from aiosipua import IncomingCall, SdpMessage, SipRequest, parse_sdp
from aiosipua.dialog import Dialog

from voicebot.call import build_call, say_after_end
from voicebot.dialog.transfer import refer_target
from voicebot.events import EventRecord, TransferResultEvent
from voicebot.server.idle import IdleWatch
from voicebot.transports.dtmf import press
from voicebot.transports.sip.codecs import CodecSpec, RtpCodec
from voicebot.transports.sip.rtp import RtpStream
from voicebot.transports.sip.sdp import (
    Answer,
    OfferNotAcceptable,
    answer_offer,
    make_offer,
    read_answer,
)
from voicebot.transports.sip.settings import SipSettings
from voicebot.transports.webrtc import LiveClock, OutputTrack, TrackSource

if TYPE_CHECKING:
    from voicebot.server.calls import CallManager
    from voicebot.server.sip_transfer import Referral, SipClient
    from voicebot.transports.sip.ports import RtpPorts

log = logging.getLogger(__name__)

NO_MEDIA_TIMEOUT = 1e9  # TrackSource's own timeout: the call watches RTP itself (holds pause it)
NO_ADDRESS = ("0.0.0.0", 9)  # where RTP would go before an answer says (nothing is sent)
ACK_TIMEOUT = 32.0  # s our late offer waits for the ACK's answer (64*T1, RFC 3261 §13.3.1.4)


class RtpCall(abc.ABC):
    """A phone call's media and pipeline, whoever called: ``SipCall`` (they called us)
    and ``OutboundCall`` (``server/sip_outbound.py``) add the dialog."""

    transport = "sip"

    def __init__(
        self, manager: CallManager, settings: SipSettings, client: SipClient | None = None
    ) -> None:
        self.manager = manager
        self.client = client  # sends our in-dialog requests (REFER)
        self.transfer_target: str | None = None  # the flow's last `transfer` target
        self.transfer_apology = ""  # what to say if that transfer fails
        self.referral: Referral | None = None
        self.settings = settings
        self.call_id = uuid.uuid4().hex[:12]
        self.reason: str | None = None
        self.task: asyncio.Task[None] | None = None
        self.clock = LiveClock()
        self.stream: RtpStream | None = None
        self.output = OutputTrack(self.clock.now)  # replaced by the call's own in ``_build``
        self.on_hold = False
        self._running = False
        self._closing = False
        self.idle = IdleWatch(manager.settings.idle_timeout)

    @property
    @abc.abstractmethod
    def sip_call_id(self) -> str:
        """The SIP dialog's Call-ID."""

    @abc.abstractmethod
    def _dialog(self) -> tuple[Dialog, tuple[str, int]]:
        """The dialog and where its in-dialog requests go."""

    @abc.abstractmethod
    def _bye(self) -> bool:
        """Send our BYE if the dialog is still up; False if it was not."""

    def _build(self, codec: RtpCodec) -> None:
        """The pipeline behind the stream (``self.stream``, bound with ``codec``)."""
        assert self.stream is not None
        config = self.manager.config
        self.source = TrackSource(NO_MEDIA_TIMEOUT, config.language)
        self.source.attach(self.stream.track)
        self.output = OutputTrack(self.clock.now, sample_rate=codec.spec.sample_rate)
        self.pipeline = build_call(
            config, self.source, self.output, self.clock, self.call_id, transport=self.transport
        )
        self.manager.observe(self.pipeline.ctx.bus, self.transport)
        self.pipeline.ctx.bus.subscribe(self._on_event)
        self.stream.on_dtmf = lambda key: self.dtmf(key, "rtp")

    def dtmf(self, key: str, via: str) -> bool:
        """A key the caller pressed (``rtp``: a telephone-event; ``info``: SIP INFO)."""
        if not self._running:
            return False
        log.info("call %s: key %r (%s)", self.call_id, key, via)
        return press(self.source, key, via)

    def _hold(self, answer: Answer) -> None:
        assert self.stream is not None
        self.on_hold = answer.on_hold
        self.stream.dtmf_payload_type = answer.dtmf_payload_type
        self.stream.renegotiated(answer.remote, answer.on_hold)

    # --- lifecycle ----------------------------------------------------------------
    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run(), name=f"sip:{self.call_id}")

    def hang_up(self, reason: str) -> None:
        """End the call (the first reason given is the one reported)."""
        if self.reason is None:
            self.reason = reason
        if self._closing:
            if self.referral is not None and reason == "hangup":
                self.referral.finish("hangup")  # the caller left while we transferred
            return
        if self._running:
            self.pipeline.hang_up(reason)
        elif self.task is not None and not self.task.done():
            self.task.cancel()

    async def _run(self) -> None:
        assert self.stream is not None
        loop = asyncio.get_running_loop()
        sender = loop.create_task(self.stream.send(self.output), name=f"sip:{self.call_id}:rtp")
        watchdog = loop.create_task(self._watch(), name=f"sip:{self.call_id}:watch")
        try:
            self._running = True
            reason = await self.pipeline.run()
            self.reason = self.reason or reason
        except asyncio.CancelledError:
            self.reason = self.reason or "cancelled"
        finally:
            self._running = False
            self._closing = True
            watchdog.cancel()
            await asyncio.gather(watchdog, return_exceptions=True)
            await self._close(sender)

    async def _close(self, sender: asyncio.Task[None]) -> None:
        try:
            if self.reason != "hangup":
                await self.output.drain()  # the goodbye's last words before the BYE
            if self.reason == "transfer" and self.transfer_target is not None:
                await self._transfer(self.transfer_target)
        finally:
            self.output.stop()
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
            if self._bye():  # no-op unless the dialog is still up
                log.info("call %s: BYE sent (%s)", self.call_id, self.reason)
            if self.stream is not None:
                self.stream.close()
            self.manager.release(self)

    async def _transfer(self, name: str) -> None:
        """Blind transfer (REFER) to the flow's target: a URI, or a name that the server's
        ``transfer_to`` maps to a SIP URI or a number (sent as a ``tel:`` URI)."""
        target = refer_target(name, self.manager.settings.transfer_to)
        if target is None or self.client is None:
            log.info(
                "call %s: transfer to %r: no SIP/tel URI for it, hanging up", self.call_id, name
            )
            return
        dialog, remote = self._dialog()
        self.referral = self.client.refer(dialog, target, remote)
        try:
            await self.referral.wait(self.settings.transfer_timeout)
        finally:
            self.client.referrals.pop(self.sip_call_id, None)
        referral = self.referral
        log.info(
            "call %s: transfer to %s: %s (%d)",
            self.call_id,
            target,
            referral.result,
            referral.status,
        )
        self.manager.metrics.transfers.labels(referral.result, self.transport).inc()
        self.pipeline.ctx.bus.emit(TransferResultEvent(target, referral.result, referral.status))
        if referral.result in ("refused", "failed", "timeout") and self.transfer_apology:
            # the caller is still on the line: say so before the BYE
            await say_after_end(self.pipeline, self.output, self.transfer_apology)
            await self.output.drain()

    # --- activity -----------------------------------------------------------------
    def _on_event(self, event: EventRecord) -> None:
        kind = event["type"]
        if kind == "interrupted":
            self.output.clear()
        self.idle.observe(event)
        if kind == "transfer":
            self.transfer_target = str(event["target"])
            self.transfer_apology = str(event.get("apology", ""))

    async def _watch(self) -> None:
        """Hang up on RTP silence (not while held) and on the server's idle timeout."""
        assert self.stream is not None
        rtp_timeout = self.settings.rtp_timeout
        while True:
            await asyncio.sleep(min(rtp_timeout / 4, self.idle.interval))
            if self.on_hold:
                self.stream.last_packet = time.monotonic()
            elif time.monotonic() - self.stream.last_packet > rtp_timeout:
                self.hang_up("rtp_timeout")
                return
            if self.idle.expired(self.pipeline.ctx):
                self.hang_up("idle_timeout")
                return

    def abort(self) -> None:
        """The call never started (CANCEL, failed answer): free what ``open`` took."""
        if self.stream is not None:
            self.stream.close()
        self.output.stop()


class SipCall(RtpCall):
    """A caller on the phone; ``open`` binds its RTP port and answers the INVITE."""

    def __init__(
        self,
        manager: CallManager,
        invite: IncomingCall,
        settings: SipSettings,
        client: SipClient | None = None,
    ) -> None:
        super().__init__(manager, settings, client)
        self.invite = invite
        self.answers = 0  # SDP answers given in this dialog (the o= version counts them)
        self.codec_name = ""  # once negotiated
        self.late_offer: SdpMessage | None = None  # our offer, for an INVITE without SDP
        self._ack: asyncio.Future[SipRequest] | None = None  # the ACK that answers it
        self._session_id = str(int(time.time()))

    @property
    def sip_call_id(self) -> str:
        return self.invite.call_id

    def _dialog(self) -> tuple[Dialog, tuple[str, int]]:
        return self.invite.dialog, self.invite.source_addr

    def _bye(self) -> bool:
        return self.invite.hangup() is not None

    async def open(self, local_ip: str, rtp_host: str, ports: RtpPorts | None = None) -> SdpMessage:
        """Bind the RTP port (of ``ports``' range) and get ready; the SDP for our 200 OK:
        the answer to the INVITE's offer (the pipeline is built), or for an INVITE
        without SDP our offer, answered by the ACK. Raises ``OfferNotAcceptable`` and
        ``NoRtpPort``. Nothing is sent to the caller yet."""
        s = self.settings
        offer = self.invite.sdp_offer
        if offer is None and self.invite.invite.body:  # multipart (SIP-I), …: not ours to read
            kind = self.invite.invite.content_type or "untyped"
            raise OfferNotAcceptable(f"the INVITE's body is {kind}, not application/sdp")
        if offer is None:  # late offer: the ACK will say codec and address
            first = RtpCodec(s.codecs[0])
            self.stream = await RtpStream.bind(rtp_host, first, NO_ADDRESS, s.jitter_ms, ports)
            self.late_offer = make_offer(
                local_ip, self.stream.local_port, s.codecs, self._session_id
            )
            self.answers = 1  # a later answer's o= version counts on from our offer's
            self._ack = asyncio.get_running_loop().create_future()
            return self.late_offer
        answer = answer_offer(offer, local_ip, 0, s.codecs)  # checks before binding
        codec = RtpCodec(answer.codec)
        self.stream = await RtpStream.bind(rtp_host, codec, answer.remote, s.jitter_ms, ports)
        answer = self._answer(local_ip)
        self._build(codec)
        self._hold(answer)
        self.codec_name = codec.spec.name
        return answer.sdp

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(
            self._answered(), name=f"sip:{self.call_id}"
        )

    async def _answered(self) -> None:
        """Run the call: at once, or after a late offer once the ACK's answer is read."""
        if self._ack is not None and not await self._read_ack(self._ack):
            return
        self.manager.started(self)
        await self._run()

    def acknowledged(self, ack: SipRequest) -> None:
        """The caller's ACK of our 200 OK (or of a re-INVITE's): a late offer's answer."""
        if self._ack is not None and not self._ack.done():
            self._ack.set_result(ack)

    async def _read_ack(self, pending: asyncio.Future[SipRequest]) -> bool:
        """Wait for the ACK and start the media it answers; False: the call is over."""
        assert self.stream is not None and self.late_offer is not None
        try:
            ack = await asyncio.wait_for(pending, ACK_TIMEOUT)
        except TimeoutError:  # over UDP aiosipua gives up first (on_ack_timeout: no_ack)
            self._unanswered("no_ack")
            return False
        except asyncio.CancelledError:  # hung up (the reason is set), or shutdown
            self._unanswered("cancelled")
            return False
        try:
            answer = ack_answer(ack, self.late_offer, self.settings.codecs)
        except OfferNotAcceptable as exc:
            log.warning(
                "call %s: the ACK brings no usable answer to our offer (%s): hanging up",
                self.call_id,
                exc,
            )
            self._unanswered("bad_ack")
            return False
        codec = RtpCodec(answer.codec)
        self.stream.answered(codec, answer.remote)
        self._build(codec)
        self._hold(answer)
        self.codec_name = codec.spec.name
        log.info("call %s: the ACK answers our offer (%s)", self.call_id, self.codec_name)
        return True

    def _unanswered(self, reason: str) -> None:
        """A late offer that came to nothing: our BYE (if the dialog is up), all released."""
        self.reason = self.reason or reason
        if self._bye():
            log.info("call %s: BYE sent (%s)", self.call_id, self.reason)
        self.abort()
        self.manager.release(self)

    def _answer(self, local_ip: str) -> Answer:
        assert self.stream is not None and self.invite.sdp_offer is not None
        answer = answer_offer(
            self.invite.sdp_offer,
            local_ip,
            self.stream.local_port,
            (self.stream.codec.spec,),  # the codec stays for the whole call
            session_id=self._session_id,
            version=self.answers,
        )
        self.answers += 1
        return answer

    def reinvited(self, local_ip: str) -> None:
        """A re-INVITE (hold, resume, a new address): answer it with the same codec."""
        if self._ack is not None and not self._ack.done():
            # our offer is not answered yet (RFC 3261 §14.2); reject() would end the dialog
            self.invite._send_response(491, "Request Pending")
            return
        if self.invite.sdp_offer is None or self.stream is None:
            self.invite.reject(488, "Not Acceptable Here")  # offerless re-INVITE: not supported
            return
        try:
            answer = self._answer(local_ip)
        except OfferNotAcceptable as exc:
            log.info("call %s: re-INVITE refused: %s", self.call_id, exc)
            self.invite.reject(488, "Not Acceptable Here")
            return
        self._hold(answer)
        self.invite.accept(answer.sdp)
        log.info("call %s: %s", self.call_id, "on hold" if answer.on_hold else "resumed")


def ack_answer(ack: SipRequest, offer: SdpMessage, codecs: tuple[CodecSpec, ...]) -> Answer:
    """What the ACK's SDP answers to our late ``offer``; raises ``OfferNotAcceptable``."""
    kind = (ack.content_type or "").split(";")[0].strip().lower()
    if not ack.body:
        raise OfferNotAcceptable("the ACK has no SDP")
    if kind != "application/sdp":
        raise OfferNotAcceptable(f"the ACK's body is {kind or 'untyped'}, not application/sdp")
    try:
        sdp = parse_sdp(ack.text)
    except ValueError as exc:
        raise OfferNotAcceptable(f"the ACK's SDP does not parse: {exc}") from exc
    return read_answer(sdp, offer, codecs)
