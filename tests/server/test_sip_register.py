"""REGISTER to a registrar: digest authentication, 423, refresh before expiry, removal.

The registrar is written here on a raw UDP socket (nobody's SIP stack): it
answers a too-short interval with ``423`` and ``Min-Expires: 4``, challenges
every REGISTER without credentials with a ``401`` digest challenge, checks the
digest response itself (hashlib, RFC 7616 with ``qop=auth``) and grants 4 s.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import re
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiosipua import SipMessage, SipRequest

from tests.support.paths import ECHO_PIPELINE
from tests.support.sip import sip_server, until
from voicebot.server.serve import add_serve_arguments, settings_from_args

REALM, USER, PASSWORD = "voicebot.test", "alice", "s3cret"
GRANTED = 4  # s


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


@dataclass
class Registrar(asyncio.DatagramProtocol):
    """Answers REGISTERs; ``log`` has (monotonic time, what it answered, Expires asked)."""

    password: str = PASSWORD
    log: list[tuple[float, str, int]] = field(default_factory=list)
    contacts: list[str] = field(default_factory=list)
    transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        request = SipMessage.parse(data)
        assert isinstance(request, SipRequest) and request.method == "REGISTER"
        expires = int(request.get_header("expires") or "3600")
        credentials = request.get_header("authorization")
        if 0 < expires < GRANTED:
            self._answer(request, addr, "423 Interval Too Brief", f"Min-Expires: {GRANTED}")
            self.log.append((time.monotonic(), "423", expires))
        elif credentials is None:
            challenge = f'Digest realm="{REALM}", nonce="n{len(self.log)}", qop="auth"'
            self._answer(request, addr, "401 Unauthorized", f"WWW-Authenticate: {challenge}")
            self.log.append((time.monotonic(), "401", expires))
        elif not self._valid(credentials):
            self._answer(request, addr, "403 Forbidden")
            self.log.append((time.monotonic(), "403", expires))
        else:
            contact = (request.get_header("contact") or "").strip("<>")
            self.contacts.append(contact)
            self._answer(
                request,
                addr,
                "200 OK",
                f"Contact: <{contact}>;expires={min(expires, GRANTED)}",
                f"Expires: {min(expires, GRANTED)}",
            )
            self.log.append((time.monotonic(), "200", expires))

    def _valid(self, header: str) -> bool:
        p = dict(re.findall(r'(\w+)="?([^",]*)"?', header.removeprefix("Digest ")))
        ha1 = md5(f"{p['username']}:{REALM}:{self.password}")
        ha2 = md5(f"REGISTER:{p['uri']}")
        expected = md5(f"{ha1}:{p['nonce']}:{p['nc']}:{p['cnonce']}:auth:{ha2}")
        return p["username"] == USER and p["realm"] == REALM and p["response"] == expected

    def _answer(self, request: SipRequest, addr: tuple[str, int], status: str, *extra: str) -> None:
        copied = [f"{name}: {request.get_header(name)}" for name in ("via", "from", "call-id")]
        lines = [f"SIP/2.0 {status}", *copied]
        lines += [f"To: {request.get_header('to')};tag=reg", f"CSeq: {request.get_header('cseq')}"]
        lines += [*extra, "Content-Length: 0", "", ""]
        self.transport.sendto("\r\n".join(lines).encode(), addr)

    def answered(self, what: str) -> list[tuple[float, str, int]]:
        return [entry for entry in self.log if entry[1] == what]


async def registrar(password: str = PASSWORD) -> tuple[Registrar, int]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: Registrar(password), local_addr=("127.0.0.1", 0)
    )
    return protocol, transport.get_extra_info("sockname")[1]


async def test_the_server_registers_with_digest_auth_and_refreshes_in_time() -> None:
    reg, port = await registrar()
    try:
        async with sip_server(
            ECHO_PIPELINE,
            register=f"sip:{USER}@127.0.0.1:{port}",
            register_password=PASSWORD,
            register_expires=2,  # below the registrar's minimum: 423, then 4 s
        ) as (sip_port, _, app):
            await until(lambda: reg.answered("200"), 5)
            metrics = app.state.metrics.render()[0].decode()
            assert "voicebot_sip_registered 1.0" in metrics
            assert app.state.sip.registrar.state == "registered"
            await until(lambda: len(reg.answered("200")) >= 2, GRANTED + 1)  # the refresh
        await until(lambda: [e for e in reg.log if e[2] == 0], 2)  # removed at shutdown
    finally:
        reg.transport.close()
    kinds = [what for _, what, _ in reg.log]
    assert kinds[:3] == ["423", "401", "200"], reg.log
    first, refresh = reg.answered("200")[:2]
    assert first[2] == GRANTED and refresh[2] == GRANTED  # Min-Expires was taken
    assert refresh[0] - first[0] < GRANTED, "the binding lapsed before the refresh"
    assert reg.contacts[0] == f"sip:{USER}@127.0.0.1:{sip_port}"  # calls reach our port
    assert reg.log[-1][1] == "200" and reg.log[-1][2] == 0


async def test_a_wrong_password_is_a_failed_registration() -> None:
    reg, port = await registrar(password="other")
    try:
        async with sip_server(
            ECHO_PIPELINE, register=f"sip:{USER}@127.0.0.1:{port}", register_password=PASSWORD
        ) as (_, _, app):
            await until(lambda: app.state.sip.registrar.state == "failed", 5)
            metrics = app.state.metrics.render()[0].decode()
    finally:
        reg.transport.close()
    assert [what for _, what, _ in reg.log] == ["401", "403"]
    assert "voicebot_sip_registered 0.0" in metrics


def test_serve_takes_the_registrar_and_credentials_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VOICEBOT_SIP_USERNAME", "trunk-user")
    monkeypatch.setenv("VOICEBOT_SIP_PASSWORD", "trunk-secret")
    parser = argparse.ArgumentParser()
    add_serve_arguments(parser)
    args = parser.parse_args(
        [
            "--sip-port",
            "5070",
            "--sip-register",
            "sip:bot@pbx.example",
            "--sip-register-expires",
            "60",
        ]
    )
    sip = settings_from_args(args).sip
    assert sip is not None and sip.register == "sip:bot@pbx.example"
    assert (sip.register_username, sip.register_password) == ("trunk-user", "trunk-secret")
    assert sip.register_expires == 60
