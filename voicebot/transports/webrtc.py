"""The WebRTC transport: the live sibling of ``transports/file.py``.

* ``TrackSource`` reads the caller's aiortc track (48 kHz stereo Opus, decoded)
  into the graph. It always reads, even when the graph falls behind: an unread
  aiortc track queues frames without bound. Typed text enters here too, as a
  final ``Transcript``.
* ``OutputTrack`` is what the caller hears: an aiortc ``MediaStreamTrack``
  that ``PlaybackStage`` writes to as its ``AudioOutput``.
* ``EventBridge`` carries the call's events to the caller's ``events`` data
  channel as JSON text and turns the caller's messages into actions.

Two pacers meet in ``OutputTrack``: playback releases a frame at its call time
``t`` (paced by the call clock), and aiortc's sender pulls one frame every
20 ms (paced by the track's own start time). The track never lets arrival order
decide: each written frame is stamped with its due time, and the pull at tick
``T`` takes the oldest frame due by ``T - CUSHION``, else silence. Jitter on
either side smaller than the cushion changes nothing, so replies do not
stutter when the two tick phases happen to line up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import av
import numpy as np
from aiortc import MediaStreamTrack, RTCDataChannel
from aiortc.mediastreams import MediaStreamError

from voicebot.clock import Clock
from voicebot.events import EventRecord, TranscriptEvent
from voicebot.frames import AudioFrame, Interrupt, Transcript
from voicebot.graph import Source
from voicebot.transports.pacing import FRAME_S, FramePacer

log = logging.getLogger(__name__)

# A written frame goes out at the first sender tick at least this long after its due time.
CUSHION = 0.01
# A sender running this far behind its schedule restarts it instead of bursting to catch up.
MAX_SENDER_LAG = 0.1
MAX_TEXT = 500  # characters of typed input per message
MAX_GAP_FILL = 2.0  # seconds of lost inbound audio replaced by silence to keep the timeline


class LiveClock(Clock):
    """Wall clock whose zero is when the call starts running, not when it was set up.

    A WebRTC call is built when the offer arrives and starts once the peer has
    connected; events count from the latter.
    """

    def start(self, idle: Callable[[], bool]) -> None:
        self._t0 = time.monotonic()


class TrackSource(Source):
    """Caller audio from an aiortc track, plus typed text as final transcripts.

    ``pts`` follows the sender's RTP timestamps anchored to the call clock at the
    first frame, and gaps (lost packets) are filled with silence, so the VAD's
    timeline stays the call's timeline. ``on_ended`` runs when the track ends or
    goes quiet for ``media_timeout`` seconds: the peer is gone.
    """

    name = "source"

    def __init__(self, media_timeout: float = 10.0, language: str = "") -> None:
        super().__init__()
        self.media_timeout = media_timeout
        self.language = language
        self.on_ended: Callable[[], None] | None = None
        self.frames = 0
        self._track: asyncio.Future[MediaStreamTrack] | None = None
        self._offset: float | None = None  # call time minus media time
        self._next_pts = 0.0
        self._resampler: av.AudioResampler | None = None

    def attach(self, track: MediaStreamTrack) -> None:
        """Use ``track`` as the caller's microphone (the first audio track wins)."""
        if self._track is None:
            self._track = asyncio.get_running_loop().create_future()
        if not self._track.done():
            self._track.set_result(track)

    async def produce(self) -> None:
        if self._track is None:
            self._track = asyncio.get_running_loop().create_future()
        track = await self._track
        while True:
            try:
                async with asyncio.timeout(self.media_timeout):
                    frame = await track.recv()
            except (MediaStreamError, TimeoutError):
                break
            if not isinstance(frame, av.AudioFrame):
                raise TypeError(f"the caller's audio track sent a {type(frame).__name__}")
            for audio in self._convert(frame):
                await self.push(audio)
        if self.on_ended is not None:
            self.on_ended()

    def _convert(self, frame: av.AudioFrame) -> list[AudioFrame]:
        """Packed s16 with its pts on the call clock; silence in front if packets were lost."""
        if frame.format.name != "s16":
            if self._resampler is None:
                self._resampler = av.AudioResampler(
                    format="s16", layout=frame.layout.name, rate=frame.sample_rate
                )
            frames = self._resampler.resample(frame)
        else:
            frames = [frame]
        out: list[AudioFrame] = []
        for f in frames:
            channels = len(f.layout.channels)
            pcm = f.to_ndarray().reshape(-1).astype(np.int16, copy=False)
            rate = f.sample_rate
            duration = f.samples / rate
            media = float(f.pts * f.time_base) if f.pts is not None and f.time_base else None
            if self._offset is None:  # the first frame was captured just before it arrived
                self._next_pts = max(0.0, self.ctx.now() - duration)
                self._offset = self._next_pts - (media or 0.0)
            elif media is not None:
                gap = media + self._offset - self._next_pts
                if FRAME_S / 2 < gap <= MAX_GAP_FILL:
                    silence = np.zeros(round(gap * rate) * channels, np.int16)
                    out.append(AudioFrame(silence, rate, channels, self._next_pts))
                    self._next_pts += len(silence) / channels / rate
                elif gap > MAX_GAP_FILL:  # the sender restarted its clock: re-anchor
                    self._offset = self._next_pts - media
            self.frames += 1
            out.append(AudioFrame(pcm, rate, channels, self._next_pts))
            self._next_pts += duration
        return out

    def push_text(self, text: str) -> bool:
        """Typed input: a new caller turn whose final transcript is ``text``.

        Interrupts the bot like speech would (when its prompt allows barge-in).
        Returns False when there is nothing to say or the call is not running.
        """
        text = " ".join(text.split())[:MAX_TEXT]
        if not text or self.outbox is None or self._task is None:  # _task: the call runs
            return False
        ctx = self.ctx
        ctx.state.turn += 1
        turn = ctx.state.turn
        now = ctx.now()
        if ctx.state.bot_speaking and ctx.state.barge_in:
            self.receive_control(Interrupt("text_input", now))
        ctx.ledger.mark(turn, "final_transcript", now)
        ctx.bus.emit(
            TranscriptEvent(
                final=True, text=text, turn=turn, language=self.language, decode_ms=0.0
            ),
            t=now,
        )
        return self.outbox.put_nowait(Transcript(text, True, turn, self.language))


