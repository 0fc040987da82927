"""A scripted WebRTC caller: what the end-to-end tests and ``voicebot bench calls`` dial in with.

It behaves like a person on a headset: its microphone track plays speech in
real time (silence otherwise), it hears the bot's audio as it arrives, reads
the ``events`` data channel, and speaks again only once the bot has finished.
Times are ``time.monotonic()`` at this caller, so latencies are what a caller
would measure: end of their own voice to the first reply audio received.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import av
import httpx
import numpy as np
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError
from scipy.signal import resample_poly

from voicebot.errors import VoicebotError
from voicebot.transports.jitter import set_audio_jitter
from voicebot.transports.pacing import FramePacer

RATE = 48000
FRAME = RATE // 50  # 20 ms
LOUD_RMS = 300.0  # int16 RMS of a 20 ms frame that counts as the bot speaking (about -40 dBFS)


def to_rate(pcm: np.ndarray, rate: int, target: int = RATE) -> np.ndarray:
    """Mono int16 ``pcm`` at ``rate`` -> int16 at ``target``."""
    if rate == target:
        return pcm.astype(np.int16)
    out = resample_poly(pcm.astype(np.float32), target, rate)
    return out.clip(-32768, 32767).astype(np.int16)


def voiced_end(pcm: np.ndarray, rate: int, threshold: float = LOUD_RMS) -> int:
    """Index just past the last 10 ms window louder than ``threshold`` (0 if none)."""
    win = rate // 100
    n = len(pcm) // win
    if n == 0:
        return 0
    rms = np.sqrt(np.mean(pcm[: n * win].astype(np.float32).reshape(n, win) ** 2, axis=1))
    loud = np.flatnonzero(rms > threshold)
    return int((loud[-1] + 1) * win) if len(loud) else 0


class Microphone(MediaStreamTrack):
    """Plays queued clips in real time as exact 20 ms frames; silence in between."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._clips: list[tuple[np.ndarray, int, asyncio.Future[float]]] = []
        self._pos = 0
        self._pacer = FramePacer(RATE)

    def play(self, pcm: np.ndarray, rate: int) -> asyncio.Future[float]:
        """Queue mono int16 speech; the future gives the time its voice ended at this caller."""
        audio = to_rate(pcm, rate)
        fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._clips.append((audio, voiced_end(audio, RATE), fut))
        return fut

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        await self._pacer.wait()
        out = np.zeros(FRAME, np.int16)
        filled = 0
        while self._clips and filled < FRAME:
            audio, end, fut = self._clips[0]
            take = min(FRAME - filled, len(audio) - self._pos)
            out[filled : filled + take] = audio[self._pos : self._pos + take]
            if self._pos <= end <= self._pos + take and not fut.done():
                # This frame is "captured" up to now: the voice ended this much before.
                fut.set_result(time.monotonic() - (FRAME - filled - (end - self._pos)) / RATE)
            filled += take
            self._pos += take
            if self._pos >= len(audio):
                self._clips.pop(0)
                self._pos = 0
                if not fut.done():
                    fut.set_result(time.monotonic())
        return self._pacer.frame(out)


