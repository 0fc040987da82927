"""The test suite: one sub-package per voicebot/ folder, shared fixtures in conftest.py."""
