"""One pooled HTTP client per provider, with retries, a rate limit and a total deadline.

Every attempt first reserves a rate-limit token, then takes a concurrency slot that
is held only while the request is in flight — a request sleeping between attempts
does not block others. Each phase (connect, write, read, pool) has its own timeout,
clipped to the time left before the caller's deadline; an attempt that could not
finish before the deadline is not started.
"""

from __future__ import annotations

import asyncio
import contextlib
import json as jsonlib
import logging
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from voicebot.providers.errors import ProviderError
from voicebot.providers.limits import Priority, TokenBucket
from voicebot.providers.retry import RetryPolicy, retry_after

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProviderSettings:
    name: str
    base_url: str
    api_key_env: str = ""
    connect_timeout_s: float = 3.0
    read_timeout_s: float = 30.0
    write_timeout_s: float = 30.0
    pool_timeout_s: float = 5.0
    max_connections: int = 20
    max_keepalive: int = 10
    max_concurrency: int = 10
    requests_per_minute: float = 60.0
    burst: int | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)


class ProviderClient:
    """Requests to one provider; get the process-wide instance with ``shared``."""

    _shared: dict[ProviderSettings, ProviderClient] = {}  # noqa: RUF012 - a registry

    def __init__(self, settings: ProviderSettings) -> None:
        self.settings = settings
        self.base_url = settings.base_url.rstrip("/")
        self.limiter = TokenBucket.per_minute(settings.requests_per_minute, settings.burst)
        self._http: dict[int, httpx.AsyncClient] = {}  # per event loop
        self._slots: dict[int, asyncio.Semaphore] = {}
        self.attempts = 0
        self.retries = 0
        self.failures = 0

    @classmethod
    def shared(cls, settings: ProviderSettings) -> ProviderClient:
        if settings not in cls._shared:
            cls._shared[settings] = cls(settings)
        return cls._shared[settings]

    # --- plumbing ------------------------------------------------------------

    def _loop_key(self) -> int:
        return id(asyncio.get_running_loop())

    def http(self) -> httpx.AsyncClient:
        """The pooled client of the running event loop (made on first use)."""
        key = self._loop_key()
        client = self._http.get(key)
        if client is None or client.is_closed:
            s = self.settings
            client = httpx.AsyncClient(
                limits=httpx.Limits(max_connections=s.max_connections,
                                    max_keepalive_connections=s.max_keepalive),
                timeout=self._timeout(None))
            self._http = {k: c for k, c in self._http.items() if not c.is_closed}
            self._http[key] = client
        return client

    def _slot(self) -> asyncio.Semaphore:
        key = self._loop_key()
        if key not in self._slots:
            self._slots[key] = asyncio.Semaphore(self.settings.max_concurrency)
        return self._slots[key]

    def _timeout(self, left: float | None) -> httpx.Timeout:
        s = self.settings

        def clip(value: float) -> float:
            return value if left is None else max(0.001, min(value, left))

        return httpx.Timeout(connect=clip(s.connect_timeout_s), read=clip(s.read_timeout_s),
                             write=clip(s.write_timeout_s), pool=clip(s.pool_timeout_s))

    def auth_headers(self) -> dict[str, str]:
        """``Authorization`` from the key's environment variable, read per request."""
        key = os.environ.get(self.settings.api_key_env, "") if self.settings.api_key_env else ""
        return {"Authorization": f"Bearer {key}"} if key else {}

    def url(self, path: str) -> str:
        return self.base_url + "/" + path.lstrip("/")

    def ws_url(self, path: str) -> str:
        url = self.url(path)
        if url.startswith("https://"):
            return "wss://" + url[len("https://"):]
        if url.startswith("http://"):
            return "ws://" + url[len("http://"):]
        return url

    def _error(self, message: str, **kw: Any) -> ProviderError:
        return ProviderError(message, provider=self.settings.name, **kw)

    # --- requests ------------------------------------------------------------

    async def request(self, method: str, path: str, *, json: Any = None,
                      data: dict[str, Any] | None = None, files: Any = None,
                      headers: dict[str, str] | None = None,
                      priority: Priority = Priority.LIVE,
                      deadline: float | None = None) -> httpx.Response:
        """Send with retries; returns a 2xx response with its body read."""
        async with self._attempts(method, path, json=json, data=data, files=files,
                                  headers=headers, priority=priority, deadline=deadline,
                                  stream=False) as response:
            return response

    def stream(self, method: str, path: str, *, json: Any = None,
               data: dict[str, Any] | None = None, headers: dict[str, str] | None = None,
               priority: Priority = Priority.LIVE,
               deadline: float | None = None) -> contextlib.AbstractAsyncContextManager[
                   httpx.Response]:
        """Send with retries until a 2xx response's headers arrive; the body is then read
        by the caller (``iter_bytes``). A stream cut later is never retried blind."""
        return self._attempts(method, path, json=json, data=data, files=None,
                              headers=headers, priority=priority, deadline=deadline,
                              stream=True)

    @contextlib.asynccontextmanager
    async def _attempts(self, method: str, path: str, *, json: Any, data: Any, files: Any,
                        headers: dict[str, str] | None, priority: Priority,
                        deadline: float | None, stream: bool) -> AsyncIterator[httpx.Response]:
        policy = self.settings.retry
        url = self.url(path)
        all_headers = {**self.auth_headers(), **(headers or {})}
        last: ProviderError | None = None
        for attempt in range(policy.max_attempts):
            if attempt:
                wait = last.retry_after if last and last.retry_after is not None else (
                    policy.delay(attempt - 1))
                if deadline is not None and time.monotonic() + wait >= deadline:
                    self.failures += 1
                    raise self._error(f"deadline reached before retry {attempt} "
                                      f"(last: {last})", kind="deadline") from last
                self.retries += 1
                await asyncio.sleep(wait)  # no slot held while sleeping
            await self.limiter.acquire(1, priority, deadline)
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                self.failures += 1
                raise self._error("deadline reached", kind="deadline") from last
            async with self._slot():
                self.attempts += 1
                request = self.http().build_request(
                    method, url, json=json, data=data, files=files, headers=all_headers,
                    timeout=self._timeout(left))
                try:
                    response = await self.http().send(request, stream=True)
                except httpx.TimeoutException as exc:
                    last = self._error(f"{type(exc).__name__} on {method} {path}",
                                       kind="timeout", retryable=True)
                    continue
                except (httpx.ConnectError, httpx.RemoteProtocolError,
                        httpx.ReadError, httpx.WriteError) as exc:
                    last = self._error(f"{type(exc).__name__} on {method} {path}",
                                       kind="connect", retryable=True)
                    continue
                try:
                    if response.status_code >= 300:
                        body = await _read_some(response)
                        last = self._error(
                            f"{method} {path} answered {response.status_code}: {body}",
                            kind="rate_limited" if response.status_code == 429 else "http",
                            status=response.status_code,
                            retryable=policy.should_retry(response.status_code),
                            retry_after=retry_after(response.headers))
                        if not last.retryable:
                            break
                        continue
                    if stream:
                        # the slot stays held while the body streams: concurrency
                        # counts live streams too
                        yield response
                        return
                    try:
                        await response.aread()
                    except httpx.HTTPError as exc:
                        last = self._error(f"body of {method} {path} broke off: "
                                           f"{type(exc).__name__}", kind="protocol",
                                           retryable=True)
                        continue
                    yield response
                    return
                finally:
                    await response.aclose()
        self.failures += 1
        assert last is not None
        raise last

    async def aclose(self) -> None:
        key = self._loop_key()
        client = self._http.pop(key, None)
        if client is not None:
            await client.aclose()


