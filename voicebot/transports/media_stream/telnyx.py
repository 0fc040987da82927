"""Telnyx Media Streaming (bidirectional, RTP mode): Twilio's shape in snake_case.

From Telnyx: ``connected``, ``start`` (``stream_id`` at the top,
``start.call_control_id``, ``client_state``, ``custom_parameters``,
``media_format`` {``encoding`` PCMU or PCMA, ``sample_rate`` 8000,
``channels`` 1}), ``media`` (base64 RTP payload, with ``track``, ``chunk``,
``timestamp``), ``mark``, ``dtmf``, ``error`` and ``stop``. To Telnyx:
``media``, ``mark`` and ``clear``. Telnyx answers a mark once the media before
it has played (at once if nothing is queued), and a ``clear`` returns the
queued marks. The call must be started with ``stream_bidirectional_mode:
rtp`` and a G.711 ``stream_bidirectional_codec``.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
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
    Stop,
    json_object,
    section,
    text,
)

log = logging.getLogger(__name__)

ENCODINGS = {"PCMU": "mulaw", "PCMA": "alaw"}


class TelnyxProtocol:
    """One Telnyx media stream."""

    name = "telnyx"

    def __init__(self) -> None:
        self.stream_id = ""

    def opened(self, query: Mapping[str, str]) -> Start | None:
        return None

    def parse(self, message: Message) -> list[Inbound]:
        data = json_object(message)
        event = data.get("event")
        if event == "media":
            media = section(data, "media")
            if media.get("track", "inbound") != "inbound":
                return []
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
        if event == "error":
            log.warning("telnyx stream %s: error %s", self.stream_id, data.get("payload"))
        return []

    def _start(self, data: dict[str, Any]) -> Start:
        start = section(data, "start")
        self.stream_id = str(data.get("stream_id") or start.get("stream_id") or "")
        media_format = section(start, "media_format")
        encoding = ENCODINGS.get(str(media_format.get("encoding")))
        if encoding is None or int(media_format.get("channels", 1)) != 1:
            raise ProtocolError(f"unsupported media format {media_format} (use PCMU or PCMA)")
        parameters = start.get("custom_parameters") or {}
        return Start(
            stream_id=self.stream_id,
            encoding=encoding,
            sample_rate=int(media_format.get("sample_rate", 8000)),
            call_id=str(start.get("call_control_id", "")),
            parameters={str(k): str(v) for k, v in dict(parameters).items()},
        )

    def hello(self, info: Mapping[str, Any]) -> Message | None:
        return None

    def media(self, payload: bytes) -> Message:
        return json.dumps(
            {"event": "media", "media": {"payload": base64.b64encode(payload).decode()}}
        )

    def mark(self, name: str) -> Message | None:
        return json.dumps({"event": "mark", "mark": {"name": name}})

    def clear(self) -> Message | None:
        return json.dumps({"event": "clear"})

    def event(self, record: Mapping[str, Any]) -> Message | None:
        return None
