"""Run a fake provider API (a Starlette app) under uvicorn on a free port of 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import uvicorn
from starlette.applications import Starlette

from voicebot.server.child import free_port


@contextlib.asynccontextmanager
async def serving(app: Starlette, name: str) -> AsyncIterator[str]:
    """``app`` on a free port for the duration of the block; yields ``http://127.0.0.1:PORT``."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.get_running_loop().create_task(server.serve())
    try:
        for _ in range(200):
            if server.started or task.done():
                break
            await asyncio.sleep(0.025)
        assert server.started, f"the fake {name} did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
