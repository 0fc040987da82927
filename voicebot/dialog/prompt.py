"""Prompt templates: per-language text with ``{name}`` placeholders rendered for speech.

Placeholders name a slot or a hook value; ``{{`` and ``}}`` are literal braces.
Values are rendered by their slot type's ``speak`` (19:30 -> "half past seven")
so the TTS gets words, not digits it might read out oddly.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from voicebot.errors import VoicebotError

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

Speaker = Callable[[Any, str], str]  # (value, language) -> words


class PromptTemplateError(VoicebotError, ValueError):
    """A malformed prompt template; ``offset`` is the character where the problem starts."""

    def __init__(self, message: str, offset: int = 0) -> None:
        super().__init__(message)
        self.offset = offset


@dataclass(frozen=True, slots=True)
class Placeholder:
    name: str
    offset: int


def parse_template(text: str) -> list[str | Placeholder]:
    """Split ``text`` into literal strings and placeholders; raises ``PromptTemplateError``."""
    parts: list[str | Placeholder] = []
    buf: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "{" and text.startswith("{{", i):
            buf.append("{")
            i += 2
        elif c == "{":
            end = text.find("}", i)
            if end < 0:
                raise PromptTemplateError("unclosed '{' (write '{{' for a literal brace)", i)
            name = text[i + 1 : end].strip()
            if not _NAME.match(name):
                raise PromptTemplateError(
                    f"bad placeholder {{{name}}}: expected a slot or value name", i
                )
            if buf:
                parts.append("".join(buf))
                buf = []
            parts.append(Placeholder(name, i))
            i = end + 1
        elif c == "}" and text.startswith("}}", i):
            buf.append("}")
            i += 2
        elif c == "}":
            raise PromptTemplateError("unmatched '}' (write '}}' for a literal brace)", i)
        else:
            buf.append(c)
            i += 1
    if buf:
        parts.append("".join(buf))
    return parts


@dataclass(frozen=True, slots=True)
class Prompt:
    """One thing the bot says, per language (parsed once at load time)."""

    texts: Mapping[str, str]
    parts: Mapping[str, tuple[str | Placeholder, ...]] = field(default_factory=dict)

    @classmethod
    def of(cls, texts: Mapping[str, str]) -> Prompt:
        return cls(dict(texts), {lang: tuple(parse_template(t)) for lang, t in texts.items()})

    def placeholders(self) -> set[str]:
        return {
            p.name for parts in self.parts.values() for p in parts if isinstance(p, Placeholder)
        }

    def render(
        self, language: str, values: Mapping[str, Any], speakers: Mapping[str, Speaker]
    ) -> str:
        """The text in ``language`` with every placeholder spoken; missing values say nothing."""
        out: list[str] = []
        for part in self.parts.get(language, ()):
            if isinstance(part, str):
                out.append(part)
                continue
            value = values.get(part.name)
            if value is None:
                continue
            speaker = speakers.get(part.name)
            out.append(speaker(value, language) if speaker else str(value))
        return " ".join("".join(out).split())
