"""One call's RTP stream over UDP: the caller's packets in, the bot's voice out.

Inbound, packets go through the server's own ``AudioJitterBuffer`` (a late
packet counts as lost and costs 20 ms; the delay never grows, see
``transports/jitter.py``), are decoded and queued as frames on an
``RtpTrack``, which ``TrackSource`` reads like a WebRTC track: it fills lost
frames with silence from the RTP timestamps, so the VAD's timeline stays the
call's. Outbound, ``send`` pulls the bot's paced 20 ms frames from an
``OutputTrack`` (silence while the bot is quiet, so NAT bindings stay open and
the far end hears a steady stream) and sends one packet per frame.

The socket comes from ``ports.RtpPorts`` (an even port of ``--rtp-ports``, or
any free one) and its port goes back there on ``close``.

Symmetric RTP: media goes to where the caller's packets come from, not only
to the address in its SDP, so callers behind NAT hear the bot. The address
latches on the first packet and again when the stream's SSRC changes.

Key presses come as RFC 4733 telephone-events on the payload type the SDP
agreed (``dtmf_payload_type``): ``TelephoneEvents`` makes one key of each event
and ``on_dtmf(key)`` gets it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging
import random
import time
from collections.abc import Callable
from typing import Any, cast

import av
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from aiortc.rtp import RtpPacket

from voicebot.transports.dtmf import TelephoneEvents
from voicebot.transports.jitter import AudioJitterBuffer, frames_for
from voicebot.transports.sip.codecs import RtpCodec
from voicebot.transports.sip.ports import RtpPorts
from voicebot.transports.webrtc import OutputTrack

log = logging.getLogger(__name__)

MAX_QUEUED = 50  # decoded frames waiting for the graph (1 s); older ones are dropped
_RTCP_TYPES = range(72, 77)  # RTCP packets on the RTP port show up as these payload types


class RtpTrack(MediaStreamTrack):
    """Decoded caller audio as an audio track: what ``TrackSource`` reads."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._frames: asyncio.Queue[av.AudioFrame | None] = asyncio.Queue()
        self.dropped = 0

    def put(self, frame: av.AudioFrame) -> None:
        if self._frames.qsize() >= MAX_QUEUED:
            with contextlib.suppress(asyncio.QueueEmpty):
                self._frames.get_nowait()
                self.dropped += 1
        self._frames.put_nowait(frame)

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        frame = await self._frames.get()
        if frame is None:
            raise MediaStreamError
        return frame

    def stop(self) -> None:
        if self.readyState == "live":
            self._frames.put_nowait(None)
        super().stop()


