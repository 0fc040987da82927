"""Where voicebot keeps what it builds once and reuses: joined models, trained matchers."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """The voicebot cache root: ``$VOICEBOT_CACHE`` or ``~/.cache/voicebot``."""
    env = os.environ.get("VOICEBOT_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "voicebot"
