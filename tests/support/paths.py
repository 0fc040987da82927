"""The checkout's files the tests read: one place instead of ``__file__`` arithmetic."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # tests/support/paths.py -> the checkout
PIPELINES = ROOT / "pipelines"
INTENTS = ROOT / "intents"
CORPUS = INTENTS / "corpus"
DOCS = ROOT / "docs"
ARTIFACTS = ROOT / "artifacts"  # screenshots of the browser tests (not committed)

ECHO_PIPELINE = PIPELINES / "echo.yaml"
RESTAURANT_PIPELINE = PIPELINES / "restaurant.yaml"
RESTAURANT_INTENTS = INTENTS / "restaurant.yaml"
RESTAURANT_FLOW = INTENTS / "restaurant_flow.yaml"
