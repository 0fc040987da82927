"""Tests of voicebot.tts: clause splitting, Piper and eSpeak NG."""
