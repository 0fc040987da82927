"""The server config file (``voicebot serve --config server.yaml``): the flags it stands for.

Each key stands for one ``voicebot serve`` flag (its argparse ``dest`` below);
the flags given on the command line override the file. Secrets are not read
from the file: the SIP password stays in ``VOICEBOT_SIP_PASSWORD``, the stream
token in ``VOICEBOT_STREAM_TOKEN`` (the file may name another variable).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from voicebot.diagnostics import ConfigError
from voicebot.transports.sip.ports import parse_port_range
from voicebot.yamlsrc import NodePath, Reader, YamlFile, load

SIP_PASSWORD_ENV = "VOICEBOT_SIP_PASSWORD"
STREAM_TOKEN_ENV = "VOICEBOT_STREAM_TOKEN"


@dataclass(frozen=True, slots=True)
class Flag:
    """A config key: the flag's ``dest``, the YAML type, and a range check (``None``: ok)."""

    dest: str
    kind: type
    check: Callable[[Any], str | None] | None = None
    code: str = "E704"  # what a failed check reports


def _port(value: Any) -> str | None:
    return None if 1 <= value <= 65535 else f"must be a port (1-65535), got {value}"


def _positive(value: Any) -> str | None:
    return None if value > 0 else f"must be more than 0, got {value}"


def _port_range(value: Any) -> str | None:
    try:
        parse_port_range(value)
    except ValueError as exc:
        return str(exc)
    return None


def _sip_uri(value: Any) -> str | None:
    ok = value.startswith(("sip:", "sips:"))
    return None if ok else f"must be a SIP URI (sip:user@registrar[:port]), got {value!r}"


TOP: dict[str, Flag] = {
    "host": Flag("host", str),
    "port": Flag("port", int, _port),
    "max_calls": Flag("max_calls", int, _positive),
    "idle_timeout": Flag("idle_timeout", float, _positive),
}
TELEPHONY: dict[str, Flag] = {
    "public_host": Flag("public_host", str),
    "stream_token_env": Flag("stream_token_env", str),
}
SIP: dict[str, Flag] = {
    "port": Flag("sip_port", int, _port),
    "host": Flag("sip_host", str),
    "advertise": Flag("sip_advertise", str),
    "rtp_ports": Flag("rtp_ports", str, _port_range, "E706"),
    "rtp_timeout": Flag("rtp_timeout", float, _positive),
    "register": Flag("sip_register", str, _sip_uri),
    "register_expires": Flag("sip_register_expires", int, _positive),
}
# refused: they belong in the environment, in this variable
SECRETS = {
    "password": SIP_PASSWORD_ENV,
    "register_password": SIP_PASSWORD_ENV,
    "stream_token": STREAM_TOKEN_ENV,
}


def read_server_config(path: str | Path) -> dict[str, Any]:
    """The file's values by flag ``dest`` (``transfer_to``: NAME=NUMBER strings).

    Raises ``ConfigError`` with every mistake at ``file:line:col``.
    """
    src, diags = load(path)
    reader = Reader()
    reader.diags.extend(diags)
    values: dict[str, Any] = {}
    if not diags:
        _read(reader, src, values)
    if reader.diags:
        raise ConfigError(reader.diags)
    return values


def _read(reader: Reader, src: YamlFile, values: dict[str, Any]) -> None:
    data = src.data if src.data is not None else {}
    if not _mapping(reader, src, (), data, "the server config"):
        return
    known = reader.unknown_keys(
        src, data, (), [*TOP, "telephony"], "E702", where="the server config"
    )
    _flags(reader, src, (), known, TOP, values)
    telephony = known.get("telephony")
    if telephony is None or not _mapping(reader, src, ("telephony",), telephony, "telephony"):
        return
    _refuse_secrets(reader, src, ("telephony",), telephony)
    allowed = [*TELEPHONY, "sip", "transfer_to"]
    telephony = reader.unknown_keys(
        src, telephony, ("telephony",), allowed, "E702", where="telephony"
    )
    _flags(reader, src, ("telephony",), telephony, TELEPHONY, values)
    sip = telephony.get("sip")
    if sip is not None and _mapping(reader, src, ("telephony", "sip"), sip, "telephony.sip"):
        _refuse_secrets(reader, src, ("telephony", "sip"), sip)
        sip = reader.unknown_keys(
            src, sip, ("telephony", "sip"), SIP, "E702", where="telephony.sip"
        )
        _flags(reader, src, ("telephony", "sip"), sip, SIP, values)
    numbers = telephony.get("transfer_to")
    path: NodePath = ("telephony", "transfer_to")
    if numbers is not None and _mapping(reader, src, path, numbers, "telephony.transfer_to"):
        values["transfer_to"] = [
            f"{name}={number}"
            for name, number in numbers.items()
            if reader.expect(
                src,
                (*path, name),
                number,
                str,
                f"transfer_to.{name} (a phone number or SIP URI; quote numbers)",
                code="E703",
            )
        ]


def _mapping(reader: Reader, src: YamlFile, path: NodePath, value: Any, what: str) -> bool:
    if isinstance(value, dict):
        return True
    got = f"{type(value).__name__} {value!r}"
    reader.err(src, path, "E701", f"{what} must be a mapping, got {got}")
    return False


def _flags(
    reader: Reader,
    src: YamlFile,
    path: NodePath,
    data: dict[Any, Any],
    flags: dict[str, Flag],
    values: dict[str, Any],
) -> None:
    for key, flag in flags.items():
        if key not in data:
            continue
        value, where = data[key], (*path, key)
        name = ".".join(str(p) for p in where)
        if not reader.expect(src, where, value, flag.kind, name, code="E703"):
            continue
        problem = flag.check(value) if flag.check else None
        if problem:
            reader.err(src, where, flag.code, f"{name} {problem}")
            continue
        values[flag.dest] = float(value) if flag.kind is float else value


def _refuse_secrets(reader: Reader, src: YamlFile, path: NodePath, data: dict[Any, Any]) -> None:
    for key, env in SECRETS.items():
        if key in data:
            reader.err(
                src,
                (*path, key),
                "E705",
                f"secrets are not read from the config file: set {env} in the environment instead",
                key=True,
            )
            del data[key]
