"""One pooled HTTP client per provider, with retries, a rate limit and a total deadline.

Every attempt first reserves a rate-limit token, then takes a concurrency slot that
is held only while the request is in flight — a request sleeping between attempts
does not block others. Each phase (connect, write, read, pool) has its own timeout,
clipped to the time left before the caller's deadline, and the whole attempt is
bounded by that deadline too; a retry whose wait would pass it is not slept.

The seed guide opened a new ``httpx.AsyncClient`` per request (a TCP and TLS
handshake every time); here one pool per provider and event loop is reused.
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
from typing import Any, ClassVar

import httpx

from voicebot.providers.errors import ProviderError
from voicebot.providers.limits import Priority, TokenBucket
from voicebot.providers.retry import RetryPolicy, retry_after

log = logging.getLogger(__name__)

PRIORITY_HEADER = "x-voicebot-priority"


@dataclass(frozen=True)
class ProviderSettings:
    """Where a provider is and how hard to push it; hashable, so it keys shared clients."""

    name: str
    base_url: str
    api_key_env: str = ""  # the variable holding the key, never the key itself
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


@dataclass
class _Pool:
    """What belongs to one event loop: connections and futures cannot cross loops."""

    loop: asyncio.AbstractEventLoop
    http: httpx.AsyncClient
    slots: asyncio.Semaphore


class ProviderClient:
    """Requests to one provider; get the process-wide instance with ``shared``.

    The rate limiter and the counters (``attempts``, ``retries``, ``failures``) are per
    process; the connection pool and the concurrency slots are per event loop.
    """

    _shared: ClassVar[dict[ProviderSettings, ProviderClient]] = {}

    def __init__(self, settings: ProviderSettings) -> None:
        self.settings = settings
        self.base_url = settings.base_url.rstrip("/")
        self.limiter = TokenBucket.per_minute(settings.requests_per_minute, settings.burst)
        self._pools: dict[int, _Pool] = {}
        self.attempts = 0  # requests sent
        self.retries = 0  # waits before another attempt
        self.failures = 0  # request() / stream() calls that raised (a broken stream too)

    def __repr__(self) -> str:
        return f"ProviderClient({self.settings.name!r}, {self.base_url!r})"

    @classmethod
    def shared(cls, settings: ProviderSettings) -> ProviderClient:
        """The process-wide client for ``settings``."""
        client = cls._shared.get(settings)
        if client is None:
            client = cls._shared[settings] = cls(settings)
        return client

    # --- plumbing ------------------------------------------------------------

    def _pool(self) -> _Pool:
        loop = asyncio.get_running_loop()
        pool = self._pools.get(id(loop))
        if pool is not None and pool.loop is loop:
            if pool.http.is_closed:
                pool.http = self._new_http()
            return pool
        # a loop's id can be reused after it is gone: pools of closed loops are dropped
        self._pools = {k: p for k, p in self._pools.items() if not p.loop.is_closed()}
        pool = self._pools[id(loop)] = _Pool(
            loop, self._new_http(), asyncio.Semaphore(self.settings.max_concurrency)
        )
        return pool

    def _new_http(self) -> httpx.AsyncClient:
        s = self.settings
        return httpx.AsyncClient(
            limits=httpx.Limits(
                max_connections=s.max_connections, max_keepalive_connections=s.max_keepalive
            ),
            timeout=self._timeout(None),
        )

    def http(self) -> httpx.AsyncClient:
        """The pooled client of the running event loop (made on first use)."""
        return self._pool().http

    def _timeout(self, left: float | None) -> httpx.Timeout:
        s = self.settings

        def clip(value: float) -> float:
            return value if left is None else max(0.001, min(value, left))

        return httpx.Timeout(
            connect=clip(s.connect_timeout_s),
            read=clip(s.read_timeout_s),
            write=clip(s.write_timeout_s),
            pool=clip(s.pool_timeout_s),
        )

    def _api_key(self) -> str:
        env = self.settings.api_key_env
        return os.environ.get(env, "") if env else ""

    def auth_headers(self) -> dict[str, str]:
        """``Authorization`` from the key's environment variable, read per request (a
        rotated key applies without a restart); no key, no header."""
        key = self._api_key()
        return {"Authorization": f"Bearer {key}"} if key else {}

    def url(self, path: str) -> str:
        return self.base_url + "/" + path.lstrip("/")

    def ws_url(self, path: str) -> str:
        """The WebSocket URL of ``path``: http → ws, https → wss."""
        url = self.url(path)
        for plain, ws in (("https://", "wss://"), ("http://", "ws://")):
            if url.startswith(plain):
                return ws + url[len(plain) :]
        return url

    def _error(self, message: str, **kw: Any) -> ProviderError:
        key = self._api_key()
        if key and key in message:  # a server that echoes the request back
            message = message.replace(key, "***")
        return ProviderError(message, provider=self.settings.name, **kw)

    # --- requests ------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: dict[str, Any] | None = None,
        files: Any = None,
        headers: dict[str, str] | None = None,
        priority: Priority = Priority.LIVE,
        deadline: float | None = None,
    ) -> httpx.Response:
        """Send with retries; returns a 2xx response with its body read.

        ``deadline`` is a ``time.monotonic()`` instant bounding every wait and attempt.
        """
        async with self._exchange(
            method,
            path,
            json=json,
            data=data,
            files=files,
            headers=headers,
            priority=priority,
            deadline=deadline,
            stream=False,
        ) as response:
            return response

    def stream(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: dict[str, Any] | None = None,
        files: Any = None,
        headers: dict[str, str] | None = None,
        priority: Priority = Priority.LIVE,
        deadline: float | None = None,
    ) -> contextlib.AbstractAsyncContextManager[httpx.Response]:
        """Send with retries until a 2xx response's headers arrive; the caller then reads
        the body with ``iter_bytes``. A stream cut after that is never retried blind —
        the audio already played cannot be taken back. The concurrency slot is held
        until the context exits."""
        return self._exchange(
            method,
            path,
            json=json,
            data=data,
            files=files,
            headers=headers,
            priority=priority,
            deadline=deadline,
            stream=True,
        )

    @contextlib.asynccontextmanager
    async def _exchange(
        self,
        method: str,
        path: str,
        *,
        json: Any,
        data: Any,
        files: Any,
        headers: dict[str, str] | None,
        priority: Priority,
        deadline: float | None,
        stream: bool,
    ) -> AsyncIterator[httpx.Response]:
        policy = self.settings.retry
        what = f"{method} {path}"
        last: ProviderError | None = None
        try:
            for attempt in range(policy.max_attempts):
                if last is not None:
                    await self._backoff(attempt, last, deadline, what)
                try:
                    await self.limiter.acquire(1, priority, deadline)
                except ProviderError as exc:
                    raise self._error(f"{what}: {exc.message}", kind="deadline") from last
                pool = self._pool()
                async with self._slot(pool, deadline, what):
                    try:
                        response = await self._attempt(
                            pool,
                            method,
                            path,
                            deadline,
                            stream=stream,
                            json=json,
                            data=data,
                            files=files,
                            headers={
                                PRIORITY_HEADER: priority.name.lower(),
                                **self.auth_headers(),
                                **(headers or {}),
                            },
                        )
                    except ProviderError as exc:
                        if not exc.retryable:
                            raise
                        last = exc
                        continue
                    # outside the try: an error in the caller's body is never retried here
                    try:
                        yield response
                    finally:
                        await response.aclose()
                    return
            assert last is not None
            raise last
        except ProviderError:
            self.failures += 1
            raise

    async def _backoff(
        self, attempt: int, last: ProviderError, deadline: float | None, what: str
    ) -> None:
        """Sleep before ``attempt`` (holding no slot); a wait past the deadline is not slept."""
        wait = (
            last.retry_after
            if last.retry_after is not None
            else (self.settings.retry.delay(attempt - 1))
        )
        if deadline is not None and time.monotonic() + wait >= deadline:
            raise self._error(
                f"{what}: retry {attempt} would wait {wait:.2f} s, past the "
                f"deadline (last: {last})",
                kind="deadline",
            ) from last
        if wait > self.settings.retry.max_retry_after_s:
            raise self._error(
                f"{what}: the provider asks to wait {wait:.0f} s (more than "
                f"{self.settings.retry.max_retry_after_s:.0f} s); giving up "
                f"(last: {last})",
                kind=last.kind,
                status=last.status,
                retry_after=wait,
            ) from last
        self.retries += 1
        log.info(
            "%s: %s; retry %d/%d in %.2f s",
            self.settings.name,
            last,
            attempt,
            self.settings.retry.max_attempts - 1,
            wait,
        )
        await asyncio.sleep(wait)

    @contextlib.asynccontextmanager
    async def _slot(self, pool: _Pool, deadline: float | None, what: str) -> AsyncIterator[None]:
        """One of ``max_concurrency`` slots, waited for no longer than the deadline."""
        try:
            async with asyncio.timeout(None if deadline is None else deadline - time.monotonic()):
                await pool.slots.acquire()
        except TimeoutError:
            raise self._error(
                f"{what}: no concurrency slot before the deadline", kind="deadline"
            ) from None
        try:
            yield
        finally:
            pool.slots.release()

    async def _attempt(
        self,
        pool: _Pool,
        method: str,
        path: str,
        deadline: float | None,
        *,
        stream: bool,
        **content: Any,
    ) -> httpx.Response:
        """One send: a 2xx response (body read unless ``stream``) or a ``ProviderError``."""
        what = f"{method} {path}"
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            raise self._error(f"{what}: the deadline has passed", kind="deadline")
        request = pool.http.build_request(
            method, self.url(path), timeout=self._timeout(left), **content
        )
        self.attempts += 1
        response: httpx.Response | None = None
        try:
            async with asyncio.timeout(left):
                response = await pool.http.send(request, stream=True)
                if response.status_code >= 300:
                    raise await self._status_error(response, what)
                if not stream:
                    await response.aread()
        except TimeoutError:
            raise self._error(f"{what}: no answer before the deadline", kind="deadline") from None
        except httpx.TimeoutException as exc:
            raise self._error(
                f"{what}: {type(exc).__name__}", kind="timeout", retryable=True
            ) from exc
        except (httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            # refused, reset, or a kept-alive connection the server had closed
            kind = "protocol" if response is not None else "connect"
            raise self._error(
                f"{what}: {type(exc).__name__}: {exc}", kind=kind, retryable=True
            ) from exc
        except httpx.HTTPError as exc:  # a bad URL, a proxy, a local protocol error
            raise self._error(f"{what}: {type(exc).__name__}: {exc}", kind="protocol") from exc
        finally:
            if response is not None and (not stream or response.status_code >= 300):
                await response.aclose()
        return response

    async def _status_error(self, response: httpx.Response, what: str) -> ProviderError:
        status = response.status_code
        return self._error(
            f"{what} answered {status}: {await _read_some(response)}",
            kind="rate_limited" if status == 429 else "http",
            status=status,
            retryable=self.settings.retry.should_retry(status),
            retry_after=retry_after(response.headers),
        )

    async def warm(self, deadline_s: float = 3.0) -> bool:
        """Open a pooled connection with ``GET /models`` (free with every provider), so a
        call's first request does not pay the TCP/TLS set-up. A provider that is down now
        is no reason to refuse start-up: False, logged, and the fallback takes over."""
        try:
            await self.request(
                "GET", "/models", priority=Priority.BATCH, deadline=time.monotonic() + deadline_s
            )
        except ProviderError as exc:
            log.warning("provider %s not reachable at start-up: %s", self.settings.name, exc)
            return False
        return True

    async def aclose(self) -> None:
        """Close the running loop's pool."""
        loop = asyncio.get_running_loop()
        pool = self._pools.get(id(loop))
        if pool is not None and pool.loop is loop:
            del self._pools[id(loop)]
            await pool.http.aclose()


