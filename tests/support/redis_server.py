"""A real ``redis-server`` on a free port for the tests that need one.

The ``redis_url`` fixture (``tests/conftest.py``) is one per test module;
``RedisServer`` starts one by hand, e.g. on a port a client already failed on. No
persistence (``--save "" --appendonly no``), files in a temporary directory.

Missing redis-server skips those tests on a developer's machine, but fails them
under CI (``CI`` set): there they must run (``make test`` installs the package).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from typing import Any

import pytest

from voicebot.server.child import free_port


def redis_binary() -> str:
    """The redis-server path, or skip (fail under CI)."""
    binary = shutil.which("redis-server")
    if binary is None:
        message = "redis-server is not installed (apt-get install redis-server)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return binary


class RedisServer:
    """``with RedisServer() as server: server.url`` — started and ready, then stopped."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def __enter__(self) -> RedisServer:
        binary = redis_binary()
        self._dir = tempfile.TemporaryDirectory(prefix="redis-")
        self._proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self._dir.name,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    self.__exit__()
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.02)

    def __exit__(self, *exc: Any) -> None:
        self._proc.terminate()
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._dir.cleanup()
