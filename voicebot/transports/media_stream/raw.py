"""The generic stream at ``WS /ws/audio``: raw 16-bit PCM in binary messages, JSON in text.

The sample rate is the ``sample_rate`` query parameter, 8000 or 16000
(default 16000). Binary messages both ways are mono 16-bit little-endian PCM;
the bot sends 20 ms per message, paced at real time, and the client may send
any length. Text messages from the server: ``{"type": "hello", ...}`` first,
then every call event in the event schema (``docs/events.md``), and
``{"type": "mark", "name": ...}`` / ``{"type": "clear"}``. From the client:
``{"type": "mark", "name": ...}`` once the audio before that mark has played
(optional: without it nothing waits for the caller's ears),
``{"type": "text", "text": ...}`` (typed input) and ``{"type": "hangup"}``;
other types are ignored, malformed JSON closes the socket (1008).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from voicebot.transports.media_stream.audio import L16_RATES
from voicebot.transports.media_stream.messages import (
    Hangup,
    Inbound,
    Mark,
    Media,
    Message,
    ProtocolError,
    Start,
    TypedText,
    json_object,
    text,
)

DEFAULT_RATE = 16000


class RawProtocol:
    """One raw PCM stream."""

    name = "raw"

    def opened(self, query: Mapping[str, str]) -> Start | None:
        rate = query.get("sample_rate", str(DEFAULT_RATE))
        if rate not in {str(r) for r in L16_RATES}:
            raise ProtocolError(f"sample_rate must be one of {L16_RATES}, got {rate!r}")
        return Start(stream_id="", encoding="l16", sample_rate=int(rate))

    def parse(self, message: Message) -> list[Inbound]:
        if isinstance(message, bytes):
            return [Media(message)]
        data = json_object(message)
        kind = data.get("type")
        if kind == "mark":
            return [Mark(text(data, "name"))]
        if kind == "text":
            return [TypedText(text(data, "text"))]
        if kind == "hangup":
            return [Hangup()]
        return []  # other types: ignored (a newer client)

    def hello(self, info: Mapping[str, Any]) -> Message | None:
        return json.dumps({"type": "hello", **info})

    def media(self, payload: bytes) -> Message:
        return payload

    def mark(self, name: str) -> Message | None:
        return json.dumps({"type": "mark", "name": name})

    def clear(self) -> Message | None:
        return json.dumps({"type": "clear"})

    def event(self, record: Mapping[str, Any]) -> Message | None:
        return json.dumps(record, ensure_ascii=False)
