"""When to try a provider request again, and how long to wait first.

Full jitter (``uniform(0, min(cap, base * 2**attempt))``) spreads the retries of
many clients hit by the same outage instead of synchronising them; a server's
``retry-after-ms`` / ``retry-after`` overrides it, since the server knows better.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import math
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass

RETRY_STATUSES = frozenset({408, 409, 429})


@dataclass(frozen=True)
class RetryPolicy:
    """How many attempts a request gets, which statuses earn another, and the backoff."""

    max_attempts: int = 4
    base_s: float = 0.2
    cap_s: float = 4.0
    retry_statuses: frozenset[int] = RETRY_STATUSES
    max_retry_after_s: float = 60.0  # a server asking for longer is an outage, not a pause

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_s < 0 or self.cap_s < 0:
            raise ValueError("base_s and cap_s must not be negative")

    def should_retry(self, status: int) -> bool:
        """408 timeout, 409 conflict (a lock), 429 rate limit and any 5xx are worth another
        try; other 4xx would fail the same way again."""
        return status in self.retry_statuses or status >= 500

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to sleep after failed attempt number ``attempt`` (0-based)."""
        ceiling = min(self.cap_s, self.base_s * 2**attempt)
        return (rng or random).uniform(0.0, ceiling)


def _seconds(value: str, scale: float = 1.0) -> float | None:
    try:
        seconds = float(value) * scale
    except ValueError:
        return None
    return max(0.0, seconds) if math.isfinite(seconds) else None


def retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """The server's requested wait in seconds, from ``retry-after-ms`` (OpenAI's, more
    precise) or ``retry-after`` (seconds or an HTTP date, relative to ``now``, a Unix
    time); None when absent or unreadable."""
    ms = headers.get("retry-after-ms")
    if ms is not None and (seconds := _seconds(ms, 0.001)) is not None:
        return seconds
    value = headers.get("retry-after")
    if value is None:
        return None
    if (seconds := _seconds(value)) is not None:
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP date is GMT even when it does not say so
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
