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

import logging
from collections.abc import Mapping
from typing import Any, ClassVar

from voicebot.transports.media_stream.json_events import JsonEventProtocol, StartKeys
from voicebot.transports.media_stream.messages import Inbound

log = logging.getLogger(__name__)


class TelnyxProtocol(JsonEventProtocol):
    """One Telnyx media stream (replies need no address: the socket is the stream)."""

    name = "telnyx"
    keys = StartKeys(
        stream_id="stream_id",
        call_id="call_control_id",
        parameters="custom_parameters",
        media_format="media_format",
    )
    encodings: ClassVar[Mapping[str, str]] = {"PCMU": "mulaw", "PCMA": "alaw"}
    format_hint = " (use PCMU or PCMA)"

    def other(self, event: object, data: dict[str, Any]) -> list[Inbound]:
        if event == "error":
            log.warning("telnyx stream %s: error %s", self.stream_id, data.get("payload"))
        return []
