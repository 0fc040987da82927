"""SDP offer/answer for a call (RFC 3264), on aiosipua's parser and negotiator.

The codec is ours to choose among what the caller offers: G.722 first
(wideband recognises better), then G.711 μ-law, then A-law. The offer's
direction says whether the caller holds the call (``sendonly``/``inactive``,
or the old ``c=0.0.0.0`` convention). DTMF: an offered ``telephone-event/8000``
(RFC 4733) is accepted under the offer's own payload type.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiosipua import SdpMessage
from aiosipua.sdp_negotiate import SdpNegotiationError, negotiate_sdp

from voicebot.errors import VoicebotError
from voicebot.transports.sip.codecs import BY_PAYLOAD_TYPE, CODECS, CodecSpec


class OfferNotAcceptable(VoicebotError, ValueError):
    """The offer has no audio we can take (no common codec, no address): a 488."""


@dataclass
class Answer:
    """What negotiation settled for the media."""

    sdp: SdpMessage
    codec: CodecSpec
    remote: tuple[str, int]  # where the offer says to send RTP
    on_hold: bool  # the caller does not want to hear us (sendonly/inactive/0.0.0.0)
    dtmf_payload_type: int | None = None  # telephone-event's, when the caller offered it


def answer_offer(
    offer: SdpMessage,
    local_ip: str,
    rtp_port: int,
    codecs: tuple[CodecSpec, ...] = CODECS,
    session_id: str | None = None,
    version: int = 0,
) -> Answer:
    """Our answer to ``offer``, with the first codec of ``codecs`` it offers."""
    audio = offer.audio
    if audio is None or offer.rtp_address is None:
        raise OfferNotAcceptable("the offer has no audio stream")
    offered = {c.payload_type for c in audio.codecs}
    preferred = [c.payload_type for c in codecs if c.payload_type in offered]
    if not preferred:
        names = [c.encoding_name or str(c.payload_type) for c in audio.codecs]
        raise OfferNotAcceptable(f"no common codec: offered {names}")
    dtmf = next(
        (
            c.payload_type
            for c in audio.codecs
            if c.encoding_name.lower() == "telephone-event" and (c.clock_rate or 8000) == 8000
        ),
        None,
    )
    try:
        sdp, payload_type = negotiate_sdp(
            offer,
            local_ip,
            rtp_port,
            supported_codecs=preferred[:1],
            dtmf_payload_type=dtmf or 0,  # the offer's number (0: none offered, none answered)
            session_id=session_id,
            session_name="voicebot",
        )
    except SdpNegotiationError as exc:
        raise OfferNotAcceptable(str(exc)) from exc
    if sdp.origin.session_id.isdigit():  # each new answer in the dialog counts up (RFC 3264 §8)
        sdp.origin.session_version = str(int(sdp.origin.session_id) + version)
    host, port = offer.rtp_address
    on_hold = audio.direction in ("sendonly", "inactive") or host in ("0.0.0.0", "::")
    return Answer(sdp, BY_PAYLOAD_TYPE[payload_type], (host, port), on_hold, dtmf)
