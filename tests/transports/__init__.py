"""Tests of voicebot.transports: WebRTC and SIP calls end to end."""
