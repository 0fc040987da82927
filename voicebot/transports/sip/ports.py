"""The UDP ports calls take for RTP: any free one, or an even one of ``--rtp-ports LOW-HIGH``.

Firewalls and SBCs in front of a PBX open a fixed UDP range for media. With a
range, each call binds an even port of it (RTP's convention; the odd one after
it would be RTCP's, which we do not send, so a port counts only if its odd
neighbour is in the range too). The search starts after the port handed out
last, so a port just freed is the last to be taken again (late packets of the
old call do not reach the new one); a port another process holds (the bind
fails) is skipped. When every port is in use, ``NoRtpPort``: the INVITE gets
503 like at the call limit. Without a range, the system picks a free port.
"""

from __future__ import annotations

import socket

from voicebot.errors import VoicebotError

LOWEST = 1024  # below: privileged ports
HIGHEST = 65535


class NoRtpPort(VoicebotError, RuntimeError):
    """Every even port of the RTP range is in use (or held by another process): a 503."""


def parse_port_range(text: str) -> tuple[int, int]:
    """``"10000-20000"`` as ``(10000, 20000)``; raises ``ValueError`` saying what is wrong."""
    low_text, dash, high_text = text.strip().partition("-")
    if not dash or not low_text.strip().isdigit() or not high_text.strip().isdigit():
        raise ValueError(f"must be a port range LOW-HIGH (e.g. 10000-20000), got {text!r}")
    low, high = int(low_text), int(high_text)
    if low > high:
        raise ValueError(f"starts above its end ({low} > {high})")
    if low < LOWEST or high > HIGHEST:
        raise ValueError(f"must lie within {LOWEST}-{HIGHEST}, got {low}-{high}")
    if high - low < 1:
        raise ValueError(f"must hold at least 2 ports (an even one and the next), got {low}-{high}")
    if not even_ports(low, high):
        raise ValueError(f"holds no even port with its odd neighbour, got {low}-{high}")
    return low, high


def even_ports(low: int, high: int) -> range:
    """The RTP ports of ``low``-``high``: even, with the next (RTCP's) in the range too."""
    first = low + low % 2
    return range(first, high, 2)


class RtpPorts:
    """The server's RTP ports: which are taken, and where the next search starts."""

    def __init__(self, ports: tuple[int, int] | None = None) -> None:
        self.range = ports
        self.candidates = even_ports(*ports) if ports is not None else range(0)
        self.in_use: set[int] = set()
        self._next = 0  # index into candidates where the next search begins

    @property
    def free(self) -> int:
        """Ports of the range not taken by our calls (others' sockets may hold some)."""
        return len(self.candidates) - len(self.in_use)

    def take(self, host: str) -> socket.socket:
        """A UDP socket on ``host`` and a port of the range (any port without a range);
        raises ``NoRtpPort`` when every port of the range is taken."""
        if self.range is None:
            return _bind(host, 0)
        count = len(self.candidates)
        for step in range(count):
            index = (self._next + step) % count
            port = self.candidates[index]
            if port in self.in_use:
                continue
            try:
                sock = _bind(host, port)
            except OSError:  # held by another process (or not ours to bind): the next one
                continue
            self.in_use.add(port)
            self._next = (index + 1) % count
            return sock
        low, high = self.range
        raise NoRtpPort(f"no free RTP port in {low}-{high} ({len(self.in_use)} calls hold one)")

    def release(self, port: int) -> None:
        """The call on ``port`` is over: its port may be taken again."""
        self.in_use.discard(port)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock
