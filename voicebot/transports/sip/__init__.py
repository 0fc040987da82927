"""SIP/RTP, the protocol side of phone calls (``voicebot serve --sip-port``).

The calls themselves - admitting INVITEs, one call's dialog and pipeline - live with the
WebRTC ones in ``voicebot.server`` (``server/sip.py``: ``SipServer``; ``server/sip_call.py``:
``SipCall``); this package knows nothing of the server:

* ``udp`` - aiosipua's transports as voicebot runs them (UDP under uvloop, bound ports).
* ``rtp.RtpStream`` - the RTP socket (our jitter buffer, symmetric RTP, paced sending).
* ``ports.RtpPorts`` - the RTP port range (``--rtp-ports``): an even port per call.
* ``sdp.answer_offer`` - offer/answer and the codec choice (``make_offer``: ours, for calls we
  place and late offers); ``codecs`` - G.711/G.722 via av.
* ``settings.SipSettings`` - ports, timeouts and codecs.

See docs/telephony.md.
"""

from voicebot.transports.sip.settings import SipSettings

__all__ = ["SipSettings"]
