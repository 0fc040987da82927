"""Vonage Voice API WebSockets: binary L16 audio, JSON events and actions in text messages.

Vonage connects (NCCO ``connect`` to a ``websocket`` endpoint with
``content-type`` ``audio/l16;rate=16000`` or ``rate=8000``) and first sends
``{"event": "websocket:connected", "content-type": ...}`` plus the
endpoint's custom ``headers`` (a ``uuid`` header is taken as the call's id, which a
transfer needs; ``GET /vonage/answer``'s NCCO sends it); then binary messages of 20 ms of 16-bit
little-endian mono PCM both ways. Text from Vonage: ``websocket:dtmf``
(``digit``), ``websocket:notify`` (the ``payload`` of our ``notify`` action,
once the audio sent before it has played) and ``websocket:cleared``. Text to
Vonage: ``{"action": "notify", "payload": {"name": ...}}`` (the mark) and
``{"action": "clear"}``. Vonage has no stop message: the call ends with the
socket (a clean close counts as the caller's hang-up).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from voicebot.transports.media_stream.messages import (
    Dtmf,
    Inbound,
    Mark,
    Media,
    Message,
    ProtocolError,
    Start,
    json_object,
    text,
)

_CONTENT_TYPE = re.compile(r"audio/l16\s*;\s*rate=(\d+)", re.IGNORECASE)


class VonageProtocol:
    """One Vonage WebSocket call leg."""

    name = "vonage"

    def opened(self, query: Mapping[str, str]) -> Start | None:
        return None  # websocket:connected says the rate

    def parse(self, message: Message) -> list[Inbound]:
        if isinstance(message, bytes):
            return [Media(message)]
        data = json_object(message)
        event = data.get("event")
        if event == "websocket:connected":
            content_type = str(data.get("content-type", ""))
            match = _CONTENT_TYPE.fullmatch(content_type.strip())
            if match is None:
                raise ProtocolError(f"unsupported content-type {content_type!r} (audio/l16;rate=…)")
            headers = {
                str(k): str(v)
                for k, v in data.items()
                if k not in ("event", "content-type") and isinstance(v, str | int | float)
            }
            uuid = str(data.get("uuid", ""))
            return [Start(uuid, "l16", int(match.group(1)), call_id=uuid, parameters=headers)]
        if event == "websocket:dtmf":
            return [Dtmf(text(data, "digit"))]
        if event == "websocket:notify":
            payload = data.get("payload")
            if isinstance(payload, dict) and isinstance(payload.get("name"), str):
                return [Mark(payload["name"])]
        return []  # websocket:cleared, notifies not ours

    def hello(self, info: Mapping[str, Any]) -> Message | None:
        return None

    def media(self, payload: bytes) -> Message:
        return payload

    def mark(self, name: str) -> Message | None:
        return json.dumps({"action": "notify", "payload": {"name": name}})

    def clear(self) -> Message | None:
        return json.dumps({"action": "clear"})

    def event(self, record: Mapping[str, Any]) -> Message | None:
        return None
