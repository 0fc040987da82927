"""How much inbound audio aiortc holds back before decoding it.

aiortc gives every audio receiver a ``JitterBuffer(capacity=16, prefetch=4)``:
a frame is released only once 4 later frames have arrived, 80 ms fixed. That
depth is for *playing* audio smoothly after a bumpy network. The server never
plays the caller's audio, it feeds the VAD and the recognizer, which take
frames as they come (late ones are filled with silence), so on the server
those 80 ms are pure latency on every turn. ``set_audio_jitter`` swaps in a
shallower buffer right after the offer is applied, before any packet can
arrive. The minimum is one frame (20 ms): aiortc only knows a frame is
complete when the next one starts.

This reaches into aiortc's private receiver state, so it checks loudly: if an
aiortc release renames or changes it, ``set_audio_jitter`` raises (the call
is refused and ``tests/test_server.py`` fails) instead of silently keeping 80 ms.
"""

from __future__ import annotations

from typing import Any

from aiortc.jitterbuffer import JitterBuffer

FRAME_MS = 20
_ATTR = "_RTCRtpReceiver__jitter_buffer"  # name-mangled ``self.__jitter_buffer``


def _buffer(receiver: Any) -> JitterBuffer:
    buffer = getattr(receiver, _ATTR, None)
    if (not isinstance(buffer, JitterBuffer) or getattr(buffer, "_is_video", True)
            or not isinstance(getattr(buffer, "_prefetch", None), int)):
        raise RuntimeError("aiortc's RTCRtpReceiver no longer keeps an audio JitterBuffer where "
                           "voicebot expects it; update voicebot/transports/jitter.py")
    return buffer


def frames_for(ms: int) -> int:
    """Whole 20 ms frames held back for ``ms`` (at least one)."""
    return max(1, round(ms / FRAME_MS))


def set_audio_jitter(receiver: Any, ms: int) -> None:
    """Make an audio receiver hold back ``ms`` of audio instead of aiortc's 80 ms.

    Call before packets arrive (right after ``setRemoteDescription`` or
    ``addTrack``). Capacity keeps aiortc's 4:1 ratio to the prefetch, so a
    deep setting still has room for misordered packets.
    """
    _buffer(receiver)
    prefetch = frames_for(ms)
    capacity = 16
    while capacity < 4 * prefetch:
        capacity *= 2
    setattr(receiver, _ATTR, JitterBuffer(capacity=capacity, prefetch=prefetch))


def audio_jitter_ms(receiver: Any) -> int:
    """What an audio receiver holds back now (aiortc's default: 80)."""
    return max(1, _buffer(receiver)._prefetch) * FRAME_MS
