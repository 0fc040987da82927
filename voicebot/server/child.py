"""``voicebot serve`` or ``speech-server`` in a child process, ready once ``/healthz`` answers.

Used by the benchmarks that need a server and by the tests that dial a real one.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import httpx

VOICEBOT = (sys.executable, "-m", "voicebot")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on at ``host`` right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


class ChildServer:
    """``voicebot COMMAND ARGS... --host HOST --port PORT`` in a child process, stopped on exit.

    ``ChildServer("serve", "pipelines/echo.yaml")`` or ``ChildServer("speech-server")``:
    a free port unless ``port`` is given, started by ``start()`` (or ``with``), which
    returns once ``GET /healthz`` answers 200 and raises ``RuntimeError`` if the child
    exits or is not up within ``startup_timeout``. ``program`` is the ``voicebot``
    to run (default: this interpreter's). With ``capture`` the child's output goes
    to a temporary file, shown in that error, instead of this process's stdout and
    stderr. The child gets SIGTERM when this process dies (Linux), so an aborted
    test run or benchmark leaves nothing behind.
    """

    def __init__(
        self,
        *args: str | Path,
        program: Sequence[str | Path] = VOICEBOT,
        host: str = "127.0.0.1",
        port: int | None = None,
        env: dict[str, str] | None = None,
        cwd: str | Path | None = None,
        capture: bool = False,
        startup_timeout: float = 120.0,
    ) -> None:
        self.port = port or free_port(host)
        reach = "127.0.0.1" if host in ("0.0.0.0", "") else host  # any address: dial loopback
        self.url = f"http://{reach}:{self.port}"
        self.command = [
            *map(str, program),
            *map(str, args),
            "--host",
            host,
            "--port",
            str(self.port),
        ]
        self.env = {**os.environ, **(env or {})}
        self.cwd = cwd
        self.capture = capture
        self.startup_timeout = startup_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self._output: IO[bytes] | None = None

    def __enter__(self) -> ChildServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        assert self.proc is not None, "the server is not running"
        return self.proc.pid

    def start(self) -> None:
        """Start the child and wait for its ``/healthz``."""
        if self.capture:
            self._output = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            self.command,
            env=self.env,
            cwd=self.cwd,
            stdout=self._output,
            stderr=subprocess.STDOUT if self._output else None,
            preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                code, output = self.proc.returncode, self._read_output()
                self.stop()
                raise RuntimeError(f"server exited with {code}: {self.command}{output}")
            with contextlib.suppress(httpx.HTTPError):  # not listening yet
                if httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200:
                    return
            time.sleep(0.2)
        output = self._read_output()
        self.stop()
        raise RuntimeError(f"server did not come up within {self.startup_timeout} s{output}")

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds; nothing if not running."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._output is not None:
            self._output.close()
            self._output = None

    def _read_output(self) -> str:
        if self._output is None:
            return ""
        self._output.seek(0)
        return "\n" + self._output.read().decode(errors="replace")


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGTERM it if the parent dies (Linux)."""
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
