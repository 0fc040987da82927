"""One call over a WebSocket media stream (Twilio, Telnyx, Vonage, raw PCM) and its pipeline.

Admitted through the ``CallManager`` when the socket opens (the same call
limit, metrics, events and outcome store as WebRTC and SIP calls; at the
limit the socket closes with 1013), built once the provider's ``start`` says
the audio format, and ended by the provider's ``stop`` (``hangup``), the
socket dropping (``peer_gone``), the flow's ``end`` or ``transfer`` (the
goodbye is played and confirmed by the provider's marks before the socket
closes; a Twilio, Telnyx or Vonage call with the provider's account set is then
transferred through its REST API, ``provider_transfer.py``), the idle timeout,
no ``start`` within the connect timeout, a protocol error (``bad_request``,
closed with 1008) or server shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import TYPE_CHECKING, Any

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from voicebot.call import build_call, say_after_end
from voicebot.events import EventRecord
from voicebot.server.idle import IdleWatch
from voicebot.server.phone_providers import PROVIDERS
from voicebot.server.provider_transfer import transfer_call
from voicebot.transports.dtmf import press
from voicebot.transports.media_stream.messages import Message, ProtocolError, Start, StreamProtocol
from voicebot.transports.media_stream.stream import MediaStream, StreamClosed
from voicebot.transports.webrtc import LiveClock, OutputTrack, TrackSource

if TYPE_CHECKING:
    from voicebot.server.calls import CallManager

log = logging.getLogger(__name__)

PLAYED_GRACE = 3.0  # s the provider gets to confirm the goodbye was heard
CLOSE_NORMAL, CLOSE_POLICY, CLOSE_TRY_LATER = 1000, 1008, 1013


class StarletteSocket:
    """A Starlette ``WebSocket`` as a ``MessageSocket``."""

    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket
        self.close_code: int | None = None

    async def receive(self) -> Message | None:
        try:
            message = await self.websocket.receive()
        except WebSocketDisconnect as exc:
            self.close_code = exc.code
            return None
        except RuntimeError:  # receiving after the disconnect
            return None
        if message["type"] == "websocket.disconnect":
            self.close_code = int(message.get("code", 1000))
            return None
        data: Message | None = message.get("bytes")
        return data if data is not None else str(message.get("text", ""))

    async def send(self, message: Message) -> None:
        if isinstance(message, bytes):
            await self.websocket.send_bytes(message)
        else:
            await self.websocket.send_text(message)

    async def close(self, code: int, reason: str) -> None:
        if self.websocket.application_state != WebSocketState.DISCONNECTED:
            with contextlib.suppress(Exception):  # the peer is gone already
                await self.websocket.close(code, reason)


class StreamCall:
    """A caller behind a provider's media stream; ``start`` runs it as ``task``."""

    def __init__(self, manager: CallManager, socket: StarletteSocket, protocol: StreamProtocol):
        self.manager = manager
        self.socket = socket
        self.transport = protocol.name
        self.call_id = uuid.uuid4().hex[:12]
        self.reason: str | None = None
        self.task: asyncio.Task[None] | None = None
        self.clock = LiveClock()
        self.stream = MediaStream(socket, protocol, self.clock.now)
        self.output: OutputTrack = self.stream.output
        self.stream_start: Start | None = None  # the provider's start: format, ids, parameters
        self.transfer_target: str | None = None  # the flow's transfer target, once entered
        self.transfer_result: str | None = None  # what the provider's REST API made of it
        self.transfer_apology = ""  # what the bot says if the provider refuses the transfer
        self._running = False
        self._closing = False
        self.idle = IdleWatch(manager.settings.idle_timeout)

    def start(self, query: dict[str, str]) -> None:
        self.task = asyncio.get_running_loop().create_task(
            self._run(query), name=f"{self.transport}:{self.call_id}"
        )

    def hang_up(self, reason: str) -> None:
        """End the call (the first reason given is the one reported)."""
        if self.reason is None:
            self.reason = reason
        if self._closing:
            return
        if self._running:
            self.pipeline.hang_up(reason)
        elif self.task is not None and not self.task.done():
            self.task.cancel()  # still waiting for the stream's start

    # --- lifecycle ----------------------------------------------------------------
    async def _run(self, query: dict[str, str]) -> None:
        loop = asyncio.get_running_loop()
        tasks: list[asyncio.Task[Any]] = []
        writer = loop.create_task(self.stream.write(), name=f"{self.call_id}:write")
        code = CLOSE_NORMAL
        try:
            try:
                async with asyncio.timeout(self.manager.settings.connect_timeout):
                    start = await self.stream.open(query)
            except TimeoutError:
                self.reason = self.reason or "connect_timeout"
                return
            except StreamClosed:
                self.reason = self.reason or "peer_gone"
                return
            except ValueError as exc:  # ProtocolError, an unsupported format
                log.info("%s call %s refused: %s", self.transport, self.call_id, exc)
                self.reason, code = "bad_request", CLOSE_POLICY
                return
            self._build(start)
            self.manager.started(self)
            tasks.append(loop.create_task(self._read(), name=f"{self.call_id}:read"))
            tasks.append(loop.create_task(self.stream.send_audio(), name=f"{self.call_id}:send"))
            watch = self.idle.run(self.pipeline.ctx, self.hang_up)
            tasks.append(loop.create_task(watch, name=f"{self.call_id}:idle"))
            self._running = True
            reason = await self.pipeline.run()
            self.reason = self.reason or reason
        except asyncio.CancelledError:
            self.reason = self.reason or "cancelled"
        finally:
            self._running = False
            self._closing = True
            await self._close(tasks, writer, code)

    def _build(self, start: Start) -> None:
        config = self.manager.config
        self.stream_start = start
        self.output = self.stream.output  # now at the stream's sample rate
        self.source = TrackSource(self.manager.settings.media_timeout, config.language)
        self.source.attach(self.stream.track)
        self.source.on_ended = lambda: self.hang_up("peer_gone")
        self.stream.on_hangup = lambda: self.hang_up("hangup")
        self.stream.on_text = self.source.push_text
        self.stream.on_dtmf = self._on_dtmf
        self.pipeline = build_call(
            config, self.source, self.output, self.clock, self.call_id, transport=self.transport
        )
        hello = {**self.manager.hello(self.call_id), "sample_rate": start.sample_rate}
        self.stream.send(self.stream.protocol.hello(hello))  # before call_started
        bus = self.pipeline.ctx.bus
        self.manager.observe(bus, self.transport)
        bus.subscribe(self._on_event)
        log.info(
            "%s call %s: stream %s of call %s (%s %d Hz)",
            self.transport,
            self.call_id,
            start.stream_id or "-",
            start.call_id or "-",
            start.encoding,
            start.sample_rate,
        )

    async def _read(self) -> None:
        try:
            reason = await self.stream.read()
        except ProtocolError as exc:
            log.info("%s call %s: %s", self.transport, self.call_id, exc)
            reason = "bad_request"
        self.hang_up(reason)

    async def _close(
        self, tasks: list[asyncio.Task[Any]], writer: asyncio.Task[None], code: int
    ) -> None:
        try:
            if tasks and self.reason not in ("hangup", "peer_gone", "bad_request"):
                await self.output.drain()  # the goodbye's last frames go out …
                await asyncio.sleep(0.05)  # … and the mark after them
                await self.stream.played(PLAYED_GRACE)  # … and the caller has heard it
            if self.reason == "transfer" and self.transfer_target is not None:
                await self._transfer(self.transfer_target)
                if self.transfer_result == "failed" and self.transfer_apology:
                    # the provider refused: the caller is still on the stream
                    await say_after_end(self.pipeline, self.output, self.transfer_apology)
                    await self.output.drain()
                    await asyncio.sleep(0.05)
                    await self.stream.played(PLAYED_GRACE)
        finally:
            self.output.stop()
            self.stream.track.stop()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.stream.finish()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(writer, 1.0)  # what is queued goes out first
            await self.socket.close(code, self.reason or "completed")
            self.manager.release(self)
            log.info(
                "%s call %s ended (%s): %d bot frames sent, %d heard",
                self.transport,
                self.call_id,
                self.reason,
                self.stream.frames_sent,
                self.stream.heard_frames,
            )

    async def _transfer(self, target: str) -> None:
        """Hand the caller on through the provider (before the socket closes: a call whose
        stream ends without new instructions is hung up)."""
        if self.transport in PROVIDERS and self.stream_start is not None:
            call_id = self.stream_start.call_id
            self.transfer_result = await transfer_call(
                self.manager, self.transport, call_id, target
            )

    # --- events -------------------------------------------------------------------
    def _on_event(self, event: EventRecord) -> None:
        kind = event["type"]
        if kind == "transfer":
            self.transfer_target = str(event["target"])
            self.transfer_apology = str(event.get("apology", ""))
        if kind == "interrupted":
            self.stream.clear()
        self.idle.observe(event)
        self.stream.send(self.stream.protocol.event(event))

    def _on_dtmf(self, digit: str) -> None:
        """A key the provider reports (Twilio's and Telnyx's ``dtmf``, Vonage's
        ``websocket:dtmf``): dialog input, as on a SIP call."""
        if not press(self.source, digit, via="stream"):
            log.info("%s call %s: DTMF %r not taken", self.transport, self.call_id, digit)


async def serve_stream(
    websocket: WebSocket, manager: CallManager, protocol: StreamProtocol
) -> None:
    """Answer one media-stream WebSocket: admit the call and run it to its end."""
    from voicebot.server.calls import Busy

    await websocket.accept()
    socket = StarletteSocket(websocket)
    call = StreamCall(manager, socket, protocol)
    try:
        manager.admit(call)
    except Busy as exc:
        await socket.close(CLOSE_TRY_LATER, str(exc)[:120])
        return
    call.start(dict(websocket.query_params))
    assert call.task is not None
    await asyncio.shield(call.task)
