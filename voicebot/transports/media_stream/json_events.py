"""The JSON event protocol Twilio and Telnyx share: ``{"event": ...}`` messages, base64 audio.

Both send ``connected``, ``start`` (the stream's id, the call's id, custom
parameters and a media format), ``media`` (a base64 payload with ``track``,
``chunk``, ``timestamp``), ``mark`` (``mark.name``), ``dtmf`` (``dtmf.digit``)
and ``stop``, and take ``media``, ``mark`` and ``clear``. A provider module
subclasses ``JsonEventProtocol`` and says only what differs: the names of the
``start`` fields (``StartKeys``), its encodings, how replies are addressed,
and any event of its own (``other``).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

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


@dataclass(frozen=True, slots=True)
class StartKeys:
    """What a provider calls the fields of its ``start`` message."""

    stream_id: str  # at the top of the message, or in ``start``
    call_id: str  # in ``start``
    parameters: str  # in ``start``: the custom parameters
    media_format: str  # in ``start``: the object with the three below
    encoding: str = "encoding"
    sample_rate: str = "sample_rate"
    channels: str = "channels"


class JsonEventProtocol:
    """One stream of a Twilio-shaped provider (``TwilioProtocol``, ``TelnyxProtocol``)."""

    name: str  # the transport label
    keys: ClassVar[StartKeys]
    encodings: ClassVar[Mapping[str, str]]  # the provider's encoding name -> ours
    stream_id_required: ClassVar[bool] = False  # a start without the stream's id is refused
    format_hint: ClassVar[str] = ""  # appended to the refusal of a media format

    def __init__(self) -> None:
        self.stream_id = ""  # from the start message

    def opened(self, query: Mapping[str, str]) -> Start | None:
        return None  # the start message says

    def parse(self, message: Message) -> list[Inbound]:
        data = json_object(message)
        event = data.get("event")
        if event == "media":
            return media(section(data, "media"))
        if event == "start":
            return [self._start(data)]
        if event == "mark":
            return [Mark(text(section(data, "mark"), "name"))]
        if event == "dtmf":
            return [Dtmf(text(section(data, "dtmf"), "digit"))]
        if event == "stop":
            return [Stop()]
        return self.other(event, data)

    def other(self, event: object, data: dict[str, Any]) -> list[Inbound]:
        """An event the shared shape does not know (``connected``, …): ignored."""
        return []

    def _start(self, data: dict[str, Any]) -> Start:
        keys = self.keys
        start = section(data, "start")
        stream_id = data.get(keys.stream_id) or start.get(keys.stream_id)
        if self.stream_id_required and not stream_id:
            text(start, keys.stream_id)  # raises, naming the field
        self.stream_id = str(stream_id or "")
        media_format = section(start, keys.media_format)
        encoding = self.encodings.get(str(media_format.get(keys.encoding)))
        if encoding is None or _channels(media_format.get(keys.channels, 1)) != 1:
            raise ProtocolError(f"unsupported media format {media_format}{self.format_hint}")
        parameters = start.get(keys.parameters) or {}
        return Start(
            stream_id=self.stream_id,
            encoding=encoding,
            sample_rate=int(media_format.get(keys.sample_rate, 8000)),
            call_id=str(start.get(keys.call_id, "")),
            parameters={str(k): str(v) for k, v in dict(parameters).items()},
        )

    def address(self) -> dict[str, str]:
        """What addresses a reply to this stream (none: the socket does)."""
        return {}

    def hello(self, info: Mapping[str, Any]) -> Message | None:
        return None

    def media(self, payload: bytes) -> Message:
        encoded = base64.b64encode(payload).decode()
        return json.dumps({"event": "media", **self.address(), "media": {"payload": encoded}})

    def mark(self, name: str) -> Message | None:
        return json.dumps({"event": "mark", **self.address(), "mark": {"name": name}})

    def clear(self) -> Message | None:
        return json.dumps({"event": "clear", **self.address()})

    def event(self, record: Mapping[str, Any]) -> Message | None:
        return None


def media(body: Mapping[str, Any]) -> list[Inbound]:
    """A ``media`` message's ``media`` object: the caller's audio (another track: none)."""
    if body.get("track", "inbound") != "inbound":
        return []  # the bot's own audio, if the stream was asked for both tracks
    try:
        payload = base64.b64decode(text(body, "payload"), validate=True)
    except binascii.Error as exc:
        raise ProtocolError(f"media payload is not base64: {exc}") from exc
    stamp = body.get("timestamp")
    return [Media(payload, float(stamp) if stamp is not None else None)]


def _channels(value: object) -> int:
    try:
        return int(str(value))
    except ValueError:
        raise ProtocolError(f"channels must be a number, got {value!r}") from None