async def _read_some(response: httpx.Response, limit: int = 300) -> str:
    try:
        body = await response.aread()
    except httpx.HTTPError:
        return "(body unreadable)"
    text = body[:limit].decode("utf-8", "replace")
    try:
        message = jsonlib.loads(body).get("error", {}).get("message")
        if message:
            return str(message)[:limit]
    except (ValueError, AttributeError):
        pass
    return text


async def iter_bytes(response: httpx.Response, *, provider: str = "") -> AsyncIterator[bytes]:
    """The streamed body; a cut or stalled stream becomes a ``ProviderError``."""
    try:
        async for chunk in response.aiter_bytes():
            yield chunk
    except httpx.TimeoutException as exc:
        raise ProviderError("the stream stalled", provider=provider, kind="timeout") from exc
    except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
        raise ProviderError(f"the stream broke off: {type(exc).__name__}", provider=provider,
                            kind="protocol") from exc


def json_body(response: httpx.Response) -> Any:
    """The response's JSON, or ``ProviderError(kind="protocol")`` for garbage."""
    try:
        return response.json()
    except ValueError as exc:
        raise ProviderError(f"garbage instead of JSON: {response.text[:80]!r}",
                            kind="protocol", status=response.status_code) from exc


async def close_all() -> None:
    """Close every shared client's pool on the running loop (shutdown, test teardown)."""
    for client in list(ProviderClient._shared.values()):
        await client.aclose()
