"""What a speech API request passes before any model work: its key, a bounded body, a job slot.

Kept apart from the routes so each check is small and answers in the OpenAI error
shape (``openai_errors.py``) before a byte of audio is decoded or synthesized.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request

from voicebot.server.auth import same_secret
from voicebot.server.openai_errors import ApiError, bad_request


class JobGate:
    """At most ``concurrency`` jobs at once and ``queue`` waiting; beyond that, 503.

    A refused job costs the client one round trip; a queue without bound would cost
    every client its latency instead.
    """

    def __init__(self, concurrency: int, queue: int) -> None:
        self.concurrency = concurrency
        self.queue = queue
        self.active = 0
        self.waiting = 0
        self._slots: asyncio.Semaphore | None = None  # made on the serving loop

    def check(self) -> None:
        """503 when every slot and queue place is taken."""
        if self.active + self.waiting >= self.concurrency + self.queue:
            raise ApiError(
                503,
                "the speech server is overloaded; retry shortly",
                code="overloaded",
                headers={"retry-after": "1"},
            )

    async def enter(self, *, admitted: bool = False) -> None:
        """Wait for a slot (``admitted``: ``check`` already passed, the response started)."""
        if not admitted:
            self.check()
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.concurrency)
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        self.active += 1

    def leave(self) -> None:
        """Free the slot; synchronous, so a cancelled job's ``finally`` always completes it."""
        self.active -= 1
        assert self._slots is not None
        self._slots.release()


def check_key(given: str | None, keys: tuple[str, ...]) -> None:
    """401 unless ``given`` is one of ``keys`` (no keys configured: everyone passes).

    Every key is compared in constant time, so timing tells nothing about any of them.
    """
    if not keys:
        return
    if not given:
        raise ApiError(
            401, "missing API key: send Authorization: Bearer <key>", code="invalid_api_key"
        )
    matches = [same_secret(given, k) for k in keys]
    if not any(matches):
        raise ApiError(401, "incorrect API key", code="invalid_api_key")


def number(value: Any, name: str, default: float, lo: float, hi: float) -> float:
    """A numeric field within ``[lo, hi]``, or 400 naming it."""
    if value is None or value == "":
        return default
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise bad_request(f"{name} must be a number", name) from None
    if not lo <= result <= hi:
        raise bad_request(f"{name} must be within [{lo:g}, {hi:g}]", name)
    return result


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 from its Content-Length or as soon as it outgrows ``limit``."""
    length = request.headers.get("content-length")
    too_large = ApiError(
        413, f"request body over the limit of {limit} bytes", code="request_too_large"
    )
    if length and length.isdigit() and int(length) > limit:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large
    return bytes(body)


async def read_form(request: Request, limit: int) -> FormData:
    """A multipart body of at most ``limit`` bytes (counted as it arrives), parsed."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise bad_request("send multipart/form-data with a 'file' field", "file")
    # Starlette parses from ``_body`` when it is set: the bounded read above stands in
    # for its own unbounded one.
    request._body = await read_body(request, limit)
    try:
        return await request.form(max_part_size=limit)
    except Exception as exc:  # the multipart parser's own errors
        raise bad_request(f"malformed multipart body: {exc}") from exc


async def read_json(request: Request, limit: int) -> dict[str, Any]:
    """A JSON object body of at most ``limit`` bytes."""
    body = await read_body(request, limit)
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise bad_request(f"malformed JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise bad_request("expected a JSON object")
    return data
