"""Cost ledger and report: per request, per call, totals, durable, cache savings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from voicebot.providers.costs import CostLedger, PriceTable, cost_report, format_report
from voicebot.providers.presets import PRESETS, preset

ROOT = Path(__file__).resolve().parent.parent


def test_price_table():
    prices = PriceTable(asr_per_second=0.0001, tts_per_1k_chars=0.015)
    assert prices.asr_cost(3600) == pytest.approx(0.36)
    assert prices.tts_cost(500) == pytest.approx(0.0075)


def test_presets():
    assert preset("openai").prices.asr_per_second == pytest.approx(0.006 / 60)
    assert preset("holysheep").requests_per_minute == 60
    assert set(PRESETS) == {"openai", "holysheep", "voicebot"}
    with pytest.raises(ValueError, match="openai, holysheep, voicebot"):
        preset("acme")


def fill(ledger: CostLedger) -> None:
    ledger.record(provider="openai", kind="asr", units=10.0, cost=0.001, cached=False,
                  call_id="c1")
    ledger.record(provider="openai", kind="asr", units=10.0, cost=0.001, cached=True,
                  call_id="c1")
    ledger.record(provider="openai", kind="tts", units=500, cost=0.0075, cached=False,
                  call_id="c2")
    ledger.record(provider="openai", kind="tts", units=500, cost=0.0, cached=False,
                  call_id="c2", ok=False)


def test_totals_and_per_call(tmp_path):
    ledger = CostLedger(tmp_path / "c.db")
    fill(ledger)
    totals = ledger.totals()
    assert totals["requests"] == 2 and totals["failed"] == 1
    assert totals["lookups"] == 3 and totals["hits"] == 1
    assert totals["hit_rate"] == pytest.approx(1 / 3)
    assert totals["cost"] == pytest.approx(0.0085)
    assert totals["cost_avoided"] == pytest.approx(0.001)
    c1 = ledger.per_call("c1")
    assert c1["asr"]["requests"] == 1 and c1["asr"]["hits"] == 1 and c1["tts"]["lookups"] == 0
    assert ledger.per_call("c2")["tts"]["cost"] == pytest.approx(0.0075)


async def test_records_are_durable_and_reported(tmp_path):
    path = tmp_path / "c.db"
    ledger = CostLedger(path)
    fill(ledger)
    await ledger.arecord(provider="holysheep", kind="asr", units=60.0, cost=0.006, cached=False)
    ledger.close()
    report = cost_report(path)  # a new reader, as `voicebot costs` in another process
    rows = {(r["provider"], r["kind"]): r for r in report["rows"]}
    assert rows[("openai", "asr")]["hit_rate"] == 0.5
    assert rows[("openai", "tts")]["failed"] == 1
    assert rows[("holysheep", "asr")]["units"] == 60.0
    assert report["total"]["cost"] == pytest.approx(0.0145)
    text = format_report(report)
    assert "hit rate" in text and "holysheep" in text and "50.0%" in text
    assert text.splitlines()[-1].startswith("total")


def test_costs_command(tmp_path):
    path = tmp_path / "c.db"
    fill(CostLedger(path))
    out = subprocess.run([sys.executable, "-m", "voicebot", "costs", "--db", str(path)],
                         capture_output=True, text=True, check=True).stdout
    assert "openai" in out and "avoided" in out
    data = subprocess.run([sys.executable, "-m", "voicebot", "costs", "--db", str(path),
                           "--json"], capture_output=True, text=True, check=True).stdout
    import json

    assert json.loads(data)["total"]["requests"] == 2
