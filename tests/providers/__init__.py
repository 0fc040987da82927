"""Tests of voicebot.providers: HTTP client, limits, caches, costs, remote engines."""
