"""How much inbound audio the server holds back before decoding it, and what a lost packet costs.

aiortc gives every audio receiver a ``JitterBuffer(capacity=16, prefetch=4)``:
a frame is released only once 4 later frames have arrived, 80 ms fixed. That
depth is for *playing* audio smoothly after a bumpy network. The server never
plays the caller's audio, it feeds the VAD and the recognizer, which take
frames as they come (``TrackSource`` fills missing ones with silence), so on
the server those 80 ms are pure latency on every turn.

aiortc's buffer also never gives up on a missing packet: after one lost
packet it waits until the buffer overflows and from then on stays 14 frames
(280 ms) behind for the rest of the call (``tests/transports/test_webrtc_call.py`` shows
it). ``AudioJitterBuffer`` releases the oldest packet once ``prefetch`` later
ones have arrived instead, so a packet that late counts as lost (20 ms of
silence) and the depth never grows.

``set_audio_jitter`` swaps it in right after the offer is applied, before any
packet can arrive. This reaches into aiortc's private receiver state, so it
checks loudly: if an aiortc release renames or changes it, ``set_audio_jitter``
raises (the call is refused and the tests fail) instead of silently keeping 80 ms.
"""

from __future__ import annotations

from typing import Any

from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtp import RtpPacket

FRAME_MS = 20
MAX_MISORDER = 100  # a packet further behind than this means the sender restarted its numbering
_ATTR = "_RTCRtpReceiver__jitter_buffer"  # name-mangled ``self.__jitter_buffer``


class AudioJitterBuffer:
    """Reorders audio packets (one packet per frame, as Opus and G.711 send them).

    ``add`` has the signature aiortc's receiver calls: it returns ``(pli, frame)``,
    at most one frame per packet. It holds at most ``prefetch`` packets; a packet
    older than the last one released arrives too late and is dropped.
    """

    def __init__(self, prefetch: int) -> None:
        if prefetch < 1:
            raise ValueError("prefetch must be at least one frame")
        self.prefetch = prefetch
        self.late = 0  # packets that arrived after a later one was released (lost)
        self._packets: dict[int, RtpPacket] = {}
        self._next: int | None = None  # sequence number the next release should have

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        seq = packet.sequence_number
        if self._next is None:
            self._next = seq
        behind = (self._next - seq) % 65536
        if 0 < behind < 32768:  # before what was already released (or skipped)
            if behind <= MAX_MISORDER:
                self.late += 1
                return False, None
            self._packets.clear()  # the sender restarted its sequence numbers
            self._next = seq
        if seq in self._packets:  # a duplicate
            return False, None
        self._packets[seq] = packet
        if len(self._packets) <= self.prefetch:
            return False, None
        next_ = self._next
        oldest = min(self._packets, key=lambda s: (s - next_) % 65536)
        out = self._packets.pop(oldest)
        self._next = (oldest + 1) % 65536
        # aiortc's receiver stores the depayloaded bytes on each packet as ``_data``,
        # an attribute its RtpPacket class does not declare.
        data: bytes = out._data  # type: ignore[attr-defined]
        return False, JitterFrame(data=data, timestamp=out.timestamp)


def _check(receiver: Any) -> Any:
    buffer = getattr(receiver, _ATTR, None)
    if isinstance(buffer, AudioJitterBuffer):
        return buffer
    if (
        not isinstance(buffer, JitterBuffer)
        or getattr(buffer, "_is_video", True)
        or not isinstance(getattr(buffer, "_prefetch", None), int)
    ):
        raise RuntimeError(
            "aiortc's RTCRtpReceiver no longer keeps an audio JitterBuffer where "
            "voicebot expects it; update voicebot/transports/jitter.py"
        )
    return buffer


def frames_for(ms: int) -> int:
    """Whole 20 ms frames held back for ``ms`` (at least one)."""
    return max(1, round(ms / FRAME_MS))


def set_audio_jitter(receiver: Any, ms: int) -> None:
    """Make an audio receiver hold back ``ms`` of audio instead of aiortc's 80 ms.

    Call before packets arrive (right after ``setRemoteDescription`` or
    ``addTrack``). One frame (20 ms) is the least: a packet is only known to be
    next once a later one has arrived.
    """
    _check(receiver)
    setattr(receiver, _ATTR, AudioJitterBuffer(frames_for(ms)))


def audio_jitter_ms(receiver: Any) -> int:
    """What an audio receiver holds back now (aiortc's default: 80)."""
    buffer = _check(receiver)
    prefetch = buffer.prefetch if isinstance(buffer, AudioJitterBuffer) else buffer._prefetch
    return max(1, prefetch) * FRAME_MS
