"""What a media stream says, whatever the provider: the inbound message types and the protocol.

A provider module parses its wire messages into these types and renders the
bot's side (audio, marks, ``clear``) back into its own shapes; the core
(``stream.py``) only ever sees these.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from voicebot.errors import VoicebotError

Message = str | bytes  # one WebSocket message: text or binary


class ProtocolError(VoicebotError, ValueError):
    """A message the provider's protocol does not allow (the stream is closed with 1008)."""


@dataclass(frozen=True, slots=True)
class Start:
    """The stream's metadata: who is calling and in which audio format."""

    stream_id: str
    encoding: str  # "mulaw", "alaw" or "l16" (16-bit little-endian linear PCM)
    sample_rate: int
    call_id: str = ""  # the provider's id of the phone call (Twilio's callSid, …)
    parameters: Mapping[str, str] = field(default_factory=dict)  # custom parameters


@dataclass(frozen=True, slots=True)
class Media:
    """Caller audio in the stream's encoding; ``timestamp_ms`` from the stream's start."""

    payload: bytes
    timestamp_ms: float | None = None


@dataclass(frozen=True, slots=True)
class Mark:
    """The audio sent before the bot's mark ``name`` has been played (or cleared)."""

    name: str


@dataclass(frozen=True, slots=True)
class Dtmf:
    """A key the caller pressed."""

    digit: str


@dataclass(frozen=True, slots=True)
class Stop:
    """The provider ends the stream: the caller hung up (or the call moved on)."""


@dataclass(frozen=True, slots=True)
class Hangup:
    """The client asks the bot to end the call."""


@dataclass(frozen=True, slots=True)
class TypedText:
    """Typed caller input, a turn of its own."""

    text: str


Inbound = Start | Media | Mark | Dtmf | Stop | Hangup | TypedText


class StreamProtocol(Protocol):
    """One provider's wire format, both ways. One instance per stream (it may count)."""

    name: str  # the transport label: metrics, ``call_started``

    def opened(self, query: Mapping[str, str]) -> Start | None:
        """The stream's ``Start`` if the connection itself says it (raw), else None."""

    def parse(self, message: Message) -> list[Inbound]:
        """The messages in one received WebSocket message (none: ignored); raises
        ``ProtocolError`` for what the protocol forbids."""

    def hello(self, info: Mapping[str, Any]) -> Message | None:
        """The first message to the client once the call runs (None: nothing)."""

    def media(self, payload: bytes) -> Message:
        """20 ms of bot audio, already in the stream's encoding."""

    def mark(self, name: str) -> Message | None:
        """Ask to be told when the audio sent so far has been played (None: unsupported)."""

    def clear(self) -> Message | None:
        """Drop the audio the provider still holds (barge-in)."""

    def event(self, record: Mapping[str, Any]) -> Message | None:
        """A call event for the client (None: the provider does not take them)."""


def json_object(message: Message) -> dict[str, Any]:
    """A text message's JSON object; ``ProtocolError`` for anything else."""
    if isinstance(message, bytes):
        raise ProtocolError("expected a text message, got binary")
    try:
        data = json.loads(message)
    except ValueError as exc:
        raise ProtocolError(f"malformed JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ProtocolError("expected a JSON object")
    return data


def section(data: Mapping[str, Any], key: str) -> dict[str, Any]:
    """``data[key]``, which must be an object; ``ProtocolError`` naming it if not."""
    value = data.get(key)
    if not isinstance(value, dict):
        raise ProtocolError(f"{data.get('event', 'message')!r} without a {key!r} object")
    return value


def text(data: Mapping[str, Any], key: str) -> str:
    """``data[key]`` as a non-empty string; ``ProtocolError`` if missing."""
    value = data.get(key)
    if not isinstance(value, str | int) or value == "":
        raise ProtocolError(f"missing {key!r}")
    return str(value)
