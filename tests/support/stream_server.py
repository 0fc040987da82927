"""The server app under uvicorn in the test's own process, for calls over media streams.

The test sees the calls' events and the call registry; the provider is a
protocol-faithful client (``stream_clients.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import uvicorn

from voicebot.config import load_pipeline
from voicebot.events import EventRecord
from voicebot.server.app import create_app
from voicebot.server.calls import ServerSettings
from voicebot.server.child import free_port


@contextlib.asynccontextmanager
async def stream_server(
    pipeline: Path, **settings: Any
) -> AsyncIterator[tuple[str, list[EventRecord], Any]]:
    """The server's app on a free port of 127.0.0.1, under uvicorn as ``voicebot serve`` runs it."""
    app = create_app(load_pipeline(pipeline), ServerSettings(**settings))
    events: list[EventRecord] = []
    app.state.manager.listeners.append(events.append)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    task = asyncio.get_running_loop().create_task(server.serve())
    try:
        await until(lambda: server.started or task.done(), 120)
        assert server.started, "uvicorn did not start"
        yield f"ws://127.0.0.1:{port}", events, app
    finally:
        server.should_exit = True
        await task


def of_type(events: list[EventRecord], kind: str) -> list[EventRecord]:
    return [e for e in events if e["type"] == kind]


async def until(condition: Callable[[], object], within: float) -> None:
    for _ in range(round(within / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"not within {within} s")


async def ended(events: list[EventRecord], within: float = 10.0) -> EventRecord:
    await until(lambda: of_type(events, "call_ended"), within)
    (event,) = of_type(events, "call_ended")
    return event


def live_call(app: Any) -> Any:
    (call,) = app.state.manager.calls.values()
    return call
