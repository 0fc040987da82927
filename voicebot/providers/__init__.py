"""Talking to speech providers: pooled HTTP, retries, rate limits, caches, costs.

A leaf package: it imports nothing else from voicebot but the leaf ``voicebot.errors``,
so engines, the server and the command line can all build on it.
"""
