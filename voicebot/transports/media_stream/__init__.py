"""Calls carried over a WebSocket media stream: Twilio, Telnyx, Vonage, or raw PCM.

One transport-neutral core (``stream.py``: caller audio in, the bot's paced
20 ms frames out, marks, ``clear`` on barge-in) and one small module per
provider's wire protocol (``twilio.py``, ``telnyx.py``, ``vonage.py``,
``raw.py``; Twilio and Telnyx share ``json_events.py``), each turning that
provider's messages into the ``messages.py`` types and back. The call around
it (admission, pipeline, hang-up) is ``voicebot.server.stream_call``.
"""

from voicebot.transports.media_stream.messages import (
    Dtmf,
    Hangup,
    Inbound,
    Mark,
    Media,
    Start,
    Stop,
    StreamProtocol,
    TypedText,
)

__all__ = [
    "Dtmf",
    "Hangup",
    "Inbound",
    "Mark",
    "Media",
    "Start",
    "Stop",
    "StreamProtocol",
    "TypedText",
]
