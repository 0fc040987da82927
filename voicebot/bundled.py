"""The reference bot and the demo page that ship with voicebot.

The repository keeps them at its top level (``pipelines/``, ``intents/``,
``demo_web/``); a built wheel carries copies inside the package
(``voicebot/_data/``, written by ``setup.py``'s build step), so a pip-installed
voicebot serves the reference bot without a checkout. ``bundled(name)`` finds
whichever is there, through ``importlib.resources``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

NAMES = ("pipelines", "intents", "demo_web")


def bundled(name: str) -> Path:
    """The bundled folder ``name`` (one of ``NAMES``): the installed copy, else the
    checkout's own."""
    if name not in NAMES:
        raise ValueError(f"no bundled folder {name!r} (there are {', '.join(NAMES)})")
    installed = resources.files("voicebot") / "_data" / name
    if installed.is_dir():
        return Path(str(installed))
    return Path(__file__).resolve().parents[1] / name


def pipeline(name: str = "restaurant") -> Path:
    """A bundled pipeline file: ``restaurant``, ``restaurant_de``, ``echo`` ..."""
    return bundled("pipelines") / f"{name}.yaml"
