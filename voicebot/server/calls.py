"""Live calls: admission, one pipeline per peer connection, and a clean end.

A call is built when its offer arrives (so a bad offer costs nothing but a
400) and starts running once the peer has connected and aiortc pulls our
audio. It ends on the caller's hang-up, the flow's ``end``, an idle timeout,
the peer vanishing (connection failed or closed, or its audio stopping) or
server shutdown; then every task, thread and buffer of the call is released:
the pipeline's stages, the peer connection (its decoder thread, transports,
tracks) and the registry entry.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription

from voicebot.call import build_call
from voicebot.config import PipelineConfig
from voicebot.errors import VoicebotError
from voicebot.events import EventBus, EventRecord, Listener
from voicebot.server.idle import IdleWatch
from voicebot.server.metrics import Metrics
from voicebot.transports.dtmf import press
from voicebot.transports.jitter import set_audio_jitter
from voicebot.transports.webrtc import EventBridge, LiveClock, OutputTrack, TrackSource

if TYPE_CHECKING:
    from voicebot.transports.media_stream.telnyx_rest import TelnyxAccount
    from voicebot.transports.media_stream.twilio_rest import TwilioAccount
    from voicebot.transports.media_stream.vonage_rest import VonageAccount
    from voicebot.transports.sip.settings import SipSettings

log = logging.getLogger(__name__)


@dataclass
class IceServer:
    """A STUN or TURN server handed to aiortc (and to nobody else)."""

    urls: list[str]
    username: str | None = None
    credential: str | None = None


@dataclass
class ServerSettings:
    """How the server admits and runs calls (the pipeline YAML says what a call does)."""

    max_calls: int = 4
    idle_timeout: float = 60.0  # no caller speech, typed text or bot audio for this long
    connect_timeout: float = 15.0  # offer answered -> media flowing
    media_timeout: float = 10.0  # the caller's audio track stays silent (no packets) this long
    ice_servers: list[IceServer] = field(default_factory=list)  # none: closed networks, LANs
    token: str | None = None  # bearer token required for /offer
    cors_origins: list[str] = field(default_factory=list)  # none: same-origin only
    api_keys: tuple[str, ...] = ()  # keys for the /v1 speech API; none: open
    jitter_ms: int = 20  # inbound audio held back before the VAD (aiortc: 80); see jitter.py
    sip: SipSettings | None = None  # answer phone calls over SIP too (transports/sip/)
    public_host: str | None = None  # host[:port] providers reach us at (TwiML's wss:// URL)
    twilio_auth_token: str | None = None  # set: Twilio's webhooks and /twilio/media are signed
    stream_token: str | None = None  # set: /telnyx/media, /vonage/media, /ws/audio need it
    # set: transfers and dial-outs via the provider's REST API (server/phone_providers.py)
    twilio_account: TwilioAccount | None = None
    telnyx_account: TelnyxAccount | None = None
    vonage_account: VonageAccount | None = None
    transfer_to: dict[str, str] = field(default_factory=dict)  # flow target -> number ("": any)

    def rtc_configuration(self) -> RTCConfiguration:
        return RTCConfiguration(
            iceServers=[
                RTCIceServer(urls=s.urls, username=s.username, credential=s.credential)
                for s in self.ice_servers
            ]
        )


class OfferError(VoicebotError, ValueError):
    """The offer cannot be answered (bad SDP, no audio section)."""


class Busy(VoicebotError, RuntimeError):
    """The server is at its call limit."""


class LiveCall(Protocol):
    """What the registry needs of a call, whatever its transport."""

    call_id: str
    transport: str  # "webrtc", "sip", "twilio", "raw", …: labels metrics and call_started
    reason: str | None
    task: asyncio.Task[None] | None
    output: OutputTrack

    def hang_up(self, reason: str) -> None: ...


class Call:
    """One caller: a peer connection and the pipeline behind it."""

    transport = "webrtc"

    def __init__(self, manager: CallManager, call_id: str) -> None:
        config, settings = manager.config, manager.settings
        self.manager = manager
        self.call_id = call_id
        self.settings = settings
        self.reason: str | None = None
        self.clock = LiveClock()
        self.source = TrackSource(settings.media_timeout, config.language)
        self.output = OutputTrack(self.clock.now)
        self.pipeline = build_call(
            config, self.source, self.output, self.clock, call_id, transport=self.transport
        )
        self.pc = RTCPeerConnection(settings.rtc_configuration())
        self.bridge = EventBridge(
            manager.hello(call_id),
            on_hangup=lambda: self.hang_up("hangup"),
            on_text=self.source.push_text,
            on_dtmf=lambda key: press(self.source, key, "webrtc"),
        )
        self.source.on_ended = lambda: self.hang_up("peer_gone")
        bus = self.pipeline.ctx.bus
        bus.subscribe(self.bridge)
        manager.observe(self.pipeline.ctx.bus, self.transport)
        bus.subscribe(self._on_event)
        self._connected = asyncio.Event()
        self._running = False
        self._closing = False
        self.idle = IdleWatch(settings.idle_timeout)
        self.task: asyncio.Task[None] | None = None

    # --- signalling ---------------------------------------------------------------
    async def negotiate(self, offer: RTCSessionDescription) -> RTCSessionDescription:
        pc = self.pc
        pc.on("track", self._on_track)
        pc.on("datachannel", self._on_datachannel)
        pc.on("connectionstatechange", self._on_connection_state)
        try:
            await pc.setRemoteDescription(offer)
        except Exception as exc:  # aiortc's parse and negotiation errors
            raise OfferError(f"cannot use the offer: {exc or type(exc).__name__}") from exc
        audio = [t for t in pc.getTransceivers() if t.kind == "audio"]
        if not audio:
            raise OfferError("the offer has no audio section")
        for transceiver in audio:  # before any packet; raises (not a bad offer) if aiortc changed
            set_audio_jitter(transceiver.receiver, self.settings.jitter_ms)
        try:
            pc.addTrack(self.output)
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as exc:
            raise OfferError(f"cannot use the offer: {exc or type(exc).__name__}") from exc
        return pc.localDescription

    def _on_track(self, track: Any) -> None:
        if track.kind == "audio":
            self.source.attach(track)

    def _on_datachannel(self, channel: Any) -> None:
        if channel.label == "events":
            self.bridge.attach(channel)

    def _on_connection_state(self) -> None:
        state = self.pc.connectionState
        log.debug("call %s: connection %s", self.call_id, state)
        if state == "connected":
            self._connected.set()
        elif state in ("failed", "closed"):
            self.hang_up("peer_gone")

    # --- lifecycle ----------------------------------------------------------------
    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run(), name=f"call:{self.call_id}")

    def hang_up(self, reason: str) -> None:
        """End the call (the first reason given is the one reported)."""
        if self.reason is None:
            self.reason = reason
        if self._closing:
            return
        if self._running:
            self.pipeline.hang_up(reason)
        elif self.task is not None and not self.task.done():
            self.task.cancel()  # still connecting: nothing to wind down

    async def _run(self) -> None:
        watchdog: asyncio.Task[None] | None = None
        try:
            try:
                await asyncio.wait_for(self._media_flowing(), self.settings.connect_timeout)
            except TimeoutError:
                self.reason = self.reason or "connect_timeout"
                return
            if self.reason is not None:
                return
            self._running = True
            watchdog = asyncio.get_running_loop().create_task(
                self.idle.run(self.pipeline.ctx, self.hang_up), name=f"call:{self.call_id}:idle"
            )
            reason = await self.pipeline.run()
            self.reason = self.reason or reason
        except asyncio.CancelledError:
            self.reason = self.reason or "cancelled"
        finally:
            self._running = False
            self._closing = True
            if watchdog is not None:
                watchdog.cancel()
                await asyncio.gather(watchdog, return_exceptions=True)
            await self._close()

    async def _media_flowing(self) -> None:
        await self._connected.wait()
        await self.output.started.wait()

    async def _close(self) -> None:
        try:
            await self.output.drain()
            await self.bridge.drain()
        finally:
            self.output.stop()
            await self.pc.close()
            self.manager.release(self)

    # --- activity ---------------------------------------------------------------
    def _on_event(self, event: EventRecord) -> None:
        kind = event["type"]
        if kind == "interrupted":
            self.output.clear()  # the frames already handed over are all that is heard
        self.idle.observe(event)


def _load_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim`` (None elsewhere)."""
    name = ctypes.util.find_library("c")
    return getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None


