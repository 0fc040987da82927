"""The transport-neutral core of a media-stream call: audio both ways, marks, ``clear``.

Caller audio (``Media``) is decoded (``audio.py``) and queued on a track that
``TrackSource`` reads like a WebRTC track. The bot's voice leaves paced at real
time: ``StreamOutput`` hands out one 20 ms frame per tick, and only frames with
bot audio are sent (a provider plays silence when it has nothing), so the
provider holds little more than the frame in flight and a barge-in's ``clear``
has almost nothing left to drop.

Marks say what the caller has heard: after every ``MARK_EVERY`` frames and at
the end of each stretch of bot audio the stream sends a mark, and the
provider answers with the same name once the audio before it has played.
``heard_frames`` counts the frames sent before the last answered mark: what
the caller has certainly heard. A ``clear`` makes the provider answer the
marks still pending at once; those answers do not count as heard.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Protocol

import numpy as np
from aiortc.mediastreams import MediaStreamError

from voicebot.errors import VoicebotError
from voicebot.transports.media_stream.audio import StreamAudio
from voicebot.transports.media_stream.messages import (
    Dtmf,
    Hangup,
    Mark,
    Media,
    Message,
    Start,
    Stop,
    StreamProtocol,
    TypedText,
)
from voicebot.transports.sip.rtp import RtpTrack
from voicebot.transports.webrtc import OutputTrack

log = logging.getLogger(__name__)

MARK_EVERY = 25  # frames (0.5 s) of bot audio between marks
MAX_OUTBOX = 500  # messages waiting for the socket (10 s of audio); the oldest go first


class MessageSocket(Protocol):
    """A WebSocket as the stream needs it (the server adapts Starlette's)."""

    close_code: int | None  # the peer's close code, once it closed (1000: a clean close)

    async def receive(self) -> Message | None:
        """The next message; None once the socket has closed."""

    async def send(self, message: Message) -> None: ...

    async def close(self, code: int, reason: str) -> None: ...


class StreamClosed(VoicebotError, ConnectionError):
    """The socket closed (or the provider stopped) before the stream started."""


class StreamOutput(OutputTrack):
    """``OutputTrack``'s paced buffer, pulled by the stream's sender instead of aiortc."""

    async def next_frame(self) -> np.ndarray | None:
        """Wait for the next 20 ms tick: the bot's frame due by then, or None (silence)."""
        if self.readyState != "live":
            raise MediaStreamError
        self.started.set()
        tick = await self._pacer.wait()
        if self.readyState != "live":
            raise MediaStreamError
        self._pacer.k += 1
        pcm = self._take(tick)
        return None if pcm is self._silence else pcm


class MediaStream:
    """One stream's socket, protocol and audio; the call (``server/stream_call.py``) runs it."""

    def __init__(
        self, socket: MessageSocket, protocol: StreamProtocol, now: Callable[[], float]
    ) -> None:
        self.socket = socket
        self.protocol = protocol
        self.start: Start | None = None
        self.audio: StreamAudio | None = None
        self.track = RtpTrack()
        self.output = StreamOutput(now, sample_rate=8000)
        self.on_dtmf: Callable[[str], None] = lambda digit: None
        self.on_hangup: Callable[[], None] = lambda: None
        self.on_text: Callable[[str], bool] = lambda text: False
        self.frames_in = 0
        self.frames_sent = 0
        self.heard_frames = 0  # bot frames the provider confirmed as played
        self.marks_acked = 0
        self.clears = 0
        self.outbox_drops = 0
        self._now = now
        self._outbox: asyncio.Queue[Message | None] = asyncio.Queue()
        self._marks: dict[str, int] = {}  # pending: name -> frames sent before it
        self._cleared: set[str] = set()  # pending when a clear went out: not heard
        self._unmarked = 0
        self._mark_seq = 0
        self._all_heard = asyncio.Event()
        self._all_heard.set()

    # --- starting -------------------------------------------------------------------
    async def open(self, query: Mapping[str, str]) -> Start:
        """Read until the stream's ``Start`` (the connection's own for raw); raises
        ``StreamClosed``, ``ProtocolError`` or ``ValueError`` (an unsupported format)."""
        start = self.protocol.opened(query)
        while start is None:
            message = await self.socket.receive()
            if message is None:
                raise StreamClosed("the socket closed before the stream started")
            for item in self.protocol.parse(message):
                if isinstance(item, Stop):
                    raise StreamClosed("the stream stopped before it started")
                if isinstance(item, Start):
                    start = item
                    break
        self.audio = StreamAudio(start.encoding, start.sample_rate)
        self.output = StreamOutput(self._now, sample_rate=start.sample_rate)
        self.start = start
        return start

    # --- receiving ------------------------------------------------------------------
    async def read(self) -> str:
        """Receive until the stream ends; returns why: ``hangup`` (the provider's stop,
        or a clean close) or ``peer_gone`` (the socket dropped). Raises ``ProtocolError``."""
        try:
            while True:
                message = await self.socket.receive()
                if message is None:
                    return "hangup" if self.socket.close_code == 1000 else "peer_gone"
                for item in self.protocol.parse(message):
                    if isinstance(item, Stop):
                        return "hangup"
                    self._dispatch(item)
        finally:
            self._all_heard.set()  # nobody is left to confirm anything

    def _dispatch(self, item: object) -> None:
        if isinstance(item, Media):
            assert self.audio is not None
            for frame in self.audio.decode(item.payload, item.timestamp_ms):
                self.track.put(frame)
                self.frames_in += 1
        elif isinstance(item, Mark):
            self._acknowledged(item.name)
        elif isinstance(item, Dtmf):
            self.on_dtmf(item.digit)
        elif isinstance(item, Hangup):
            self.on_hangup()
        elif isinstance(item, TypedText):
            self.on_text(item.text)

    def _acknowledged(self, name: str) -> None:
        if name in self._cleared:
            self._cleared.discard(name)
            return
        frames = self._marks.pop(name, None)
        if frames is None:
            return  # not ours
        self.marks_acked += 1
        self.heard_frames = max(self.heard_frames, frames)
        for earlier in [n for n, f in self._marks.items() if f <= frames]:
            del self._marks[earlier]  # played in order: those are heard too
        if not self._marks:
            self._all_heard.set()

    # --- sending --------------------------------------------------------------------
    def send(self, message: Message | None) -> None:
        """Queue ``message`` for the socket (None: nothing to send)."""
        if message is None:
            return
        if self._outbox.qsize() >= MAX_OUTBOX:
            with contextlib.suppress(asyncio.QueueEmpty):
                self._outbox.get_nowait()
                self.outbox_drops += 1
        self._outbox.put_nowait(message)

    async def write(self) -> None:
        """Send queued messages in order until ``finish`` (or the socket fails)."""
        while (message := await self._outbox.get()) is not None:
            try:
                await self.socket.send(message)
            except Exception as exc:  # the socket went away under us
                log.debug("stream: send failed: %s", exc)
                return

    def finish(self) -> None:
        """Let ``write`` return once what is queued has gone out."""
        self._outbox.put_nowait(None)

    async def send_audio(self) -> None:
        """Pace the bot's voice out, 20 ms a message, until the output stops."""
        assert self.audio is not None
        while True:
            try:
                pcm = await self.output.next_frame()
            except MediaStreamError:
                return
            if pcm is None:
                if self._unmarked:
                    self._mark()  # the end of a stretch of bot audio
                continue
            self.send(self.protocol.media(self.audio.encode(pcm)))
            self.frames_sent += 1
            self._unmarked += 1
            if self._unmarked >= MARK_EVERY:
                self._mark()

    def _mark(self) -> None:
        self._unmarked = 0
        self._mark_seq += 1
        name = f"bot-{self._mark_seq}"
        message = self.protocol.mark(name)
        if message is None:
            return
        self._marks[name] = self.frames_sent
        self._all_heard.clear()
        self.send(message)

    def clear(self) -> None:
        """Barge-in: drop the bot audio not yet sent here and held by the provider."""
        self.output.clear()
        self._cleared |= set(self._marks)
        self._marks.clear()
        self._unmarked = 0
        self._all_heard.set()
        self.clears += 1
        self.send(self.protocol.clear())

    async def played(self, grace: float) -> bool:
        """Wait (at most ``grace`` s) for the provider to confirm every mark sent; False
        if it did not (or never confirms marks)."""
        if self.marks_acked == 0 and not self._marks:
            return True
        if self.marks_acked == 0:
            return False  # a client that does not answer marks: no point waiting
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._all_heard.wait(), grace)
        return not self._marks
