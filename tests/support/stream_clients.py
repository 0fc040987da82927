"""Protocol-faithful provider clients for the media-stream tests: Twilio, Telnyx, Vonage, raw.

Each plays the provider's side of a bidirectional stream the way the
provider does: caller audio goes out as 20 ms messages on a fixed real-time
schedule (silence when the caller is quiet, as a phone line sends it), the
bot's audio is queued and played at real time, a mark is answered once the
audio queued before it has played, and ``clear`` drops the queued audio and
answers the marks still in the queue at once. ``heard`` is the bot audio in
the order it was played; ``arrivals`` the arrival times of the bot's media
messages (to check its pacing).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from voicebot.transports.sip.codecs import PCMA, PCMU, RtpCodec

FRAME_S = 0.02


class StreamClient:
    """The common part: the schedules, the play-out queue, marks and clears."""

    sample_rate = 8000

    def __init__(self, url: str, headers: Mapping[str, str] | None = None) -> None:
        self.url = url
        self.headers = dict(headers or {})  # on the WebSocket handshake
        self.ws: ClientConnection | None = None
        self.heard: list[np.ndarray] = []
        self.arrivals: list[float] = []
        self.marks_received: list[str] = []
        self.marks_answered: list[str] = []
        self.clears: list[float] = []
        self.close_code: int | None = None
        self.close_reason = ""
        self.closed = asyncio.Event()
        self._mic: deque[np.ndarray] = deque()
        self._mic_empty = asyncio.Event()
        self._mic_empty.set()
        self._queue: deque[tuple[str, Any]] = deque()  # ("audio", pcm) | ("mark", name)
        self._tasks: list[asyncio.Task[None]] = []
        self._samples = self.sample_rate // 50
        self._sent_frames = 0

    # --- the provider's wire format (subclasses) -----------------------------------
    async def opening(self) -> None:
        """What the provider sends first."""

    def media_message(self, pcm: np.ndarray, timestamp_ms: int) -> str | bytes:
        raise NotImplementedError

    def mark_answer(self, name: str) -> str:
        raise NotImplementedError

    def received(self, message: str | bytes) -> None:
        """Handle one message from the bot (``_bot_audio``, ``_bot_mark``, ``_bot_clear``)."""
        raise NotImplementedError

    # --- the test's side -------------------------------------------------------------
    async def __aenter__(self) -> StreamClient:
        self.ws = await connect(self.url, additional_headers=self.headers, max_size=None)
        with contextlib.suppress(ConnectionClosed):  # refused at once: ``closed`` says why
            await self.opening()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._microphone()),
            loop.create_task(self._receive()),
            loop.create_task(self._speaker()),
        ]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.ws is not None:
            await self.ws.close()

    def say(self, pcm: np.ndarray) -> None:
        """Speak ``pcm`` (int16 at ``sample_rate``) into the call, from the next frame on."""
        n = self._samples
        pcm = np.concatenate([pcm, np.zeros(-len(pcm) % n, np.int16)])
        self._mic.extend(pcm[k : k + n] for k in range(0, len(pcm), n))
        self._mic_empty.clear()

    async def said(self) -> None:
        """Wait until everything given to ``say`` has been sent."""
        await self._mic_empty.wait()

    async def send(self, message: str | bytes) -> None:
        assert self.ws is not None
        await self.ws.send(message)

    def drop(self) -> None:
        """The connection dies: no stop, no close handshake."""
        assert self.ws is not None
        for task in self._tasks:
            task.cancel()
        self.ws.transport.abort()

    def broken(self) -> list[BaseException]:
        """What stopped the client's own tasks (its receiver, speaker or microphone) early."""
        return [
            exc
            for task in self._tasks
            if task.done() and not task.cancelled() and (exc := task.exception()) is not None
        ]

    @property
    def heard_seconds(self) -> float:
        return sum(len(p) for p in self.heard) / self.sample_rate

    # --- the schedules ---------------------------------------------------------------
    async def _microphone(self) -> None:
        silence = np.zeros(self._samples, np.int16)

        async def frame() -> None:
            pcm = self._mic.popleft() if self._mic else silence
            if not self._mic:
                self._mic_empty.set()
            await self.send(self.media_message(pcm, round(self._sent_frames * 20)))
            self._sent_frames += 1

        await every_frame(frame)

    async def _receive(self) -> None:
        assert self.ws is not None
        try:
            async for message in self.ws:
                self.received(message)
        except ConnectionClosed:
            pass
        finally:
            self.close_code, self.close_reason = self.ws.close_code, self.ws.close_reason or ""
            self.closed.set()

    async def _speaker(self) -> None:
        async def frame() -> None:
            while self._queue and self._queue[0][0] == "mark":
                await self._answer(self._queue.popleft()[1])  # everything before it played
            if self._queue:
                self.heard.append(self._queue.popleft()[1])

        await every_frame(frame)

    async def _answer(self, name: str) -> None:
        self.marks_answered.append(name)
        await self.send(self.mark_answer(name))

    def _bot_audio(self, pcm: np.ndarray) -> None:
        self.arrivals.append(time.monotonic())
        self._queue.append(("audio", pcm))

    def _bot_mark(self, name: str) -> None:
        self.marks_received.append(name)
        self._queue.append(("mark", name))

    def _bot_clear(self) -> None:
        self.clears.append(time.monotonic())
        pending = [item[1] for item in self._queue if item[0] == "mark"]
        self._queue.clear()
        for name in pending:  # a clear answers the pending marks at once
            asyncio.get_running_loop().create_task(self._answer(name))


