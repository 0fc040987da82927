"""Phone calls over SIP/RTP: ``voicebot serve --sip-port`` answers a trunk or PBX directly.

* ``server.SipServer`` - the UDP and TCP listener (aiosipua's UAS) that admits INVITEs.
* ``call.SipCall`` - one call: its dialog, RTP stream and pipeline.
* ``rtp.RtpStream`` - the RTP socket (our jitter buffer, symmetric RTP, paced sending).
* ``sdp.answer_offer`` - offer/answer and the codec choice; ``codecs`` - G.711/G.722 via av.
* ``settings.SipSettings`` - ports, timeouts and codecs.

See docs/telephony.md.
"""

from voicebot.transports.sip.settings import SipSettings

__all__ = ["SipSettings"]
