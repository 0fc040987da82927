"""What provider speech costs: a price table, a durable ledger, and the ``voicebot costs`` report.

Every lookup is recorded: a cache hit as the cost it avoided, a request as what it
was billed (a failed request costs nothing, but it was a lookup that missed).
Records go to SQLite (WAL) as they happen, so the report covers every process that
used the same file, and the in-memory totals answer per-call questions cheaply.
The hit rate is hits per lookup; the seed guide divided hits by misses.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import sqlite3
import threading
import time
from collections import OrderedDict, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_PATH = Path("var") / "costs.db"
PATH_ENV = "VOICEBOT_COSTS_DB"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    provider TEXT NOT NULL,
    kind TEXT NOT NULL,
    call_id TEXT NOT NULL,
    units REAL NOT NULL,
    cost REAL NOT NULL,
    cached INTEGER NOT NULL,
    ok INTEGER NOT NULL,
    latency_ms REAL NOT NULL
)
"""


@dataclass(frozen=True)
class PriceTable:
    """Prices as configured (check them against the provider's page)."""

    asr_per_second: float = 0.0
    tts_per_1k_chars: float = 0.0
    currency: str = "USD"

    def asr_cost(self, seconds: float) -> float:
        """What ``seconds`` of transcribed audio cost."""
        return seconds * self.asr_per_second

    def tts_cost(self, chars: float) -> float:
        """What ``chars`` synthesized characters cost."""
        return chars / 1000 * self.tts_per_1k_chars


def _empty() -> dict[str, float]:
    return {
        "requests": 0,
        "failed": 0,
        "lookups": 0,
        "hits": 0,
        "cost": 0.0,
        "cost_avoided": 0.0,
        "units": 0.0,
    }


def _add(total: dict[str, float], *, units: float, cost: float, cached: bool, ok: bool) -> None:
    if cached:
        total["lookups"] += 1
        total["hits"] += 1
        total["cost_avoided"] += cost
        return
    total["lookups"] += 1  # a miss, whatever the request then did
    if not ok:
        total["failed"] += 1
        return
    total["requests"] += 1
    total["cost"] += cost
    total["units"] += units


def _finish(total: dict[str, float]) -> dict[str, float]:
    out = dict(total)
    out["hit_rate"] = total["hits"] / total["lookups"] if total["lookups"] else 0.0
    return out


class CostLedger:
    """Cost records, in memory and (with a path) durable in SQLite.

    ``record(cached=True)`` is a lookup that hit (``cost`` is what it avoided);
    ``cached=False, ok=True`` a billed request; ``ok=False`` a request that failed.
    Per-call totals are kept for the last ``max_calls`` calls, so a server that runs
    for months does not grow without bound; the file keeps everything.
    """

    def __init__(self, path: str | Path | None = None, *, max_calls: int = 10_000) -> None:
        self.path = Path(path) if path is not None else None
        self.max_calls = max_calls
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._db_failed = False
        self._total = _empty()
        self._calls: OrderedDict[str, dict[str, dict[str, float]]] = OrderedDict()
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=5.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # WAL: durable across a crash
            self._db.execute(_SCHEMA)
            self._db.commit()

    def record(
        self,
        *,
        provider: str,
        kind: str,
        units: float,
        cost: float,
        cached: bool,
        call_id: str = "",
        latency_ms: float = 0.0,
        ok: bool = True,
    ) -> None:
        """Count one lookup and write it to the file (blocking: see ``arecord``)."""
        if kind not in ("asr", "tts"):
            raise ValueError(f"kind must be asr or tts, not {kind!r}")
        with self._lock:
            _add(self._total, units=units, cost=cost, cached=cached, ok=ok)
            if call_id:
                kinds = self._calls.get(call_id)
                if kinds is None:
                    kinds = self._calls[call_id] = defaultdict(_empty)
                    while len(self._calls) > self.max_calls:
                        self._calls.popitem(last=False)
                _add(kinds[kind], units=units, cost=cost, cached=cached, ok=ok)
            if self._db is not None:
                try:
                    self._db.execute(
                        "INSERT INTO requests (at, provider, kind, call_id, units, cost, "
                        "cached, ok, latency_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            time.time(),
                            provider,
                            kind,
                            call_id,
                            units,
                            cost,
                            int(cached),
                            int(ok),
                            latency_ms,
                        ),
                    )
                    self._db.commit()
                except sqlite3.Error as exc:  # a full disk must not end a call
                    if not self._db_failed:
                        self._db_failed = True
                        log.error(
                            "cost ledger %s: cannot write (%s); totals stay in memory",
                            self.path,
                            exc,
                        )

    async def arecord(self, **record: Any) -> None:
        """``record`` with the SQLite write off the event loop."""
        await asyncio.to_thread(functools.partial(self.record, **record))

    def totals(self) -> dict[str, float]:
        with self._lock:
            return _finish(self._total)

    def per_call(self, call_id: str) -> dict[str, dict[str, float]]:
        """Per kind (``asr``/``tts``) totals of one call; empty kinds are zeros."""
        with self._lock:
            kinds = self._calls.get(call_id, {})
            return {kind: _finish(kinds.get(kind, _empty())) for kind in ("asr", "tts")}

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


