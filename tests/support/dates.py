"""The dates a bot running today gives the days a caller names."""

from __future__ import annotations

import datetime as dt


def next_friday() -> str:
    """The date a server gives "Friday" (its next Friday, today included), ISO format."""
    today = dt.date.today()
    return (today + dt.timedelta(days=(4 - today.weekday()) % 7)).isoformat()
