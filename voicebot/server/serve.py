"""``voicebot serve``: live calls (WebRTC with the demo page, SIP, media streams) on uvicorn.

Also runnable as ``python -m voicebot.server.serve`` (the tests start it so).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from voicebot.bundled import pipeline
from voicebot.diagnostics import ConfigError
from voicebot.server.calls import IceServer, ServerSettings
from voicebot.transports.media_stream import telnyx_rest, twilio_rest, vonage_rest
from voicebot.transports.sip.ports import parse_port_range
from voicebot.transports.sip.settings import SipSettings

DEFAULT_PIPELINE = pipeline("restaurant")
TOKEN_ENV = "VOICEBOT_TOKEN"
TURN_CREDENTIAL_ENV = "VOICEBOT_TURN_CREDENTIAL"
TWILIO_AUTH_TOKEN_ENV = "TWILIO_AUTH_TOKEN"
STREAM_TOKEN_ENV = "VOICEBOT_STREAM_TOKEN"
SIP_USERNAME_ENV = "VOICEBOT_SIP_USERNAME"
SIP_PASSWORD_ENV = "VOICEBOT_SIP_PASSWORD"


def add_serve_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``serve`` to the ``voicebot`` command's subparsers."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "serve",
        help="serve live calls over WebRTC, with the demo page (and SIP with --sip-port)",
        description="One process: the demo page at /, WebRTC signalling at POST /offer, "
        "/healthz, Prometheus /metrics, the local engines as the OpenAI audio API under /v1, "
        "and phone calls over provider media streams (/twilio/voice, /twilio/media, "
        "/telnyx/media, /vonage/media) and raw PCM (/ws/audio); with a Twilio, Telnyx or "
        "Vonage account, transfers and dial-outs (POST /twilio/calls, /telnyx/calls, "
        "/vonage/calls).",
    )
    add_serve_arguments(p)
    p.set_defaults(func=serve_main)
    return p


def add_serve_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "pipeline",
        nargs="?",
        default=str(DEFAULT_PIPELINE),
        metavar="PIPELINE.yaml",
        help="the bot to serve (default: the English restaurant bot)",
    )
    p.add_argument(
        "--config",
        default=None,
        metavar="SERVER.yaml",
        help="server config file: these flags' values, with a `telephony:` section (see "
        "docs/telephony.md); flags given here override it",
    )
    p.add_argument("--host", default=None, help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (default 8080)")
    p.add_argument("--max-calls", type=int, default=None, help="concurrent calls before 503")
    p.add_argument(
        "--idle-timeout",
        type=float,
        default=None,
        help="end a call after this many seconds without speech, text or bot audio",
    )
    p.add_argument(
        "--stun",
        action="append",
        default=[],
        metavar="URL",
        help="STUN server (stun:host:port); repeatable; default none",
    )
    p.add_argument(
        "--turn",
        action="append",
        default=[],
        metavar="URL",
        help="TURN server (turn:host:port); repeatable",
    )
    p.add_argument("--turn-username", default=None, help="TURN user name")
    p.add_argument(
        "--token-env",
        default=TOKEN_ENV,
        metavar="NAME",
        help=f"if this environment variable is set, /offer needs it as a bearer "
        f"token (default {TOKEN_ENV}); the TURN password is read from "
        f"{TURN_CREDENTIAL_ENV}",
    )
    p.add_argument(
        "--api-key-env",
        default="VOICEBOT_API_KEYS",
        metavar="NAME",
        help="if this environment variable is set (comma-separated keys), the /v1 "
        "speech API needs one as a bearer token (default VOICEBOT_API_KEYS)",
    )
    p.add_argument(
        "--jitter-ms",
        type=int,
        default=ServerSettings.jitter_ms,
        help="caller audio held back for late packets before the VAD (default "
        f"{ServerSettings.jitter_ms}: one frame, right for loopback and LANs; aiortc's "
        "own is 80). Packets later than this count as lost; raise it on a jittery WAN",
    )
    p.add_argument(
        "--cors-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="allow this origin cross-site (repeatable; default: none)",
    )
    p.add_argument(
        "--ssl-certfile",
        default=None,
        metavar="PEM",
        help="serve HTTPS with this certificate (browsers only open the microphone "
        "on https:// pages or on localhost)",
    )
    p.add_argument("--ssl-keyfile", default=None, metavar="PEM", help="the certificate's key")
    p.add_argument(
        "--outcomes-db",
        default=None,
        metavar="FILE",
        help="outcome store (bookings) for this server; overrides the pipeline's",
    )
    p.add_argument(
        "--sip-port",
        type=int,
        default=None,
        metavar="PORT",
        help="also answer phone calls over SIP/RTP on this UDP and TCP port (e.g. 5060; "
        "see docs/telephony.md); default: no SIP",
    )
    p.add_argument(
        "--sip-host",
        default=None,
        metavar="HOST",
        help="address for SIP and RTP (default: --host; 0.0.0.0 for every interface)",
    )
    p.add_argument(
        "--sip-advertise",
        default=None,
        metavar="HOST",
        help="the address callers reach us at, for SDP and Contact (behind NAT; default: "
        "the SIP address)",
    )
    p.add_argument(
        "--sip-register",
        default=None,
        metavar="URI",
        help="REGISTER at this trunk or PBX (sip:user@registrar[:port]), refreshed before "
        f"it expires; digest credentials from {SIP_USERNAME_ENV} (default: the URI's "
        f"user) and {SIP_PASSWORD_ENV}",
    )
    p.add_argument(
        "--sip-register-expires",
        type=int,
        default=None,
        metavar="SECONDS",
        help=f"registration interval asked for (default {SipSettings.register_expires})",
    )
    p.add_argument(
        "--rtp-ports",
        type=rtp_ports_arg,
        default=None,
        metavar="LOW-HIGH",
        help="take each phone call's RTP port from this UDP range (e.g. 10000-20000, what the "
        "firewall opens; an even port per call, so LOW-HIGH holds (HIGH-LOW+1)/2 calls); "
        "default: any free port",
    )
    p.add_argument(
        "--rtp-timeout",
        type=float,
        default=None,
        help="hang up a phone call after this many seconds without RTP from the caller "
        f"(not while on hold; default {SipSettings.rtp_timeout:g})",
    )
    p.add_argument(
        "--public-host",
        default=None,
        metavar="HOST",
        help="the host[:port] telephony providers reach this server at (behind a proxy or "
        "tunnel), for the wss:// URL in POST /twilio/voice's TwiML and for checking "
        f"Twilio's signatures (set {TWILIO_AUTH_TOKEN_ENV} to check them); default: the "
        "request's Host",
    )
    p.add_argument(
        "--stream-token-env",
        default=None,
        metavar="NAME",
        help="if this environment variable is set, the WebSockets /telnyx/media, "
        "/vonage/media and /ws/audio need it, as `Authorization: Bearer …` on the handshake "
        f"or `?token=…` in the stream URL (default {STREAM_TOKEN_ENV}); /twilio/media is "
        f"checked with Twilio's signature instead (set {TWILIO_AUTH_TOKEN_ENV})",
    )
    p.add_argument(
        "--transfer-to",
        action="append",
        default=[],
        metavar="[NAME=]NUMBER",
        help="where a flow's `transfer: NAME` rings over a provider's media stream "
        "(repeatable; a bare NUMBER for any name); used when the call's provider has an "
        "account set (TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN, TELNYX_API_KEY and "
        "TELNYX_CONNECTION_ID, VONAGE_APPLICATION_ID and VONAGE_PRIVATE_KEY)",
    )
    for name, module in (
        ("twilio", twilio_rest),
        ("telnyx", telnyx_rest),
        ("vonage", vonage_rest),
    ):
        p.add_argument(
            f"--{name}-api-url",
            default=module.API_URL,
            metavar="URL",
            help=f"{name.capitalize()}'s REST API for transfers and POST /{name}/calls "
            f"(default {module.API_URL})",
        )
    p.add_argument(
        "--no-warm-up",
        dest="warm",
        action="store_false",
        help="do not load the engines before accepting calls",
    )


# the flags whose default is None so that a config file's value can stand in for them
FLAG_DEFAULTS: dict[str, Any] = {
    "host": "127.0.0.1",
    "port": 8080,
    "max_calls": ServerSettings.max_calls,
    "idle_timeout": ServerSettings.idle_timeout,
    "rtp_timeout": SipSettings.rtp_timeout,
    "sip_register_expires": SipSettings.register_expires,
    "stream_token_env": STREAM_TOKEN_ENV,
}


def with_config(args: argparse.Namespace) -> argparse.Namespace:
    """``args`` with ``--config``'s values where no flag was given; raises ``ConfigError``."""
    if not getattr(args, "config", None):
        return args
    from voicebot.server.server_config import read_server_config

    merged = argparse.Namespace(**vars(args))
    for dest, value in read_server_config(args.config).items():
        if dest == "transfer_to":  # the file's first: a flag for the same name wins
            merged.transfer_to = [*value, *args.transfer_to]
        elif getattr(merged, dest, None) is None:
            setattr(merged, dest, value)
    return merged


