"""Cost ledger and report: per request, per call, totals, durable, cache savings."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time

import pytest

from voicebot.providers.costs import (
    CostLedger,
    PriceTable,
    cost_report,
    default_ledger,
    format_report,
)
from voicebot.providers.presets import PRESETS, preset


def test_price_table():
    prices = PriceTable(asr_per_second=0.0001, tts_per_1k_chars=0.015)
    assert prices.asr_cost(3600) == pytest.approx(0.36)
    assert prices.tts_cost(500) == pytest.approx(0.0075)


def test_presets():
    assert preset("openai").prices.asr_per_second == pytest.approx(0.006 / 60)
    assert preset("openai").prices.tts_cost(1000) == pytest.approx(0.015)
    assert preset("holysheep").prices.asr_cost(3600) == pytest.approx(0.36)
    assert preset("holysheep").requests_per_minute == 60
    assert preset("voicebot").prices.asr_cost(3600) == 0.0
    for p in PRESETS.values():
        assert p.base_url.endswith("/v1") and p.api_key_env.endswith("_API_KEY")
    assert set(PRESETS) == {"openai", "holysheep", "voicebot"}
    with pytest.raises(ValueError, match="openai, holysheep, voicebot"):
        preset("acme")


def fill(ledger: CostLedger) -> None:
    ledger.record(provider="openai", kind="asr", units=10.0, cost=0.001, cached=False, call_id="c1")
    ledger.record(provider="openai", kind="asr", units=10.0, cost=0.001, cached=True, call_id="c1")
    ledger.record(provider="openai", kind="tts", units=500, cost=0.0075, cached=False, call_id="c2")
    ledger.record(
        provider="openai", kind="tts", units=500, cost=0.0, cached=False, call_id="c2", ok=False
    )


def test_totals_and_per_call(tmp_path):
    ledger = CostLedger(tmp_path / "c.db")
    fill(ledger)
    totals = ledger.totals()
    assert totals["requests"] == 2 and totals["failed"] == 1
    assert totals["lookups"] == 4 and totals["hits"] == 1  # the failed one missed too
    assert totals["hit_rate"] == pytest.approx(1 / 4)  # hits per lookup, not per miss
    assert totals["cost"] == pytest.approx(0.0085)  # the failure cost nothing
    assert totals["cost_avoided"] == pytest.approx(0.001)
    assert totals["units"] == pytest.approx(510.0)  # billed units only
    c1 = ledger.per_call("c1")
    assert c1["asr"]["requests"] == 1 and c1["asr"]["hits"] == 1 and c1["tts"]["lookups"] == 0
    assert c1["asr"]["hit_rate"] == 0.5
    assert ledger.per_call("c2")["tts"]["cost"] == pytest.approx(0.0075)
    assert ledger.per_call("nobody")["asr"]["lookups"] == 0
    with pytest.raises(ValueError):
        ledger.record(provider="openai", kind="llm", units=1, cost=1, cached=False)


def test_per_call_totals_are_bounded_in_memory():
    ledger = CostLedger(None, max_calls=3)
    for n in range(5):
        ledger.record(
            provider="p", kind="tts", units=10, cost=0.1, cached=False, call_id=f"call{n}"
        )
    assert ledger.per_call("call0")["tts"]["requests"] == 0  # forgotten: the oldest
    assert ledger.per_call("call4")["tts"]["requests"] == 1
    assert ledger.totals()["requests"] == 5  # the totals keep everything


async def test_records_are_durable_and_reported(tmp_path):
    path = tmp_path / "c.db"
    ledger = CostLedger(path)
    fill(ledger)
    await ledger.arecord(provider="holysheep", kind="asr", units=60.0, cost=0.006, cached=False)
    ledger.close()
    report = cost_report(path)  # a new reader, as `voicebot costs` in another process
    rows = {(r["provider"], r["kind"]): r for r in report["rows"]}
    assert rows[("openai", "asr")]["hit_rate"] == 0.5
    assert rows[("openai", "asr")]["cost_avoided"] == pytest.approx(0.001)
    assert rows[("openai", "tts")]["failed"] == 1 and rows[("openai", "tts")]["requests"] == 1
    assert rows[("holysheep", "asr")]["units"] == 60.0
    assert report["total"]["cost"] == pytest.approx(0.0145)
    assert report["total"]["requests"] == 3 and report["total"]["hits"] == 1
    assert report["total"]["hit_rate"] == pytest.approx(1 / 5)
    text = format_report(report)
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["provider", "kind", "requests"] and "hit rate" in lines[0]
    assert set(lines[1]) <= {"-", " "}
    holysheep = next(line for line in lines if line.startswith("holysheep"))
    assert holysheep.split()[:3] == ["holysheep", "asr", "1"] and "0.006000" in holysheep
    assert "50.0%" in next(line for line in lines if line.startswith("openai") and "asr" in line)
    assert lines[-1].startswith("total") and "20.0%" in lines[-1]
    assert len({len(line) for line in lines}) == 1  # columns line up


def test_a_new_ledger_on_the_same_file_sees_the_old_records(tmp_path):
    path = tmp_path / "c.db"
    first = CostLedger(path)
    fill(first)
    first.close()
    second = CostLedger(path)  # a restarted process: memory totals start over ...
    second.record(provider="openai", kind="asr", units=5.0, cost=0.0005, cached=False)
    assert second.totals()["requests"] == 1
    assert cost_report(path)["total"]["requests"] == 3  # ... the file has everything
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    second.close()


def test_report_of_a_missing_or_empty_file(tmp_path):
    assert cost_report(tmp_path / "none.db")["total"]["lookups"] == 0
    sqlite3.connect(tmp_path / "empty.db").close()
    report = cost_report(tmp_path / "empty.db")
    assert report["rows"] == [] and report["total"]["hit_rate"] == 0.0
    assert format_report(report).splitlines()[-1].startswith("total")


def test_report_since(tmp_path):
    path = tmp_path / "c.db"
    ledger = CostLedger(path)
    fill(ledger)
    later = time.time() + 1
    assert cost_report(path, since=later)["total"]["lookups"] == 0
    assert cost_report(path, since=0)["total"]["lookups"] == 4
    ledger.close()


def test_default_ledger_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("VOICEBOT_COSTS_DB", str(tmp_path / "env.db"))
    ledger = default_ledger()
    assert ledger is default_ledger() and ledger.path == (tmp_path / "env.db").resolve()


def test_costs_command(tmp_path):
    path = tmp_path / "c.db"
    fill(CostLedger(path))
    out = subprocess.run(
        [sys.executable, "-m", "voicebot", "costs", "--db", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "openai" in out and "avoided" in out
    data = subprocess.run(
        [sys.executable, "-m", "voicebot", "costs", "--db", str(path), "--json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    import json

    assert json.loads(data)["total"]["requests"] == 2 and json.loads(data)["total"]["lookups"] == 4
