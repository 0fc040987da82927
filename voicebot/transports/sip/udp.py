"""aiosipua's transports as voicebot runs them: UDP under uvloop, bound ports, addresses."""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

from aiosipua.headers import parse_uri
from aiosipua.transport import SipTransport, TcpSipTransport, UdpSipTransport

log = logging.getLogger(__name__)

ANY_HOST = ("0.0.0.0", "::", "")


class UdpTransport(UdpSipTransport):
    """aiosipua's UDP transport without its protocol's ``isinstance`` check, which fails
    (and logs an error) under uvloop, whose UDP transport is no ``asyncio.DatagramTransport``
    subclass though it behaves as one."""

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _UdpProtocol(self), local_addr=self.local_addr
        )
        self._udp_transport = transport


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, owner: UdpTransport) -> None:
        self.owner = owner

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.owner._dispatch(data, (str(addr[0]), int(addr[1])))

    def error_received(self, exc: Exception) -> None:
        log.debug("sip: udp: %s", exc)


def bound_port(transport: SipTransport) -> int:
    """The port a started transport is bound to."""
    if isinstance(transport, UdpSipTransport) and transport._udp_transport is not None:
        return int(transport._udp_transport.get_extra_info("sockname")[1])
    if isinstance(transport, TcpSipTransport) and transport._server is not None:
        return int(transport._server.sockets[0].getsockname()[1])
    return transport.local_addr[1]


DEFAULT_SIP_PORT = 5060


async def uri_address(uri: str) -> tuple[str, int]:
    """Where requests for a SIP URI go: its host (resolved) and port (default 5060)."""
    parsed = parse_uri(uri)
    port = parsed.port or DEFAULT_SIP_PORT
    infos = await asyncio.get_running_loop().getaddrinfo(
        parsed.host, port, family=socket.AF_INET, type=socket.SOCK_DGRAM
    )
    return str(infos[0][4][0]), port


def route_ip(peer: str) -> str:
    """The local address packets to ``peer`` leave from (no packet is sent)."""
    family = socket.AF_INET6 if ":" in peer else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.connect((peer, 9))
        return str(s.getsockname()[0])


def default_ip() -> str:
    """The address of the default route (for Contact headers when bound to every interface)."""
    try:
        return route_ip("192.0.2.1")  # TEST-NET-1: only the route is looked up
    except OSError:
        return "127.0.0.1"
