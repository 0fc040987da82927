"""When to try a provider request again, and how long to wait first.

Full jitter (``uniform(0, min(cap, base * 2**attempt))``) spreads the retries of
many clients hit by the same outage instead of synchronising them; a server's
``retry-after-ms`` / ``retry-after`` overrides it, since the server knows better.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass

RETRY_STATUSES = frozenset({408, 409, 429})


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 4
    base_s: float = 0.2
    cap_s: float = 4.0

    def should_retry(self, status: int) -> bool:
        """408 timeout, 409 conflict (a lock), 429 rate limit and 5xx are worth another try."""
        return status in RETRY_STATUSES or status >= 500

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to sleep after failed attempt number ``attempt`` (0-based)."""
        ceiling = min(self.cap_s, self.base_s * 2 ** attempt)
        return (rng or random).uniform(0.0, ceiling)


def retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """The server's requested wait in seconds, from ``retry-after-ms`` or ``retry-after``
    (seconds or an HTTP date); None when absent or unreadable."""
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