class Speaker:
    """Hears the bot: every received frame's arrival time and loudness (and audio, if kept)."""

    def __init__(self, keep_audio: bool = True) -> None:
        self.keep_audio = keep_audio
        self.times: list[float] = []
        self.rms: list[float] = []
        self.heard: list[float] = []  # seconds of audio received up to and including each frame
        self.audio: list[np.ndarray] = []
        self.ended = False  # the bot's track ended (the call is over)
        self._new = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def listen(self, track: MediaStreamTrack) -> None:
        self._task = asyncio.get_running_loop().create_task(self._read(track))

    async def _read(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                self.ended = True
                self._new.set()
                return
            if not isinstance(frame, av.AudioFrame):
                raise TypeError(f"the bot's audio track sent a {type(frame).__name__}")
            pcm = frame.to_ndarray().reshape(-1).astype(np.int16)
            channels = len(frame.layout.channels)
            if channels > 1:
                pcm = pcm.reshape(-1, channels).mean(axis=1).astype(np.int16)
            if frame.sample_rate != RATE:
                pcm = to_rate(pcm, frame.sample_rate)
            self.times.append(time.monotonic())
            total = self.heard[-1] if self.heard else 0.0
            self.heard.append(total + frame.samples / frame.sample_rate)
            self.rms.append(float(np.sqrt(np.mean(pcm.astype(np.float32) ** 2))))
            if self.keep_audio:
                self.audio.append(pcm)
            self._new.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _wait(self, test: Callable[[], float | None], within: float) -> float:
        deadline = time.monotonic() + within
        while True:
            found = test()
            if found is not None:
                return found
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("the bot did not answer in time")
            self._new.clear()
            try:
                await asyncio.wait_for(self._new.wait(), min(remaining, 0.1))
            except TimeoutError:
                continue

    def first_loud(self, after: float) -> float | None:
        for t, rms in zip(self.times, self.rms, strict=True):
            if t > after and rms > LOUD_RMS:
                return t
        return None

    def last_loud(self, after: float, before: float = float("inf")) -> float | None:
        last = None
        for t, rms in zip(self.times, self.rms, strict=True):
            if after < t <= before and rms > LOUD_RMS:
                last = t
        return last

    async def wait_onset(self, after: float, within: float) -> float:
        """Arrival of the first loud frame after ``after``."""
        return await self._wait(lambda: self.first_loud(after), within)

    async def wait_quiet(self, after: float, quiet: float, within: float) -> float:
        """The arrival of the last loud frame after ``after``, once ``quiet`` s of received
        audio have followed it (or the call ended).

        Quiet is counted in audio *received*, not wall time: the bot's track sends a frame
        every 20 ms, silence included, so a stall of this process or of the server (a
        loaded machine) delays frames but never passes for a pause in the bot's speech.
        """

        def test() -> float | None:
            last = None
            for i in range(len(self.times) - 1, -1, -1):
                if self.times[i] <= after:
                    break
                if self.rms[i] > LOUD_RMS:
                    last = i
                    break
            if last is None:
                return None
            heard_since = self.heard[-1] - self.heard[last]
            return self.times[last] if self.ended or heard_since >= quiet else None

        return await self._wait(test, within)

    def clip(self, start: float, end: float) -> np.ndarray:
        """Received audio (48 kHz mono) of frames that arrived in [start, end]."""
        parts = [a for t, a in zip(self.times, self.audio, strict=False) if start <= t <= end]
        return np.concatenate(parts) if parts else np.zeros(0, np.int16)


@dataclass
class Reply:
    onset: float  # first loud frame received
    end: float  # last loud frame received
    audio: np.ndarray  # 48 kHz mono, onset to end

    @property
    def duration(self) -> float:
        return self.end - self.onset


class OfferRejected(VoicebotError, RuntimeError):
    """The server answered our offer with an HTTP error."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"offer refused: HTTP {status}: {body}")
        self.status = status
        self.body = body


class Caller:
    """One scripted caller against ``base_url`` (``http://host:port``).

    ``jitter_ms``: how much of the bot's audio this caller holds back before
    "hearing" it. ``None`` keeps aiortc's fixed 80 ms. A browser adapts its own
    (NetEQ targets about 20-60 ms on a clean LAN), so a benchmark standing in for
    a browser may set it lower; say so when reporting the figures.
    """

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        keep_audio: bool = True,
        jitter_ms: int | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.jitter_ms = jitter_ms
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.mic = Microphone()
        self.speaker = Speaker(keep_audio)
        self.events: list[dict[str, Any]] = []
        self.received: list[float] = []  # arrival time of each event
        self.answer: dict[str, Any] = {}
        self._event = asyncio.Event()
        self._channel: Any = None

    async def __aenter__(self) -> Caller:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self, within: float = 15.0) -> dict[str, Any]:
        """Offer, answer, and wait until media and the events channel flow."""
        pc = self.pc
        pc.addTrack(self.mic)
        if self.jitter_ms is not None:
            for transceiver in pc.getTransceivers():
                if transceiver.kind == "audio":
                    set_audio_jitter(transceiver.receiver, self.jitter_ms)
        channel = self._channel = pc.createDataChannel("events")
        opened = asyncio.Event()
        channel.on("open", opened.set)
        channel.on("message", self._on_message)
        pc.on("track", lambda track: self.speaker.listen(track) if track.kind == "audio" else None)
        await pc.setLocalDescription(await pc.createOffer())
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        async with httpx.AsyncClient(timeout=within) as http:
            response = await http.post(
                f"{self.base_url}/offer",
                headers=headers,
                json={"sdp": pc.localDescription.sdp, "type": pc.localDescription.type},
            )
        if response.status_code != 200:
            raise OfferRejected(response.status_code, response.json())
        answer = response.json()
        await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], answer["type"]))
        await asyncio.wait_for(opened.wait(), within)
        self.answer = {k: v for k, v in answer.items() if k != "sdp"}
        return self.answer

    def _on_message(self, message: str | bytes) -> None:
        self.events.append(json.loads(message))
        self.received.append(time.monotonic())
        self._event.set()

    # --- talking ------------------------------------------------------------------
    async def say(self, pcm: np.ndarray, rate: int) -> float:
        """Speak mono int16 ``pcm`` in real time; returns when the voice ended (at this caller)."""
        fut = self.mic.play(pcm, rate)
        return await fut

    def say_later(self, pcm: np.ndarray, rate: int) -> asyncio.Future[float]:
        """Start speaking without waiting (to talk over the bot)."""
        return self.mic.play(pcm, rate)

    async def reply(self, after: float, within: float = 20.0, quiet: float = 1.0) -> Reply:
        """Wait for the bot to start answering after ``after`` and to finish (``quiet`` s)."""
        onset = await self.speaker.wait_onset(after, within)
        end = await self.speaker.wait_quiet(onset - 0.001, quiet, within)
        return Reply(onset, end, self.speaker.clip(onset, end))

    def send_text(self, text: str) -> None:
        self._channel.send(json.dumps({"type": "text", "text": text}))

    def hang_up(self) -> None:
        self._channel.send(json.dumps({"type": "hangup"}))

    # --- events -------------------------------------------------------------------
    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == kind]

    async def wait_event(
        self,
        kind: str,
        within: float = 20.0,
        *,
        start: int = 0,
        where: Callable[[dict[str, Any]], bool] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """The first event of ``kind`` at index >= ``start`` (and matching ``where``)."""
        deadline = time.monotonic() + within
        i = start
        while True:
            while i < len(self.events):
                event = self.events[i]
                if event["type"] == kind and (where is None or where(event)):
                    return i, event
                i += 1
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {kind!r} event within {within} s")
            self._event.clear()
            try:
                await asyncio.wait_for(self._event.wait(), remaining)
            except TimeoutError:
                continue

    async def close(self) -> None:
        self.mic.stop()
        await self.speaker.stop()
        await self.pc.close()
