"""Tests of voicebot.server: the app, the speech API, the demo page in a browser."""
