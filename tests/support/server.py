"""The server app in the test's own process, and waiting on what its calls do.

``served`` starts the app as ``voicebot serve`` does (its lifespan: warm-up,
SIP listener, shutdown) and collects every call's events; with ``http`` it
listens under uvicorn on a free port of 127.0.0.1 (WebSocket clients need a
socket), else the test talks to it in-process (``httpx.ASGITransport``, SIP).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import uvicorn

from voicebot.config import PipelineConfig
from voicebot.events import EventRecord
from voicebot.server.app import create_app
from voicebot.server.calls import ServerSettings
from voicebot.server.child import free_port


@contextlib.asynccontextmanager
async def served(
    config: PipelineConfig, settings: ServerSettings, *, http: bool
) -> AsyncIterator[tuple[int | None, list[EventRecord], Any]]:
    """The running app: its HTTP port (``http``; else None), the events, the app."""
    app = create_app(config, settings)
    events: list[EventRecord] = []
    app.state.manager.listeners.append(events.append)
    if not http:
        async with app.router.lifespan_context(app):
            yield None, events, app
        return
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    task = asyncio.get_running_loop().create_task(server.serve())
    try:
        await until(lambda: server.started or task.done(), 120)
        assert server.started, "uvicorn did not start"
        yield port, events, app
    finally:
        server.should_exit = True
        await task


def of_type(events: list[EventRecord], kind: str) -> list[EventRecord]:
    return [e for e in events if e["type"] == kind]


async def until(
    condition: Callable[[], object], within: float, events: list[EventRecord] | None = None
) -> None:
    """Poll ``condition`` every 50 ms; TimeoutError if it does not hold within ``within`` s
    (with ``events``, their timeline is in the error: what the call did meanwhile)."""
    for _ in range(round(within / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"not within {within} s" + (timeline(events) if events else ""))


def timeline(events: list[EventRecord]) -> str:
    """The events as lines of ``t type fields`` (text and numbers only), for an error."""
    lines = []
    for e in events:
        fields = {k: v for k, v in e.items() if k not in ("type", "t", "call_id")}
        short = " ".join(f"{k}={v!r:.40}" for k, v in fields.items())
        lines.append(f"\n  {e.get('t', 0):9.3f} {e['type']} {short}")
    return "; events:" + "".join(lines)


async def ended(events: list[EventRecord], within: float = 10.0) -> EventRecord:
    await until(lambda: of_type(events, "call_ended"), within)
    (event,) = of_type(events, "call_ended")
    return event


def live_call(app: Any) -> Any:
    (call,) = app.state.manager.calls.values()
    return call
