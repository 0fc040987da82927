"""Helpers the tests share: synthesized speech, a fault-injecting provider, Redis, paths."""