async def every_frame(step: Callable[[], Awaitable[None]]) -> None:
    """Run ``step`` once per 20 ms frame on a fixed real-time schedule (a late step does
    not shift the ones after it) until the connection closes."""
    start = time.monotonic()
    k = 0
    with contextlib.suppress(ConnectionClosed):
        while True:
            await step()
            k += 1
            await asyncio.sleep(max(0.0, start + k * FRAME_S - time.monotonic()))


class JsonEventClient(StreamClient):
    """Twilio's and Telnyx's shared shape: ``{"event": ...}`` JSON with base64 G.711 audio,
    each message numbered and naming the stream; the subclass names the keys."""

    provider = ""
    sequence_key = ""  # sequenceNumber | sequence_number
    stream_key = ""  # streamSid | stream_id
    stream_id = ""

    def __init__(self, url: str, codec: RtpCodec, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(url, headers)
        self.sequence = 0
        self._codec = codec

    def _next(self) -> str:
        self.sequence += 1
        return str(self.sequence)

    def message(self, event: str, **body: Any) -> str:
        """One numbered message of ``event`` on this stream."""
        return json.dumps(
            {
                "event": event,
                self.sequence_key: self._next(),
                **body,
                self.stream_key: self.stream_id,
            }
        )

    def media_message(self, pcm: np.ndarray, timestamp_ms: int) -> str:
        media = {
            "track": "inbound",
            "chunk": str(self._sent_frames + 1),
            "timestamp": str(timestamp_ms),
            "payload": base64.b64encode(self._codec.encode(pcm)).decode(),
        }
        return self.message("media", media=media)

    def mark_answer(self, name: str) -> str:
        return self.message("mark", mark={"name": name})

    async def hang_up(self, stop: dict[str, str]) -> None:
        """The caller hangs up: the stop message, then the provider closes the socket."""
        await self.send(self.message("stop", stop=stop))
        assert self.ws is not None
        await self.ws.close()

    def addressed(self, data: dict[str, Any]) -> None:
        """A message from the bot, before it is handled (to check its address)."""

    def received(self, message: str | bytes) -> None:
        assert isinstance(message, str), f"the bot sent {self.provider} a binary message"
        data = json.loads(message)
        self.addressed(data)
        event = data["event"]
        if event == "media":
            payload = base64.b64decode(data["media"]["payload"])
            pcm = np.concatenate([f.to_ndarray().reshape(-1) for f in self._codec.decode(payload)])
            self._bot_audio(pcm)
        elif event == "mark":
            self._bot_mark(data["mark"]["name"])
        elif event == "clear":
            self._bot_clear()
        else:
            raise AssertionError(f"{self.provider} does not take {event!r} messages")


class TwilioClient(JsonEventClient):
    """Twilio's side of ``<Connect><Stream>``: JSON messages, base64 μ-law at 8 kHz."""

    provider, sequence_key, stream_key = "Twilio", "sequenceNumber", "streamSid"

    def __init__(
        self,
        url: str,
        parameters: dict[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(url, RtpCodec(PCMU), headers)
        self.parameters = parameters or {}
        self.stream_id = self.stream_sid = "MZ" + "0" * 30
        self.call_sid = "CA" + "1" * 30
        self.stream_sids: set[str] = set()  # on what the bot sent

    async def opening(self) -> None:
        await self.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        start = {
            "accountSid": "AC" + "2" * 30,
            "streamSid": self.stream_sid,
            "callSid": self.call_sid,
            "tracks": ["inbound"],
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            "customParameters": self.parameters,
        }
        await self.send(self.message("start", start=start))

    async def dtmf(self, digit: str) -> None:
        await self.send(self.message("dtmf", dtmf={"track": "inbound_track", "digit": digit}))

    async def stop(self) -> None:
        await self.hang_up({"accountSid": "AC" + "2" * 30, "callSid": self.call_sid})

    def addressed(self, data: dict[str, Any]) -> None:
        self.stream_sids.add(data["streamSid"])


class L16Client(StreamClient):
    """Vonage's and the raw stream's audio: binary 16-bit little-endian PCM, 20 ms a
    message from the bot; the subclass handles the text messages."""

    def media_message(self, pcm: np.ndarray, timestamp_ms: int) -> bytes:
        return pcm.astype("<i2").tobytes()

    def received(self, message: str | bytes) -> None:
        if isinstance(message, bytes):
            assert len(message) == self._samples * 2, len(message)  # 20 ms a message
            self._bot_audio(np.frombuffer(message, "<i2").astype(np.int16))
        else:
            self.text(json.loads(message))

    def text(self, data: dict[str, Any]) -> None:
        raise NotImplementedError


class RawClient(L16Client):
    """A client of ``WS /ws/audio``: binary PCM both ways, JSON events and marks."""

    def __init__(
        self, url: str, sample_rate: int = 16000, headers: Mapping[str, str] | None = None
    ) -> None:
        self.sample_rate = sample_rate
        joint = "&" if "?" in url else "?"
        super().__init__(f"{url}{joint}sample_rate={sample_rate}", headers)
        self.events: list[dict[str, Any]] = []

    def mark_answer(self, name: str) -> str:
        return json.dumps({"type": "mark", "name": name})

    def text(self, data: dict[str, Any]) -> None:
        if data["type"] == "mark":
            self._bot_mark(data["name"])
        elif data["type"] == "clear":
            self._bot_clear()
        else:
            self.events.append(data)


class TelnyxClient(JsonEventClient):
    """Telnyx's side of a bidirectional (RTP mode) media stream: Twilio's shape in
    snake_case, here with A-law (PCMA) as the codec."""

    provider, sequence_key, stream_key = "Telnyx", "sequence_number", "stream_id"

    def __init__(
        self, url: str, encoding: str = "PCMA", headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(url, RtpCodec(PCMA if encoding == "PCMA" else PCMU), headers)
        self.encoding = encoding
        self.stream_id = "32de0dea-53cb-4b21-89a4-9e8f2d1d3d4b"
        self.call_control_id = "v3:MdI91X4lWFEs7IgbBEOT9M4AigoY08M0WWZF"

    async def opening(self) -> None:
        await self.send(json.dumps({"event": "connected", "version": "1.0.0"}))
        start = {
            "user_id": "3e6f995f-85f7-4705-9741-53b116d28237",
            "call_control_id": self.call_control_id,
            "client_state": "aGF2ZSBhIG5pY2UgZGF5",
            "media_format": {"encoding": self.encoding, "sample_rate": 8000, "channels": 1},
        }
        await self.send(self.message("start", start=start))

    async def stop(self) -> None:
        await self.hang_up({"user_id": "3e6f995f", "call_control_id": self.call_control_id})


class VonageClient(L16Client):
    """Vonage's side of an NCCO ``connect`` to a WebSocket: ``websocket:connected`` with
    the content type and custom headers, then binary L16; marks are ``notify`` actions
    answered with ``websocket:notify``, and a ``clear`` is answered with
    ``websocket:cleared`` (the notifications it cancels are not sent)."""

    def __init__(
        self, url: str, sample_rate: int = 16000, headers: Mapping[str, str] | None = None
    ) -> None:
        self.sample_rate = sample_rate
        super().__init__(url, headers)
        self.custom_headers = {"caller": "447700900000"}  # the endpoint's, in the first message

    async def opening(self) -> None:
        await self.send(
            json.dumps(
                {
                    "event": "websocket:connected",
                    "content-type": f"audio/l16;rate={self.sample_rate}",
                    **self.custom_headers,
                }
            )
        )

    def mark_answer(self, name: str) -> str:
        return json.dumps({"event": "websocket:notify", "payload": {"name": name}})

    def text(self, data: dict[str, Any]) -> None:
        if data["action"] == "notify":
            self._bot_mark(data["payload"]["name"])
        elif data["action"] == "clear":
            self.clears.append(time.monotonic())
            self._queue.clear()
            asyncio.get_running_loop().create_task(
                self.send(json.dumps({"event": "websocket:cleared"}))
            )
        else:
            raise AssertionError(f"Vonage does not take {data!r}")
