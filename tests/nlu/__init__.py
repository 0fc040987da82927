"""Tests of voicebot.nlu: intents, slots, the statistical and LLM matchers, understanding."""
