"""How the server answers phone calls over SIP (``voicebot serve --sip-port``)."""

from __future__ import annotations

from dataclasses import dataclass

from voicebot.transports.sip.codecs import CODECS, CodecSpec


@dataclass
class SipSettings:
    """Where to listen and when to give up on a call; the pipeline says what the call does."""

    port: int = 5060  # UDP and TCP
    host: str = "127.0.0.1"  # 0.0.0.0: every interface
    advertised_host: str | None = None  # the address peers reach us at (NAT); default: host
    rtp_ports: tuple[int, int] | None = None  # (low, high): an even port per call; None: any
    rtp_timeout: float = 30.0  # no RTP from the caller for this long (not on hold): hang up
    session_expires: int | None = 1800  # RFC 4028 session timer; None: off
    jitter_ms: int = 20  # caller audio held back for late packets (one 20 ms frame)
    codecs: tuple[CodecSpec, ...] = CODECS  # in order of preference
    user_agent: str = "voicebot"
    register: str | None = None  # sip:user@registrar[:port]: REGISTER there (trunk, PBX)
    register_username: str | None = None  # digest user (default: the URI's user part)
    register_password: str | None = None  # digest password; None: no authentication
    register_expires: int = 300  # s asked for; refreshed at 90 % of what is granted
    register_retry: float = 30.0  # s after a failed or expired registration
    ring_timeout: float = 30.0  # s a call we place may ring before we CANCEL it (no_answer)
    transfer_timeout: float = 15.0  # REFER sent -> the caller's final NOTIFY (the target rings)
