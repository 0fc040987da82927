"""Tests of voicebot.asr: the Whisper engine and dialog-aware recognition."""
