"""The RTP port range (``--rtp-ports``): an even port of it per call, 503 when it is used up.

The server gets a 4-port range (two even ports with their odd neighbours: two
calls); bare SIP phones (aiosipua's UAC) dial it and read the port from our SDP.
"""

from __future__ import annotations

import socket

import pytest

from tests.support.paths import ECHO_PIPELINE
from tests.support.sip import of_type, sip_server, until
from tests.support.sip_phone import answer_port, bare_phone
from voicebot.transports.sip.ports import NoRtpPort, RtpPorts, even_ports, parse_port_range


def free_range(size: int = 4) -> tuple[int, int]:
    """``size`` consecutive UDP ports nobody holds now, starting at an even one."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    base = 20000 + (probe.getsockname()[1] % 38000) & ~1  # a different place each run
    probe.close()
    for low in [*range(base, 58000, size), *range(20000, base, size)]:
        held = []
        try:
            for port in range(low, low + size):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                held.append(sock)
                sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for sock in held:
                sock.close()
        return low, low + size - 1
    raise RuntimeError("no free port range")


async def test_calls_take_even_ports_of_the_range_and_give_them_back() -> None:
    low, high = free_range()
    async with (
        sip_server(ECHO_PIPELINE, rtp_ports=(low, high), rtp_timeout=30) as (port, events, app),
        bare_phone() as first,
        bare_phone() as second,
        bare_phone() as third,
    ):
        ports = [answer_port(await first.dial(port)), answer_port(await second.dial(port))]
        assert sorted(ports) == [low, low + 2]  # distinct, even, within the range
        with pytest.raises(RuntimeError, match="503"):  # the range holds two calls
            await third.dial(port)
        assert len(app.state.manager.calls) == 2
        with pytest.raises(NoRtpPort):  # a call we would place finds no port either
            await app.state.sip.dial("sip:callee@127.0.0.1:5999")
        assert len(app.state.manager.calls) == 2 and not app.state.sip.placed
        metrics = app.state.metrics.render()[0].decode()
        assert 'voicebot_offers_rejected_total{reason="no_rtp_port",transport="sip"} 2.0' in metrics

        first.hang_up()
        await until(lambda: len(of_type(events, "call_ended")) == 1, 10)
        await until(lambda: not app.state.sip.rtp_ports.in_use - {ports[1]}, 5)
        again = answer_port(await third.dial(port))
        assert again == ports[0]  # the freed port serves the next call
        second.hang_up()
        third.hang_up()
        await until(lambda: len(of_type(events, "call_ended")) == 3, 10)
        assert not app.state.sip.rtp_ports.in_use


async def test_a_port_held_by_another_socket_is_skipped() -> None:
    low, high = free_range()
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    other.bind(("127.0.0.1", low))  # another process's, as far as the server can tell
    try:
        async with (
            sip_server(ECHO_PIPELINE, rtp_ports=(low, high), rtp_timeout=30) as (port, events, _),
            bare_phone() as first,
            bare_phone() as second,
        ):
            assert answer_port(await first.dial(port)) == low + 2
            with pytest.raises(RuntimeError, match="503"):
                await second.dial(port)
            first.hang_up()
            await until(lambda: of_type(events, "call_ended"), 10)
            assert answer_port(await second.dial(port)) == low + 2  # reused; low still held
            second.hang_up()
            await until(lambda: len(of_type(events, "call_ended")) == 2, 10)
    finally:
        other.close()


def test_the_next_search_starts_after_the_last_port_handed_out() -> None:
    low, high = free_range(6)
    ports = RtpPorts((low, high))
    taken = [ports.take("127.0.0.1") for _ in range(3)]
    assert [s.getsockname()[1] for s in taken] == [low, low + 2, low + 4]
    with pytest.raises(NoRtpPort, match=f"no free RTP port in {low}-{high}"):
        ports.take("127.0.0.1")
    taken[0].close()
    ports.release(low)
    assert ports.take("127.0.0.1").getsockname()[1] == low
    for sock in taken[1:]:
        sock.close()


def test_without_a_range_any_free_port() -> None:
    ports = RtpPorts()
    sock = ports.take("127.0.0.1")
    assert sock.getsockname()[1] > 0 and not ports.in_use
    sock.close()


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("10000:20000", "must be a port range LOW-HIGH"),
        ("ten-twenty", "must be a port range LOW-HIGH"),
        ("20000-10000", "starts above its end (20000 > 10000)"),
        ("80-2000", "must lie within 1024-65535, got 80-2000"),
        ("60000-70000", "must lie within 1024-65535"),
        ("10000-10000", "must hold at least 2 ports"),
        ("10001-10002", "holds no even port with its odd neighbour"),
    ],
)
def test_a_bad_range_says_what_is_wrong(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        parse_port_range(text)


def test_ranges_count_even_ports_with_their_neighbour() -> None:
    assert parse_port_range(" 10000-20000 ") == (10000, 20000)
    assert list(even_ports(10000, 10003)) == [10000, 10002]
    assert list(even_ports(10001, 10004)) == [10002]  # 10004's neighbour is outside
    assert len(even_ports(10000, 20000)) == 5000