class OutputTrack(MediaStreamTrack):
    """The bot's voice: exact 20 ms frames at 48 kHz mono, silence when the bot is quiet.

    ``write`` (from ``PlaybackStage``) stamps each frame with its due time on
    the monotonic clock; ``recv`` (from aiortc's sender) runs its own schedule
    ``start + k * 20 ms`` (``FramePacer``) and returns the oldest frame due by then, else
    silence. At most ``max_frames`` wait between the two (barge-in stays fast;
    overflow drops the oldest and counts it in ``drops``); ``clear`` empties the
    buffer at once.
    """

    kind = "audio"

    def __init__(
        self, now: Callable[[], float], sample_rate: int = 48000, max_frames: int = 3
    ) -> None:
        super().__init__()
        self.sample_rate = sample_rate
        self.channels = 1
        self.samples = sample_rate * 20 // 1000
        self.max_frames = max_frames
        self.drops = 0
        self.audio_frames = 0  # bot audio frames handed to the sender
        self.silent_frames = 0
        self.started = asyncio.Event()  # the sender is pulling: media flows
        self._empty = asyncio.Event()
        self._empty.set()
        self._now = now
        self._buffer: deque[tuple[float, np.ndarray]] = deque()
        self._pacer = FramePacer(sample_rate, max_lag=MAX_SENDER_LAG)
        self._silence = np.zeros(self.samples, np.int16)

    # --- AudioOutput (playback side) ---------------------------------------------
    def write(self, pcm: np.ndarray, t: float) -> None:
        due = time.monotonic() - (self._now() - t)
        if len(self._buffer) >= self.max_frames:
            self._buffer.popleft()
            self.drops += 1
        self._buffer.append((due, pcm))
        self._empty.clear()

    def clear(self) -> int:
        """Drop every frame not yet sent (barge-in); returns how many."""
        n = len(self._buffer)
        self._buffer.clear()
        self._empty.set()
        return n

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    # --- MediaStreamTrack (sender side) ------------------------------------------
    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        self.started.set()
        tick = await self._pacer.wait()
        if self.readyState != "live":
            raise MediaStreamError
        return self._pacer.frame(self._take(tick))

    def _take(self, tick: float) -> np.ndarray:
        buffer = self._buffer
        if buffer and buffer[0][0] <= tick - CUSHION:
            self.audio_frames += 1
            pcm = buffer.popleft()[1]
            if not buffer:
                self._empty.set()
            return pcm
        self.silent_frames += 1
        return self._silence

    async def drain(self, grace: float = 0.2) -> None:
        """Let the last written frames go out (a goodbye's end) before the call closes."""
        if not self.started.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._empty.wait(), grace)
            await asyncio.sleep(2 * FRAME_S)  # the sender encodes and sends the last frame

    def stop(self) -> None:
        self._buffer.clear()
        self._empty.set()
        super().stop()


