"""The idle timeout every live call has: no caller speech, typed text or bot audio for so long.

One ``IdleWatch`` per call: the call feeds it its events (``observe``) and
either runs it as a task (``run``: WebRTC and media-stream calls) or asks it
in a watchdog loop of its own (``expired``: SIP calls, which watch RTP too).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from voicebot.context import CallContext
from voicebot.events import EventRecord

# Events that show someone is still there (caller or bot).
ACTIVITY = frozenset(
    {
        "speech_started",
        "speech_stopped",
        "transcript",
        "reply",
        "playback_started",
        "playback_stopped",
    }
)


class IdleWatch:
    """When a call's last sign of life was, and whether that is longer ago than ``timeout``."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.last_active = 0.0  # call time (``ctx.now()``) of the last activity

    @property
    def interval(self) -> float:
        """How often to look: a quarter of the timeout, at most every second."""
        return min(1.0, self.timeout / 4)

    def observe(self, event: EventRecord) -> None:
        """A call event (subscribe this to the call's bus, or call it from a listener)."""
        if event["type"] in ACTIVITY:
            self.last_active = event["t"]

    def expired(self, ctx: CallContext) -> bool:
        """Whether the call has been idle too long (the bot speaking counts as activity)."""
        now = ctx.now()
        if ctx.state.bot_speaking:
            self.last_active = now
            return False
        return now - self.last_active > self.timeout

    async def run(self, ctx: CallContext, hang_up: Callable[[str], None]) -> None:
        """Look every ``interval`` and hang up with ``idle_timeout`` once expired."""
        while True:
            await asyncio.sleep(self.interval)
            if self.expired(ctx):
                hang_up("idle_timeout")
                return
