"""Talking to speech providers: pooled HTTP, retries, rate limits, caches, costs.

A leaf package: it imports nothing else from voicebot, so engines, the server and
the command line can all build on it.
"""
