"""The server app under uvicorn in the test's own process, for calls over media streams.

The test sees the calls' events and the call registry; the provider is a
protocol-faithful client (``stream_clients.py``). The waiting helpers are
``server.py``'s, importable from here too.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from tests.support.server import ended, live_call, of_type, served, until
from voicebot.config import load_pipeline
from voicebot.events import EventRecord
from voicebot.server.calls import ServerSettings

__all__ = ["ended", "live_call", "of_type", "stream_server", "until"]


@contextlib.asynccontextmanager
async def stream_server(
    pipeline: Path, **settings: Any
) -> AsyncIterator[tuple[str, list[EventRecord], Any]]:
    """The server's app on a free port of 127.0.0.1, under uvicorn as ``voicebot serve`` runs it;
    ``settings`` are ``ServerSettings`` fields. Yields its ``ws://`` base URL."""
    async with served(load_pipeline(pipeline), ServerSettings(**settings), http=True) as (
        port,
        events,
        app,
    ):
        yield f"ws://127.0.0.1:{port}", events, app
