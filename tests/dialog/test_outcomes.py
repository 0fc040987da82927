"""The outcome store: SQLite WAL + synchronous=FULL, written off the loop, survives kill -9."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from tests.support.paths import RESTAURANT_PIPELINE, ROOT
from voicebot.dialog.outcomes import Outcome, SqliteOutcomeStore, read_outcomes


def outcomes_cli(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "voicebot", "outcomes", "--db", str(db), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )


class ThreadRecordingStore(SqliteOutcomeStore):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.threads: set[str] = set()

    def commit_sync(self, outcome: Outcome) -> Outcome:
        self.threads.add(threading.current_thread().name)
        return super().commit_sync(outcome)


async def test_commits_are_durable_wal_and_off_the_loop(tmp_path):
    store = ThreadRecordingStore(tmp_path / "var" / "outcomes.db")
    try:
        results = await asyncio.gather(
            *(
                store.commit(
                    Outcome(f"call{i}", "booking", {"party_size": i, "day": "friday"}, "r")
                )
                for i in range(20)
            )
        )
        assert sorted(o.id for o in results) == list(range(1, 21))
        assert store.pragmas() == {"journal_mode": "wal", "synchronous": 2}  # 2 = FULL
        assert store.threads and threading.main_thread().name not in store.threads
    finally:
        store.close()
    rows = read_outcomes(tmp_path / "var" / "outcomes.db")
    assert [r.call_id for r in rows] == [f"call{i}" for i in range(20)]
    assert rows[3].slots == {"party_size": 3, "day": "friday"} and rows[3].flow == "r"


def test_outcomes_cli_table_and_json(tmp_path):
    db = tmp_path / "o.db"
    store = SqliteOutcomeStore(db)
    store.commit_sync(
        Outcome(
            "abc123",
            "booking",
            {"party_size": 4, "time": "19:30"},
            "r",
            created_at="2025-06-06T10:00:00.000+00:00",
        )
    )
    store.close()
    table = outcomes_cli(db)
    assert table.returncode == 0
    assert table.stdout.split() == [
        "1",
        "2025-06-06T10:00:00.000+00:00",
        "abc123",
        "booking",
        "party_size=4",
        "time=19:30",
    ]
    data = json.loads(outcomes_cli(db, "--json").stdout)
    assert data == [
        {
            "id": 1,
            "call_id": "abc123",
            "kind": "booking",
            "flow": "r",
            "slots": {"party_size": 4, "time": "19:30"},
            "created_at": "2025-06-06T10:00:00.000+00:00",
        }
    ]
    assert json.loads(outcomes_cli(tmp_path / "none.db", "--json").stdout) == []


def test_a_commit_survives_kill_9_of_the_writer(tmp_path):
    """The process dies right after commit returns, before any checkpoint or close."""
    db = tmp_path / "o.db"
    script = textwrap.dedent(f"""
        import asyncio, os, signal
        from voicebot.dialog.outcomes import Outcome, SqliteOutcomeStore
        async def main():
            store = SqliteOutcomeStore({str(db)!r})
            await store.commit(Outcome("killed", "booking", {{"party_size": 2}}))
            os.kill(os.getpid(), signal.SIGKILL)
        asyncio.run(main())
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert os.path.exists(str(db) + "-wal")  # the commit lives in the WAL, not yet checkpointed
    assert [(o.call_id, o.slots) for o in read_outcomes(db)] == [("killed", {"party_size": 2})]


def test_booking_survives_kill_9_right_after_the_confirmation_starts(tmp_path):
    """``voicebot run`` books a table; kill -9 as soon as the "booked" reply is on its way."""
    from voicebot.samples import write_caller

    caller = tmp_path / "caller.wav"
    # The booking request barges into the greeting (allowed); "yes" follows the confirmation.
    write_caller(
        caller,
        ["I would like to book a table for two people on Saturday at eight pm.", "Yes, please."],
        pause=7.0,
    )
    db, events_path = tmp_path / "outcomes.db", tmp_path / "events.jsonl"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "voicebot",
            "run",
            str(RESTAURANT_PIPELINE),
            "-i",
            str(caller),
            "-o",
            str(tmp_path / "bot.wav"),
            "-e",
            str(events_path),
            "--outcomes-db",
            str(db),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: list[dict] = []
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            lines = events_path.read_text().splitlines() if events_path.exists() else []
            seen = [json.loads(line) for line in lines if line.endswith("}")]
            types = [e["type"] for e in seen]
            if "outcome" in types and "reply" in types[types.index("outcome") :]:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.01)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read() if proc.stderr else ""
    types = [e["type"] for e in seen]
    assert "call_ended" not in types  # killed mid-call
    outcome = next(e for e in seen if e["type"] == "outcome")
    listed = json.loads(outcomes_cli(db, "--json").stdout)
    from voicebot.nlu.slot_day import parse_day

    saturday = parse_day("saturday", "en").date.isoformat()  # type: ignore[union-attr]
    assert [(o["kind"], o["slots"], o["call_id"]) for o in listed] == [
        (
            "booking",
            {"party_size": 2, "day": "saturday", "day_date": saturday, "time": "20:00"},
            outcome["call_id"],
        )
    ]
