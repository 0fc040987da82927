"""SDP offer/answer for a call (RFC 3264), on aiosipua's parser and negotiator.

The codec is ours to choose among what the caller offers: G.722 first
(wideband recognises better), then G.711 μ-law, then A-law. The offer's
direction says whether the caller holds the call (``sendonly``/``inactive``,
or the old ``c=0.0.0.0`` convention). DTMF: an offered ``telephone-event/8000``
(RFC 4733) is accepted under the offer's own payload type. For a call we
place, ``make_offer`` lists our codecs (and telephone-event 101) and
``read_answer`` reads the callee's choice.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiosipua import SdpMessage, parse_sdp
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


DTMF_PAYLOAD_TYPE = 101  # telephone-event in our own offers


def make_offer(
    local_ip: str, rtp_port: int, codecs: tuple[CodecSpec, ...] = CODECS, session_id: str = "0"
) -> SdpMessage:
    """Our offer for a call we place: ``codecs`` in order of preference, and RFC 4733 keys."""
    formats = " ".join(str(c.payload_type) for c in codecs)
    lines = [
        "v=0",
        f"o=voicebot {session_id} {session_id} IN IP4 {local_ip}",
        "s=voicebot",
        f"c=IN IP4 {local_ip}",
        "t=0 0",
        f"m=audio {rtp_port} RTP/AVP {formats} {DTMF_PAYLOAD_TYPE}",
        *(f"a=rtpmap:{c.payload_type} {c.name}/{c.clock_rate}" for c in codecs),
        f"a=rtpmap:{DTMF_PAYLOAD_TYPE} telephone-event/8000",
        f"a=fmtp:{DTMF_PAYLOAD_TYPE} 0-15",
        "a=ptime:20",
        "a=sendrecv",
    ]
    return parse_sdp("\r\n".join(lines) + "\r\n")


def read_answer(
    answer: SdpMessage | None, offer: SdpMessage, codecs: tuple[CodecSpec, ...] = CODECS
) -> Answer:
    """What the callee's answer to our ``offer`` settled: its first codec of ours, its address."""
    audio = answer.audio if answer is not None else None
    if answer is None or audio is None or answer.rtp_address is None:
        raise OfferNotAcceptable("the answer has no audio stream")
    ours = {c.payload_type: c for c in codecs}
    chosen = next((ours[int(f)] for f in audio.formats if f.isdigit() and int(f) in ours), None)
    if chosen is None:
        raise OfferNotAcceptable(f"the answer takes none of our codecs: {audio.formats}")
    dtmf = next(
        (c.payload_type for c in audio.codecs if c.encoding_name.lower() == "telephone-event"),
        None,
    )
    host, port = answer.rtp_address
    on_hold = audio.direction in ("sendonly", "inactive") or host in ("0.0.0.0", "::")
    return Answer(offer, chosen, (host, port), on_hold, dtmf)
