"""Twilio Media Streams: the WebSocket protocol, the TwiML that starts it, and its signature.

From Twilio: ``connected``, ``start`` (``streamSid``, ``callSid``,
``customParameters``, ``mediaFormat`` ``audio/x-mulaw`` 8000 Hz mono),
``media`` (base64 μ-law, 20 ms, with ``track``, ``chunk``, ``timestamp``),
``mark``, ``dtmf`` and ``stop``; every message but ``connected`` has a
``sequenceNumber``. To Twilio: ``media``, ``mark`` and ``clear``, each with the
``streamSid``. Twilio answers a mark once the audio before it has played, and
on a ``clear`` answers every pending mark at once.

``POST /twilio/voice`` answers with ``<Connect><Stream>`` (a bidirectional
stream); a request is Twilio's if its ``X-Twilio-Signature`` is the base64
HMAC-SHA1, keyed with the account's auth token, of the URL Twilio requested
followed by each POST parameter's name and value, sorted by name.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from typing import ClassVar
from xml.sax.saxutils import quoteattr

from voicebot.transports.media_stream.json_events import JsonEventProtocol, StartKeys


class TwilioProtocol(JsonEventProtocol):
    """One Twilio media stream (every reply carries its ``streamSid``)."""

    name = "twilio"
    keys = StartKeys(
        stream_id="streamSid",
        call_id="callSid",
        parameters="customParameters",
        media_format="mediaFormat",
        sample_rate="sampleRate",
    )
    encodings: ClassVar[Mapping[str, str]] = {"audio/x-mulaw": "mulaw"}
    stream_id_required = True

    def address(self) -> dict[str, str]:
        return {"streamSid": self.stream_id}


def connect_twiml(stream_url: str, parameters: Mapping[str, str]) -> str:
    """TwiML connecting the call to a bidirectional stream at ``stream_url``."""
    params = "".join(
        f"<Parameter name={quoteattr(k)} value={quoteattr(v)}/>" for k, v in parameters.items()
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f"<Response><Connect><Stream url={quoteattr(stream_url)}>{params}</Stream>"
        "</Connect></Response>"
    )


def reject_twiml() -> str:
    """TwiML refusing the call with a busy signal (the bot is at its call limit)."""
    return '<?xml version="1.0" encoding="UTF-8"?><Response><Reject reason="busy"/></Response>'


def signature(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """The ``X-Twilio-Signature`` Twilio sends for a POST of ``params`` to ``url``."""
    payload = url + "".join(k + params[k] for k in sorted(params))
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def valid_signature(auth_token: str, url: str, params: Mapping[str, str], given: str) -> bool:
    """Whether ``given`` is Twilio's signature of this request (compared in constant time)."""
    return hmac.compare_digest(signature(auth_token, url, params).encode(), given.encode())