_malloc_trim = _load_trim()


def _trim() -> None:
    if _malloc_trim is not None:
        _malloc_trim(0)


class CallManager:
    """The registry of live calls: admission control and shutdown."""

    def __init__(self, config: PipelineConfig, settings: ServerSettings, metrics: Metrics) -> None:
        self.config = config
        self.settings = settings
        self.metrics = metrics
        self.calls: dict[str, LiveCall] = {}
        self.total = 0
        self.listeners: list[Listener] = []  # get every event of every call (tests, logs)
        metrics.calls_max.set(settings.max_calls)

    def observe(self, bus: EventBus, transport: str) -> None:
        """Feed a new call's events to the metrics (labelled ``transport``) and listeners."""
        bus.subscribe(self.metrics.observer(transport))
        for listener in self.listeners:
            bus.subscribe(listener)

    def admit(self, call: LiveCall) -> None:
        """Count ``call`` in (before its first await: no overbooking); raises ``Busy``."""
        if len(self.calls) >= self.settings.max_calls:
            self.metrics.rejected.labels("busy", call.transport).inc()
            raise Busy(f"at the limit of {self.settings.max_calls} concurrent calls")
        self.calls[call.call_id] = call
        self.metrics.calls_active.set(len(self.calls))

    def withdraw(self, call: LiveCall) -> None:
        """Forget a call that was admitted but never started (its offer failed)."""
        self.calls.pop(call.call_id, None)
        self.metrics.calls_active.set(len(self.calls))

    def started(self, call: LiveCall) -> None:
        self.total += 1

    def hello(self, call_id: str) -> dict[str, Any]:
        """What the caller learns first (answer JSON and the data channel's first message)."""
        config = self.config
        return {
            "call_id": call_id,
            "pipeline": config.name,
            "language": config.language,
            "latency_budget_ms": config.latency_budget_ms,
        }

    async def accept(self, offer: RTCSessionDescription) -> tuple[Call, RTCSessionDescription]:
        """Admit a caller and answer its offer; raises ``Busy`` or ``OfferError``."""
        if len(self.calls) >= self.settings.max_calls:
            self.metrics.rejected.labels("busy", Call.transport).inc()
            raise Busy(f"at the limit of {self.settings.max_calls} concurrent calls")
        call = Call(self, uuid.uuid4().hex[:12])
        self.admit(call)
        try:
            answer = await call.negotiate(offer)
        except BaseException:
            call.reason = "bad_offer"
            await call.pc.close()
            self.withdraw(call)
            raise
        self.started(call)
        call.start()
        return call, answer

    def release(self, call: LiveCall) -> None:
        if self.calls.pop(call.call_id, None) is not None:
            self.metrics.calls_active.set(len(self.calls))
            self.metrics.calls.labels(call.reason or "completed", call.transport).inc()
            self.metrics.output_drops(call.output.drops)
            asyncio.get_running_loop().call_soon(self._collect)

    def _collect(self) -> None:
        """Free the ended call now rather than at some later full collection.

        A call is a web of reference cycles (stages and edges, event listeners,
        aiortc's objects) that holds FFmpeg resamplers, each with its own worker
        threads; only the cycle collector frees them. With the engines frozen
        out of the collector's view after warm-up (``gc.freeze``), a collection
        costs a millisecond or two. ``malloc_trim`` then hands the freed heap
        back to the system, so the process's memory follows its live calls.
        """
        start = time.perf_counter()
        gc.collect()
        _trim()
        log.debug("collected after call in %.1f ms", (time.perf_counter() - start) * 1000)

    async def close(self, grace: float = 5.0) -> None:
        """Server shutdown: hang up every call and wait for each to wind down."""
        calls = list(self.calls.values())
        for call in calls:
            call.hang_up("server_shutdown")
        tasks = [c.task for c in calls if c.task is not None]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
