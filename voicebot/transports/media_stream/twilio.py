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
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any
from xml.sax.saxutils import quoteattr

from voicebot.transports.media_stream.messages import (
    Dtmf,
    Inbound,
    Mark,
    Media,
    Message,
    ProtocolError,
    Start,
    Stop,
    json_object,
    section,
    text,
)

ENCODINGS = {"audio/x-mulaw": "mulaw"}


class TwilioProtocol:
    """One Twilio media stream (it remembers the ``streamSid`` to address replies)."""

    name = "twilio"

    def __init__(self) -> None:
        self.stream_sid = ""

    def opened(self, query: Mapping[str, str]) -> Start | None:
        return None  # the start message says

    def parse(self, message: Message) -> list[Inbound]:
        data = json_object(message)
        event = data.get("event")
        if event == "media":
            media = section(data, "media")
            if media.get("track", "inbound") != "inbound":
                return []  # the bot's own audio, if the stream was asked for both tracks
            try:
                payload = base64.b64decode(text(media, "payload"), validate=True)
            except binascii.Error as exc:
                raise ProtocolError(f"media payload is not base64: {exc}") from exc
            stamp = media.get("timestamp")
            return [Media(payload, float(stamp) if stamp is not None else None)]
        if event == "start":
            return [self._start(data)]
        if event == "mark":
            return [Mark(text(section(data, "mark"), "name"))]
        if event == "dtmf":
            return [Dtmf(text(section(data, "dtmf"), "digit"))]
        if event == "stop":
            return [Stop()]
        return []  # connected, and whatever Twilio adds later

    def _start(self, data: dict[str, Any]) -> Start:
        start = section(data, "start")
        self.stream_sid = str(data.get("streamSid") or text(start, "streamSid"))
        media_format = section(start, "mediaFormat")
        encoding = ENCODINGS.get(str(media_format.get("encoding")))
        if encoding is None or media_format.get("channels", 1) != 1:
            raise ProtocolError(f"unsupported media format {media_format}")
        parameters = start.get("customParameters") or {}
        return Start(
            stream_id=self.stream_sid,
            encoding=encoding,
            sample_rate=int(media_format.get("sampleRate", 8000)),
            call_id=str(start.get("callSid", "")),
            parameters={str(k): str(v) for k, v in dict(parameters).items()},
        )

    def hello(self, info: Mapping[str, Any]) -> Message | None:
        return None

    def media(self, payload: bytes) -> Message:
        return json.dumps(
            {
                "event": "media",
                "streamSid": self.stream_sid,
                "media": {"payload": base64.b64encode(payload).decode()},
            }
        )

    def mark(self, name: str) -> Message | None:
        return json.dumps({"event": "mark", "streamSid": self.stream_sid, "mark": {"name": name}})

    def clear(self) -> Message | None:
        return json.dumps({"event": "clear", "streamSid": self.stream_sid})

    def event(self, record: Mapping[str, Any]) -> Message | None:
        return None


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
