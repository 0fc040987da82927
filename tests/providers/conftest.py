"""Fixtures of the provider tests: the fault-injecting OpenAI-shaped provider."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.faults import FaultServer


@pytest.fixture
def fault() -> Iterator[FaultServer]:
    """A fresh ``FaultServer`` per test (nothing scripted, every request ``ok``)."""
    with FaultServer() as server:
        yield server
