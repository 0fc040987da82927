"""Tests of voicebot.bench: the benchmark statistics."""