class EventBridge:
    """Call events to the caller's ``events`` data channel; the caller's messages back.

    Events emitted before the channel opens (the call's start, a greeting) are
    held and sent on open. Client messages (JSON objects): ``{"type": "hangup"}``,
    ``{"type": "text", "text": "..."}`` and ``{"type": "dtmf", "digit": "5"}`` (a key
    pressed on the page's keypad); anything else is answered with an
    ``{"type": "client_error"}`` message and otherwise ignored.
    """

    def __init__(
        self,
        hello: dict[str, Any],
        on_hangup: Callable[[], None],
        on_text: Callable[[str], bool],
        max_pending: int = 1000,
        on_dtmf: Callable[[str], bool] | None = None,
    ) -> None:
        self.hello = {"type": "hello", **hello}
        self.on_hangup = on_hangup
        self.on_text = on_text
        self.on_dtmf = on_dtmf
        self.max_pending = max_pending
        self.channel: RTCDataChannel | None = None
        self.sent = 0
        self._pending: deque[str] = deque([json.dumps(self.hello)])

    def attach(self, channel: RTCDataChannel) -> None:
        """Use ``channel`` (labelled ``events``) from now on."""
        self.channel = channel
        channel.on("open", self._flush)
        channel.on("message", self._on_message)
        if channel.readyState == "open":
            self._flush()

    def __call__(self, event: EventRecord) -> None:
        self.send_text(json.dumps(event, ensure_ascii=False))

    def send_text(self, text: str) -> None:
        channel = self.channel
        if channel is not None and channel.readyState == "open":
            channel.send(text)
            self.sent += 1
            return
        if channel is not None and channel.readyState in ("closing", "closed"):
            return
        if len(self._pending) >= self.max_pending:
            self._pending.popleft()
        self._pending.append(text)

    def _flush(self) -> None:
        channel = self.channel
        while self._pending and channel is not None and channel.readyState == "open":
            channel.send(self._pending.popleft())
            self.sent += 1

    def _on_message(self, message: str | bytes) -> None:
        try:
            data = json.loads(message)
        except (TypeError, ValueError):
            data = None
        kind = data.get("type") if isinstance(data, dict) else None
        if kind == "hangup":
            self.on_hangup()
        elif kind == "text" and isinstance(data.get("text"), str):
            if not self.on_text(data["text"]):
                self.send_text(json.dumps({"type": "client_error", "error": "text not accepted"}))
        elif kind == "dtmf" and self.on_dtmf is not None and isinstance(data, dict):
            digit = data.get("digit")
            if not isinstance(digit, str) or not self.on_dtmf(digit):
                self.send_text(json.dumps({"type": "client_error", "error": "key not accepted"}))
        else:
            self.send_text(
                json.dumps(
                    {
                        "type": "client_error",
                        "error": 'expected {"type": "hangup"}, {"type": "text", "text": ...} '
                        'or {"type": "dtmf", "digit": ...}',
                    }
                )
            )

    async def drain(self, grace: float = 1.0) -> None:
        """Wait (at most ``grace`` s) for queued messages to leave before the connection closes."""
        channel = self.channel
        if channel is None or channel.readyState != "open" or channel.bufferedAmount == 0:
            return
        sent = asyncio.Event()
        channel.once("bufferedamountlow", sent.set)  # fires when the buffer empties
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(sent.wait(), grace)
