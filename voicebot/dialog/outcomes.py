"""Durable outcomes: what a call achieved (a booking), committed before the bot says so.

The default store is SQLite in WAL mode with ``synchronous=FULL``. In WAL mode
``NORMAL`` already survives a killed process (the commit is in the WAL file),
but not a power cut or kernel crash: the WAL is only fsynced at checkpoints, so
the last transactions can vanish. ``FULL`` fsyncs the WAL at every commit. An
outcome is written once per transaction (a few per call), so one fsync each is
cheap, and "the bot said it is booked" then really means it is on disk.

SQLite calls block, so every write runs on the store's own single worker thread
(one connection, used only there); the event loop only awaits the result.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

DEFAULT_DB = Path("var") / "outcomes.db"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outcomes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    flow TEXT NOT NULL,
    slots TEXT NOT NULL,
    created_at TEXT NOT NULL
)
"""


@dataclass(slots=True)
class Outcome:
    """One committed transaction. ``created_at`` is UTC wall time (ISO 8601)."""

    call_id: str
    kind: str
    slots: dict[str, Any]
    flow: str = ""
    created_at: str = field(
        default_factory=lambda: datetime.now(UTC).isoformat(timespec="milliseconds")
    )
    id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "call_id": self.call_id,
            "kind": self.kind,
            "flow": self.flow,
            "slots": self.slots,
            "created_at": self.created_at,
        }


class OutcomeStore(ABC):
    """Where outcomes go. ``commit`` returns only once the outcome is durable."""

    @abstractmethod
    async def commit(self, outcome: Outcome) -> Outcome:
        """Store ``outcome`` durably; returns it with its ``id`` set."""


class MemoryOutcomeStore(OutcomeStore):
    """Keeps outcomes in a list: for dialog tests, which must not touch a real store."""

    def __init__(self) -> None:
        self.outcomes: list[Outcome] = []

    async def commit(self, outcome: Outcome) -> Outcome:
        outcome.id = len(self.outcomes) + 1
        self.outcomes.append(outcome)
        return outcome


class SqliteOutcomeStore(OutcomeStore):
    """SQLite (WAL, synchronous=FULL) on one worker thread; safe to share between calls."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="outcomes")
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        # Runs on the worker thread only.
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=10.0
            )
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise sqlite3.OperationalError(f"{self.path}: cannot enable WAL (got {mode})")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute(_SCHEMA)
            self._conn = conn
        return self._conn

    def commit_sync(self, outcome: Outcome) -> Outcome:
        """The blocking write (worker thread, or scripts without a loop)."""
        with self._lock:
            conn = self._connect()
            conn.execute("BEGIN IMMEDIATE")
            try:
                cur = conn.execute(
                    "INSERT INTO outcomes (call_id, kind, flow, slots, created_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (
                        outcome.call_id,
                        outcome.kind,
                        outcome.flow,
                        json.dumps(outcome.slots, ensure_ascii=False, sort_keys=True),
                        outcome.created_at,
                    ),
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        outcome.id = cur.lastrowid
        return outcome

    def pragmas(self) -> dict[str, Any]:
        """The connection's journal mode and synchronous level (2 = FULL), for checks."""

        def read() -> dict[str, Any]:
            conn = self._connect()
            return {
                "journal_mode": conn.execute("PRAGMA journal_mode").fetchone()[0],
                "synchronous": conn.execute("PRAGMA synchronous").fetchone()[0],
            }

        return self._executor.submit(read).result()

    async def commit(self, outcome: Outcome) -> Outcome:
        loop = asyncio.get_running_loop()
        # Shielded: a hang-up while the write is in flight must not make us
        # forget whether it happened (the thread finishes it either way).
        return await asyncio.shield(loop.run_in_executor(self._executor, self.commit_sync, outcome))

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        if self._conn is not None:
            self._conn.close()
            self._conn = None


_STORES: dict[Path, SqliteOutcomeStore] = {}


def sqlite_store(path: str | Path) -> SqliteOutcomeStore:
    """The process-wide store for ``path`` (one writer thread per database file)."""
    key = Path(path).resolve()
    store = _STORES.get(key)
    if store is None:
        store = _STORES[key] = SqliteOutcomeStore(key)
    return store


def read_outcomes(path: str | Path, limit: int | None = None) -> list[Outcome]:
    """Every outcome in the database at ``path``, oldest first.

    A read-write connection (it only reads): after a crash the first connection
    may have to rebuild the WAL index, which a read-only one cannot.
    """
    path = Path(path)
    if not path.exists():
        return []
    conn = sqlite3.connect(path, timeout=10.0)
    try:
        exists = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='outcomes'"
        ).fetchone()
        if not exists:
            return []
        sql = "SELECT id, call_id, kind, flow, slots, created_at FROM outcomes ORDER BY id"
        rows = conn.execute(sql).fetchall()
    finally:
        conn.close()
    if limit is not None:
        rows = rows[-limit:]
    return [
        Outcome(
            call_id=r[1], kind=r[2], flow=r[3], slots=json.loads(r[4]), created_at=r[5], id=r[0]
        )
        for r in rows
    ]


def format_outcomes(outcomes: list[Outcome]) -> str:
    """A table for the terminal: one line per outcome."""
    if not outcomes:
        return "no outcomes"
    lines = []
    for o in outcomes:
        slots = " ".join(f"{k}={v}" for k, v in sorted(o.slots.items()))
        lines.append(f"{o.id:>5}  {o.created_at}  {o.call_id}  {o.kind:<12} {slots}")
    return "\n".join(lines)
