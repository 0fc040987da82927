"""Tests of voicebot.dialog: flows, repair, outcomes, ``voicebot check``."""