async def _read_some(response: httpx.Response, limit: int = 300) -> str:
    """The error message of an OpenAI-shaped error body, else the body's start."""
    try:
        body = await response.aread()
    except httpx.HTTPError:
        return "(body unreadable)"
    try:
        message = jsonlib.loads(body).get("error", {}).get("message")
    except (ValueError, AttributeError):
        message = None  # not OpenAI's error shape: show the body as it is
    if message:
        return str(message)[:limit]
    return body[:limit].decode("utf-8", "replace")


def _provider_of(response: httpx.Response) -> str:
    try:
        return response.request.url.host
    except RuntimeError:  # a response built without a request
        return ""


async def iter_bytes(response: httpx.Response, *, provider: str = "") -> AsyncIterator[bytes]:
    """The streamed body; a cut or stalled stream becomes a ``ProviderError``
    (``protocol`` or ``timeout``), never a bare httpx exception."""
    try:
        async for chunk in response.aiter_bytes():
            yield chunk
    except httpx.TimeoutException as exc:
        raise ProviderError(
            f"the stream stalled: {type(exc).__name__}",
            provider=provider or _provider_of(response),
            kind="timeout",
            status=response.status_code,
        ) from exc
    except httpx.TransportError as exc:
        raise ProviderError(
            f"the stream broke off: {type(exc).__name__}",
            provider=provider or _provider_of(response),
            kind="protocol",
            status=response.status_code,
        ) from exc


def json_body(response: httpx.Response) -> Any:
    """The response's JSON, or ``ProviderError(kind="protocol")`` for garbage."""
    try:
        return response.json()
    except ValueError as exc:
        raise ProviderError(
            f"garbage instead of JSON: {response.text[:80]!r}",
            provider=_provider_of(response),
            kind="protocol",
            status=response.status_code,
        ) from exc


async def close_all() -> None:
    """Close every shared client's pool on the running loop (shutdown, test teardown)."""
    for client in list(ProviderClient._shared.values()):
        await client.aclose()