class RtpStream(asyncio.DatagramProtocol):
    """The call's RTP socket: receive, reorder, decode; encode and send."""

    def __init__(self, codec: RtpCodec, remote: tuple[str, int], jitter_ms: int) -> None:
        self.codec = codec
        self.remote = remote  # latched to the caller's real source (symmetric RTP)
        self.track = RtpTrack()
        self.sending = True  # False while the caller holds the call
        self.packets_in = 0
        self.packets_out = 0
        self.last_packet = time.monotonic()  # the answer counts as the first sign of life
        self._jitter_frames = frames_for(jitter_ms)
        self._jitter = AudioJitterBuffer(self._jitter_frames)
        self._remote_ssrc: int | None = None
        self.dtmf_payload_type: int | None = None  # telephone-event's, as the SDP agreed
        self.on_dtmf: Callable[[str], object] | None = None
        self._events = TelephoneEvents()
        self._transport: asyncio.DatagramTransport | None = None
        self._release: Callable[[], None] | None = None  # gives the port back to the range
        self._time_base = fractions.Fraction(1, codec.spec.clock_rate)
        self._ssrc = random.getrandbits(32)
        self._sequence = random.getrandbits(16)
        self._timestamp = random.getrandbits(32)

    @classmethod
    async def bind(
        cls,
        host: str,
        codec: RtpCodec,
        remote: tuple[str, int],
        jitter_ms: int,
        ports: RtpPorts | None = None,
    ) -> RtpStream:
        """A stream on a free UDP port of ``host``, of ``ports``' range if it has one
        (raises ``NoRtpPort`` when none is free); ``close`` gives the port back."""
        ports = ports or RtpPorts()
        sock = ports.take(host)
        port = int(sock.getsockname()[1])
        loop = asyncio.get_running_loop()
        try:
            _, stream = await loop.create_datagram_endpoint(
                lambda: cls(codec, remote, jitter_ms), sock=sock
            )
        except BaseException:
            sock.close()
            ports.release(port)
            raise
        stream._release = lambda: ports.release(port)
        return stream

    @property
    def local_port(self) -> int:
        assert self._transport is not None
        return int(self._transport.get_extra_info("sockname")[1])

    def answered(self, codec: RtpCodec, remote: tuple[str, int]) -> None:
        """A call we placed: the callee's answer says the codec and where to send."""
        self.codec = codec
        self._time_base = fractions.Fraction(1, codec.spec.clock_rate)
        self.remote = remote
        self.last_packet = time.monotonic()

    def renegotiated(self, remote: tuple[str, int], on_hold: bool) -> None:
        """A re-INVITE's outcome (same codec): maybe a new address, hold or resume."""
        if self._remote_ssrc is None:  # not latched yet: the SDP is all we know
            self.remote = remote
        self.sending = not on_hold
        self.last_packet = time.monotonic()

    # --- asyncio.DatagramProtocol -------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's UDP transport is not an asyncio.DatagramTransport subclass, but acts as one
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        if len(data) < 12 or data[1] & 0x7F in _RTCP_TYPES:
            return
        try:
            packet = RtpPacket.parse(data)
        except ValueError:
            return
        if packet.payload_type == self.dtmf_payload_type:
            self.last_packet = time.monotonic()
            for key in self._events.feed(packet.payload, packet.timestamp):
                if self.on_dtmf is not None:
                    self.on_dtmf(key)
            return
        if packet.payload_type != self.codec.spec.payload_type:
            return  # comfort noise, other payload types: not for us
        self.last_packet = time.monotonic()
        self.packets_in += 1
        if packet.ssrc != self._remote_ssrc:  # a new stream: follow it
            self._remote_ssrc = packet.ssrc
            self._jitter = AudioJitterBuffer(self._jitter_frames)
            self.remote = (str(addr[0]), int(addr[1]))
        # The buffer reads ``_data``, the payload aiortc's receiver attaches after
        # depayloading (for G.711/G.722, the payload itself); RtpPacket declares no such field.
        setattr(packet, "_data", packet.payload)  # noqa: B010
        _, released = self._jitter.add(packet)
        if released is None:
            return
        try:
            frames = self.codec.decode(released.data)
        except av.FFmpegError:
            return
        pts = released.timestamp
        for frame in frames:
            frame.pts = pts
            frame.time_base = self._time_base
            pts += frame.samples * self.codec.spec.clock_rate // self.codec.spec.sample_rate
            self.track.put(frame)

    def error_received(self, exc: Exception) -> None:
        log.debug("rtp: %s", exc)  # ICMP port unreachable: the caller's socket is gone

    # --- sending ------------------------------------------------------------------
    async def send(self, output: OutputTrack) -> None:
        """Send the bot's voice, one packet per 20 ms frame, until the output stops."""
        first = True
        while True:
            try:
                frame = await output.recv()
            except MediaStreamError:
                return
            payload = self.codec.encode(frame.to_ndarray().reshape(-1))
            self._timestamp = (self._timestamp + self.codec.timestamp_step) % 2**32
            self._sequence = (self._sequence + 1) % 2**16
            if not self.sending or self._transport is None or not payload:
                continue
            packet = RtpPacket(
                payload_type=self.codec.spec.payload_type,
                marker=int(first),
                sequence_number=self._sequence,
                timestamp=self._timestamp,
                ssrc=self._ssrc,
                payload=payload,
            )
            first = False
            self._transport.sendto(packet.serialize(), self.remote)
            self.packets_out += 1

    def close(self) -> None:
        self.track.stop()
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        if self._release is not None:
            self._release()
            self._release = None