@functools.cache
def _ledger(path: str) -> CostLedger:
    return CostLedger(path)


def default_path() -> Path:
    return Path(os.environ.get(PATH_ENV) or DEFAULT_PATH)


def default_ledger() -> CostLedger:
    """The process-wide ledger (``var/costs.db``, or ``$VOICEBOT_COSTS_DB``)."""
    return _ledger(str(default_path().resolve()))


def cost_report(path: str | Path, *, since: float | None = None) -> dict[str, Any]:
    """Totals per provider and kind (``rows``), and overall (``total``), from a ledger
    file: requests (billed), failed, lookups, hits, hit_rate, cost, cost_avoided, units.
    ``since`` is a Unix time."""
    rows: list[tuple[Any, ...]] = []
    if Path(path).exists():
        with contextlib.closing(sqlite3.connect(path, timeout=5.0)) as db:
            query = "SELECT provider, kind, units, cost, cached, ok FROM requests"
            try:
                rows = db.execute(
                    query + (" WHERE at >= ?" if since is not None else ""),
                    (since,) if since is not None else (),
                ).fetchall()
            except sqlite3.OperationalError as exc:
                if "no such table" not in str(exc):
                    raise  # an empty file is an empty report; anything else is news
    groups: dict[tuple[str, str], dict[str, float]] = defaultdict(_empty)
    total = _empty()
    for provider, kind, units, cost, cached, ok in rows:
        for bucket in (groups[(provider, kind)], total):
            _add(bucket, units=units, cost=cost, cached=bool(cached), ok=bool(ok))
    return {
        "rows": [{"provider": p, "kind": k, **_finish(v)} for (p, k), v in sorted(groups.items())],
        "total": _finish(total),
    }


def format_report(report: dict[str, Any]) -> str:
    """The report as a plain text table (units: audio seconds for ASR, characters for TTS)."""
    head = (
        "provider",
        "kind",
        "requests",
        "failed",
        "lookups",
        "hit rate",
        "units",
        "cost $",
        "avoided $",
    )
    lines = [[*head]]
    for row in [*report["rows"], {"provider": "total", "kind": "", **report["total"]}]:
        lines.append(
            [
                row["provider"],
                row["kind"],
                f"{row['requests']:.0f}",
                f"{row['failed']:.0f}",
                f"{row['lookups']:.0f}",
                f"{row['hit_rate']:.1%}",
                f"{row['units']:.1f}" if row["kind"] else "",
                f"{row['cost']:.6f}",
                f"{row['cost_avoided']:.6f}",
            ]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    out = []
    for n, line in enumerate(lines):
        out.append(
            "  ".join(
                c.ljust(w) if i < 2 else c.rjust(w)
                for i, (c, w) in enumerate(zip(line, widths, strict=True))
            )
        )
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)
