"""Fixtures of more than one test folder: the servers the tests talk to, each in a child process.

Module-scoped: each test module that asks for one gets its own, shared by its tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.paths import ECHO_PIPELINE, RESTAURANT_PIPELINE
from tests.support.redis_server import RedisServer
from voicebot.server.child import ChildServer


@pytest.fixture(scope="module")
def echo_server() -> Iterator[ChildServer]:
    """``voicebot serve`` with the echo bot."""
    with ChildServer("serve", ECHO_PIPELINE) as server:
        yield server


@pytest.fixture(scope="module")
def restaurant_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The outcome store of ``restaurant_server`` (read it to see what was booked)."""
    return tmp_path_factory.mktemp("outcomes") / "outcomes.db"


@pytest.fixture(scope="module")
def restaurant_server(restaurant_db: Path) -> Iterator[ChildServer]:
    """``voicebot serve`` with the restaurant bot, its outcomes in ``restaurant_db``."""
    with ChildServer("serve", RESTAURANT_PIPELINE, "--outcomes-db", str(restaurant_db)) as server:
        yield server


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    """A real ``redis-server`` on a free port (skipped when not installed, failed under CI)."""
    with RedisServer() as server:
        yield server.url