def with_defaults(args: argparse.Namespace) -> argparse.Namespace:
    """``args`` with the flags' defaults where neither a flag nor the config file set one."""
    filled = argparse.Namespace(**vars(args))
    for dest, default in FLAG_DEFAULTS.items():
        if getattr(filled, dest, None) is None:
            setattr(filled, dest, default)
    return filled


def settings_from_args(args: argparse.Namespace) -> ServerSettings:
    args = with_defaults(args)
    ice = [IceServer([url]) for url in args.stun]
    if args.turn:
        ice.append(IceServer(args.turn, args.turn_username, os.environ.get(TURN_CREDENTIAL_ENV)))
    sip = None
    if args.sip_port is not None:
        sip = SipSettings(
            port=args.sip_port,
            host=args.sip_host or args.host,
            advertised_host=args.sip_advertise,
            rtp_ports=parse_port_range(args.rtp_ports) if args.rtp_ports else None,
            rtp_timeout=args.rtp_timeout,
            jitter_ms=args.jitter_ms,
            register=args.sip_register,
            register_username=os.environ.get(SIP_USERNAME_ENV) or None,
            register_password=os.environ.get(SIP_PASSWORD_ENV) or None,
            register_expires=args.sip_register_expires,
        )
    return ServerSettings(
        sip=sip,
        public_host=args.public_host,
        twilio_auth_token=os.environ.get(TWILIO_AUTH_TOKEN_ENV) or None,
        stream_token=os.environ.get(args.stream_token_env) or None,
        twilio_account=twilio_rest.account_from_env(base_url=args.twilio_api_url),
        telnyx_account=telnyx_rest.account_from_env(base_url=args.telnyx_api_url),
        vonage_account=vonage_rest.account_from_env(base_url=args.vonage_api_url),
        transfer_to=transfer_numbers(args.transfer_to),
        max_calls=args.max_calls,
        idle_timeout=args.idle_timeout,
        ice_servers=ice,
        token=os.environ.get(args.token_env) or None,
        cors_origins=args.cors_origin,
        jitter_ms=args.jitter_ms,
        api_keys=tuple(
            k.strip() for k in os.environ.get(args.api_key_env, "").split(",") if k.strip()
        ),
    )


