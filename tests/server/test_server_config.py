"""``voicebot serve --config``: the server config file, its diagnostics, and flags over it."""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import ECHO_PIPELINE
from voicebot.diagnostics import ConfigError
from voicebot.server.calls import ServerSettings
from voicebot.server.child import ChildServer, free_port
from voicebot.server.serve import add_serve_arguments, settings_from_args, with_config
from voicebot.server.server_config import read_server_config

EVERY_KEY = """\
host: 0.0.0.0
port: 9090
max_calls: 12
idle_timeout: 45
telephony:
  public_host: bot.example.com
  stream_token_env: BOT_STREAM_TOKEN
  sip:
    port: 5070
    host: 10.0.0.5
    advertise: 203.0.113.7
    rtp_ports: 10000-10999
    rtp_timeout: 12.5
    register: sip:bot@pbx.example
    register_expires: 120
  transfer_to:
    sales: "+4930123456"
    "": sip:desk@pbx.example
"""


def write(tmp_path: Path, text: str, name: str = "server.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_serve_arguments(parser)
    return parser.parse_args(list(argv))


def settings(*argv: str) -> tuple[argparse.Namespace, ServerSettings]:
    args = with_config(parse(*argv))
    return args, settings_from_args(args)


def errors(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        read_server_config(path)
    return [str(d) for d in caught.value.diagnostics]


def test_every_key_becomes_the_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOICEBOT_SIP_PASSWORD", "from-the-environment")
    monkeypatch.setenv("BOT_STREAM_TOKEN", "stream-secret")
    args, server = settings("--config", str(write(tmp_path, EVERY_KEY)))
    assert (args.host, args.port) == ("0.0.0.0", 9090)
    assert (server.max_calls, server.idle_timeout) == (12, 45.0)
    assert server.public_host == "bot.example.com"
    assert server.stream_token == "stream-secret"  # from the variable the file names
    assert server.transfer_to == {"sales": "+4930123456", "": "sip:desk@pbx.example"}
    sip = server.sip
    assert sip is not None
    assert (sip.port, sip.host, sip.advertised_host) == (5070, "10.0.0.5", "203.0.113.7")
    assert (sip.rtp_timeout, sip.register, sip.register_expires) == (
        12.5,
        "sip:bot@pbx.example",
        120,
    )
    assert sip.register_password == "from-the-environment"
    assert sip.rtp_ports == (10000, 10999)


def test_without_a_file_the_flag_defaults_hold() -> None:
    _, server = settings()
    assert server.sip is None and (server.max_calls, server.idle_timeout) == (4, 60.0)
    _, server = settings("--sip-port", "5080")
    assert server.sip is not None and server.sip.host == "127.0.0.1"
    assert (server.sip.rtp_timeout, server.sip.register_expires) == (30.0, 300)
    assert server.sip.rtp_ports is None  # any free port
    _, server = settings("--sip-port", "5080", "--rtp-ports", "20000-20099")
    assert server.sip is not None and server.sip.rtp_ports == (20000, 20099)


def test_flags_override_the_file(tmp_path: Path) -> None:
    config = str(write(tmp_path, EVERY_KEY))
    args, server = settings(
        "--config", config, "--port", "7000", "--sip-port", "5999", "--max-calls", "2",
        "--rtp-timeout", "3", "--transfer-to", "sales=+111",
    )  # fmt: skip
    assert (args.host, args.port) == ("0.0.0.0", 7000)  # host from the file, port from the flag
    assert server.max_calls == 2 and server.idle_timeout == 45.0
    assert server.sip is not None and (server.sip.port, server.sip.rtp_timeout) == (5999, 3.0)
    assert server.sip.host == "10.0.0.5"
    assert server.transfer_to == {"sales": "+111", "": "sip:desk@pbx.example"}


def test_a_misspelt_key_and_a_wrong_type_are_placed(tmp_path: Path) -> None:
    path = write(tmp_path, "telephony:\n  sip:\n    prot: 5060\n    rtp_timeout: soon\n")
    assert errors(path) == [
        f"{path}:3:5: E702 unknown key 'prot' in telephony.sip (did you mean 'port'?)",
        f"{path}:4:18: E703 telephony.sip.rtp_timeout must be a number, got str 'soon'",
    ]


def test_the_top_level_and_the_ranges_are_checked(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "max_cals: 3\nport: 70000\ntelephony:\n  sip:\n    register: pbx.example\n"
        "  transfer_to:\n    sales: 4930123\n",
    )
    found = errors(path)
    assert found[0] == (
        f"{path}:1:1: E702 unknown key 'max_cals' in the server config (did you mean 'max_calls'?)"
    )
    assert found[1] == f"{path}:2:7: E704 port must be a port (1-65535), got 70000"
    assert found[2].startswith(f"{path}:5:15: E704 telephony.sip.register must be a SIP URI")
    assert found[3].startswith(f"{path}:7:12: E703 transfer_to.sales (a phone number")
    assert len(found) == 4


def test_a_bad_rtp_port_range_is_placed(tmp_path: Path) -> None:
    path = tmp_path / "server.yaml"
    text = "telephony:\n  sip:\n    port: 5060\n    rtp_ports: {}\n"
    found = []
    for value in ("20000-10000", "80-2000", "10000-10000", "10000:20000", "10001-10002"):
        found += errors(write(tmp_path, text.format(value)))
    prefix = f"{path}:4:16: E706 telephony.sip.rtp_ports"
    assert found == [
        f"{prefix} starts above its end (20000 > 10000)",
        f"{prefix} must lie within 1024-65535, got 80-2000",
        f"{prefix} must hold at least 2 ports (an even one and the next), got 10000-10000",
        f"{prefix} must be a port range LOW-HIGH (e.g. 10000-20000), got '10000:20000'",
        f"{prefix} holds no even port with its odd neighbour, got 10001-10002",
    ]
    [wrong_type] = errors(write(tmp_path, text.format("10000")))
    assert wrong_type.startswith(f"{path}:4:16: E703 telephony.sip.rtp_ports must be")


def test_the_rtp_ports_flag_is_checked(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse("--rtp-ports", "20000-10000")
    assert "--rtp-ports: '20000-10000': starts above its end" in capsys.readouterr().err


def test_a_password_is_refused_for_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "telephony:\n  sip:\n    port: 5060\n    password: hunter2\n")
    [message] = errors(path)
    assert message.startswith(f"{path}:4:5: E705 secrets are not read from the config file")
    assert "VOICEBOT_SIP_PASSWORD" in message


def test_the_stream_token_is_refused_for_the_environment(tmp_path: Path) -> None:
    [message] = errors(write(tmp_path, "telephony:\n  stream_token: s3cret\n"))
    assert message.startswith(f"{tmp_path / 'server.yaml'}:2:3: E705 secrets are not read")
    assert "VOICEBOT_STREAM_TOKEN" in message


def test_the_stream_token_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOICEBOT_STREAM_TOKEN", "default-variable")
    monkeypatch.setenv("OTHER_TOKEN", "named-variable")
    assert settings()[1].stream_token == "default-variable"
    assert settings("--stream-token-env", "OTHER_TOKEN")[1].stream_token == "named-variable"
    monkeypatch.delenv("VOICEBOT_STREAM_TOKEN")
    assert settings()[1].stream_token is None


def test_not_a_mapping_and_bad_yaml(tmp_path: Path) -> None:
    assert errors(write(tmp_path, "telephony: 5060\n")) == [
        f"{tmp_path / 'server.yaml'}:1:12: E701 telephony must be a mapping, got int 5060"
    ]
    assert errors(write(tmp_path, "port: [1\n"))[0].split(": ")[1].startswith("E002")


def test_serve_with_a_bad_config_exits_with_the_diagnostic(tmp_path: Path) -> None:
    path = write(tmp_path, "telephony:\n  sipp:\n    port: 5060\n", "bad.yaml")
    done = subprocess.run(
        [sys.executable, "-m", "voicebot", "serve", str(ECHO_PIPELINE), "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done
    assert f"{path}:2:3: E702 unknown key 'sipp' in telephony (did you mean 'sip'?)" in (
        done.stderr
    )
    assert "serving" not in done.stdout


def udp_options(port: int) -> str:
    request = (
        f"OPTIONS sip:bot@127.0.0.1:{port} SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKcfg1;rport\r\n"
        "From: <sip:probe@127.0.0.1>;tag=1\r\n"
        f"To: <sip:bot@127.0.0.1:{port}>\r\n"
        "Call-ID: probe-config@127.0.0.1\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Max-Forwards: 70\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(5)
        s.connect(("127.0.0.1", port))
        s.sendall(request)
        return s.recv(4096).decode()


def test_serve_listens_for_sip_on_the_configured_port(tmp_path: Path) -> None:
    port = free_port()
    path = write(tmp_path, f"telephony:\n  sip:\n    port: {port}\n")
    with ChildServer("serve", ECHO_PIPELINE, "--config", path, "--no-warm-up", capture=True):
        reply = udp_options(port)
    assert reply.startswith("SIP/2.0 200 OK"), reply
