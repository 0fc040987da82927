"""Provider presets: base URL, key variable, models, voice, prices and rate of known providers.

Prices and rates are configuration, not facts: they were copied from the
providers' published pages (OpenAI: whisper-1 $0.006/min, tts-1 $0.015 per 1000
characters) and the seed guide (HolySheep: $0.36 per audio hour, $0.015 per 1000
characters, 60 requests/min by default). Check them against the provider's current
page and override ``price`` / ``requests_per_minute`` in the pipeline when they differ.

``voicebot`` is another voicebot's ``voicebot speech-server`` (port 8000 by default).
It is asked for the OpenAI names (whisper-1, tts-1, alloy), which that node maps to
the model and voice it was started with, so the node's operator chooses them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from voicebot.providers.costs import PriceTable

PresetName = Literal["openai", "holysheep", "voicebot"]
"""A known provider: the values of a pipeline's ``remote.preset``."""


@dataclass(frozen=True)
class Preset:
    """A provider's defaults; every field can be overridden in a pipeline's ``remote``."""

    name: PresetName
    base_url: str
    api_key_env: str
    asr_model: str
    tts_model: str
    tts_voice: str
    prices: PriceTable
    requests_per_minute: float


PRESETS: dict[str, Preset] = {
    "openai": Preset(
        "openai",
        "https://api.openai.com/v1",
        "OPENAI_API_KEY",
        "whisper-1",
        "tts-1",
        "alloy",
        PriceTable(0.006 / 60, 0.015),
        500.0,
    ),
    "holysheep": Preset(
        "holysheep",
        "https://api.holysheep.ai/v1",
        "HOLYSHEEP_API_KEY",
        "whisper-1",
        "tts-1",
        "de-DE-Neural2-F",
        PriceTable(0.36 / 3600, 0.015),
        60.0,
    ),
    "voicebot": Preset(
        "voicebot",
        "http://127.0.0.1:8000/v1",
        "VOICEBOT_API_KEY",
        "whisper-1",
        "tts-1",
        "alloy",
        PriceTable(0.0, 0.0),
        600.0,
    ),
}


def preset(name: str) -> Preset:
    """The preset called ``name``; a ValueError lists the known ones."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(
            f"unknown provider preset {name!r}: use one of {', '.join(PRESETS)}"
        ) from None
