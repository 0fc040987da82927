"""The base of every exception voicebot defines, and the family tree of them all.

Each exception is defined where it is raised and derives from ``VoicebotError``
(some also from the built-in a caller may already catch, shown in brackets), so
``except VoicebotError`` catches anything voicebot raises on purpose. The tree,
indented under its base (``tests/test_errors.py`` keeps it complete)::

    VoicebotError [Exception]  voicebot.errors  - the base: catch it to catch them all
        ConfigError  voicebot.diagnostics  - a YAML file with errors; carries its diagnostics
        PromptTemplateError [ValueError]  voicebot.dialog.prompt  - a malformed prompt template
        IntentTemplateError [ValueError]  voicebot.nlu.templates  - an unparsable intent template
        FlowError [RuntimeError]  voicebot.dialog.flow  - the flow cannot go on
        HookError  voicebot.dialog.hooks  - a hook failed, timed out or returned no mapping
        AudioDecodeError [ValueError]  voicebot.audio.codecs  - an upload that is not audio
        ProviderError  voicebot.providers.errors  - a provider request without a usable answer
            TwilioError  voicebot.transports.media_stream.twilio_rest  - Twilio's REST API refused
            TelnyxError  voicebot.transports.media_stream.telnyx_rest  - Telnyx's API refused
            VonageError  voicebot.transports.media_stream.vonage_rest  - Vonage's API refused
        OfferError [ValueError]  voicebot.server.calls  - a WebRTC offer that cannot be answered
        Busy [RuntimeError]  voicebot.server.calls  - the server is at its call limit
        ApiError  voicebot.server.openai_errors  - an OpenAI-style HTTP error response
            Unauthorized  voicebot.server.auth  - a missing or wrong bearer token (401)
        _Refused  voicebot.server.app  - (internal) an /offer refused: bad token or body
        OfferRejected [RuntimeError]  voicebot.transports.webrtc_client  - our offer refused
        OfferNotAcceptable [ValueError]  voicebot.transports.sip.sdp  - a 488: no audio we take
        NoRtpPort [RuntimeError]  voicebot.transports.sip.ports  - every RTP port taken: a 503
        ProtocolError [ValueError]  voicebot.transports.media_stream.messages  - a bad message
        StreamClosed [ConnectionError]  voicebot.transports.media_stream.stream  - closed early

A leaf module: it imports nothing from voicebot, so every module can use it.
"""

from __future__ import annotations


class VoicebotError(Exception):
    """Base class of every exception voicebot defines."""