def rtp_ports_arg(text: str) -> str:
    """``--rtp-ports``: checked here, read by ``settings_from_args`` (like the file's)."""
    try:
        parse_port_range(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from exc
    return text


def transfer_numbers(values: list[str]) -> dict[str, str]:
    """``--transfer-to`` values as flow target -> number (``""``: any target)."""
    numbers: dict[str, str] = {}
    for value in values:
        name, _, number = value.rpartition("=")
        numbers[name.strip()] = number.strip()
    return numbers


def serve_main(args: argparse.Namespace) -> int:
    """Run the server until interrupted; returns the exit code."""
    import uvicorn

    from voicebot.config import load_pipeline
    from voicebot.server.app import create_app

    try:
        args = with_defaults(with_config(args))
        config = load_pipeline(args.pipeline)
        if args.outcomes_db:
            config.dialog.outcomes = str(Path(args.outcomes_db).resolve())
        if config.dialog.type == "flow":
            from voicebot.dialog.bot import load_bot

            load_bot(config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    try:
        settings = settings_from_args(args)
    except ValueError as exc:  # a Vonage key that cannot be read
        print(f"voicebot serve: {exc}", file=sys.stderr)
        return 2
    app = create_app(config, settings, warm=args.warm)
    auth = " (bearer token required)" if settings.token else ""
    scheme = "https" if args.ssl_certfile else "http"
    phone = f" and sip:{settings.sip.host}:{settings.sip.port}" if settings.sip else ""
    print(
        f"voicebot: serving {config.name or args.pipeline} on {scheme}://{args.host}:"
        f"{args.port}/{auth}{phone}",
        flush=True,
    )
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        loop="auto",
        log_level="warning",
        timeout_graceful_shutdown=10,
        ssl_certfile=args.ssl_certfile,
        ssl_keyfile=args.ssl_keyfile,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m voicebot.server.serve", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    add_serve_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return serve_main(args)


if __name__ == "__main__":
    sys.exit(main())
