"""One phone call: a SIP dialog, its RTP stream, and the pipeline behind them.

The call answers at once (200 OK with our SDP) and the pipeline starts with
it, so the greeting is the first thing the caller hears. It ends on the
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
import contextlib
import logging
import time
import uuid
from typing import TYPE_CHECKING

from aiosipua import IncomingCall
from aiosipua.dialog import Dialog

from voicebot.call import build_call, say_after_end
from voicebot.dialog.transfer import refer_target
from voicebot.events import EventRecord, TransferResultEvent
from voicebot.server.idle import IdleWatch
from voicebot.transports.dtmf import press
from voicebot.transports.sip.codecs import RtpCodec
from voicebot.transports.sip.rtp import RtpStream
from voicebot.transports.sip.sdp import Answer, OfferNotAcceptable, answer_offer
from voicebot.transports.sip.settings import SipSettings
from voicebot.transports.webrtc import LiveClock, OutputTrack, TrackSource

if TYPE_CHECKING:
    from voicebot.server.calls import CallManager
    from voicebot.server.sip_transfer import Referral, SipClient

log = logging.getLogger(__name__)

NO_MEDIA_TIMEOUT = 1e9  # TrackSource's own timeout: the call watches RTP itself (holds pause it)


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
        with contextlib.suppress(AttributeError):
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
        self._session_id = str(int(time.time()))

    @property
    def sip_call_id(self) -> str:
        return self.invite.call_id

    def _dialog(self) -> tuple[Dialog, tuple[str, int]]:
        return self.invite.dialog, self.invite.source_addr

    def _bye(self) -> bool:
        return self.invite.hangup() is not None

    async def open(self, local_ip: str, rtp_host: str) -> Answer:
        """Negotiate the offer, bind the RTP port and build the pipeline; raises
        ``OfferNotAcceptable``. Nothing is sent to the caller yet."""
        offer = self.invite.sdp_offer
        if offer is None:
            raise OfferNotAcceptable("INVITE without an SDP offer (late offer is not supported)")
        answer = answer_offer(offer, local_ip, 0, self.settings.codecs)  # checks before binding
        codec = RtpCodec(answer.codec)
        self.stream = await RtpStream.bind(rtp_host, codec, answer.remote, self.settings.jitter_ms)
        answer = self._answer(local_ip)
        self._build(codec)
        self._hold(answer)
        return answer

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
