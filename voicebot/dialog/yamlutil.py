"""YAML helpers for the dialog files: positions, "did you mean", YAML 1.1 booleans.

PyYAML follows YAML 1.1, where ``on``, ``yes`` and ``no`` are booleans - also
as mapping keys, so a flow's ``on:`` would arrive as ``True``. ``unbool_keys``
restores the words as written (from the source text at the key's position).
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

from voicebot.yamlsrc import Diagnostic, Path_, Source


def did_you_mean(name: str, choices: Any) -> str:
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


class Reader:
    """Collects diagnostics while reading a file, with typed getters that report."""

    def __init__(self) -> None:
        self.diags: list[Diagnostic] = []
        self.lines: dict[str, list[str]] = {}

    def err(
        self,
        src: Source,
        path: Path_,
        code: str,
        msg: str,
        *,
        key: bool = False,
        severity: str = "error",
    ) -> None:
        self.diags.append(src.diag(path, code, msg, key=key, severity=severity))

    def warn(self, src: Source, path: Path_, code: str, msg: str, *, key: bool = False) -> None:
        self.err(src, path, code, msg, key=key, severity="warning")

    def keys(
        self, src: Source, node: Any, path: Path_, allowed: tuple[str, ...], what: str
    ) -> dict[str, Any]:
        if not isinstance(node, dict):
            self.err(src, path, "E402", f"{what} must be a mapping")
            return {}
        for key in node:
            if key not in allowed:
                self.err(
                    src,
                    (*path, key),
                    "E401",
                    f"unknown key {key!r} in {what}{did_you_mean(key, allowed)}",
                    key=True,
                )
        return {k: v for k, v in node.items() if k in allowed}

    def string(self, src: Source, value: Any, path: Path_, what: str) -> str | None:
        if isinstance(value, str) and value:
            return value
        self.err(src, path, "E402", f"{what} must be a non-empty string, got {value!r}")
        return None

    def names(self, src: Source, value: Any, path: Path_, what: str) -> list[str]:
        """A string or a list of strings."""
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(i, str) and i for i in items):
            self.err(src, path, "E402", f"{what} must be a name or a list of names")
            return []
        return items

    def template_col(
        self, src: Source, path: Path_, offset: int, char: str = "{}"
    ) -> tuple[int, int]:
        """Where character ``offset`` (a brace) of a scalar is written; else the scalar's start.

        Exact for scalars on one line without escapes; for others (folded,
        escaped) the brace is not where the offset says, and the start is reported.
        """
        line, col = src.at(path)
        text = self.lines.setdefault(src.file, read_lines(src.file))
        raw = text[line - 1] if 0 < line <= len(text) else ""
        exact = col + offset + (1 if raw[col - 1 : col] in ("'", '"') else 0)
        if raw[exact - 1 : exact] and raw[exact - 1] in char:
            return line, exact
        return line, col


def literal_at(src: Source, path: Path_, *, key: bool = False) -> str:
    """The source word at ``path`` (YAML 1.1 reads ``on``, ``yes``, ``no`` as booleans)."""
    line, col = src.at(path, key=key)
    lines = read_lines(src.file)
    raw = lines[line - 1][col - 1 :] if 0 < line <= len(lines) else ""
    match = re.match(r"[\"']?([A-Za-z~]+)", raw)
    return match.group(1) if match else str(src.data)


def unbool_keys(src: Source) -> None:
    """Turn boolean mapping keys back into the words written (``on:`` must stay "on")."""
    renames: dict[Path_, str] = {}

    def walk(node: Any, path: Path_) -> Any:
        if isinstance(node, dict):
            out = {}
            for k, v in node.items():
                if type(k) is bool:
                    word = literal_at(src, (*path, k), key=True)
                    renames[(*path, k)] = word
                    k = word
                out[k] = walk(v, (*path, k))
            return out
        if isinstance(node, list):
            return [walk(v, (*path, i)) for i, v in enumerate(node)]
        return node

    src.data = walk(src.data, ())
    if not renames:
        return

    def fix(path: Path_) -> Path_:
        out: list[str | int] = []
        for part in path:
            old = (*out, part)
            out.append(renames[old] if type(part) is bool and old in renames else part)
        return tuple(out)

    src.positions = {fix(p): v for p, v in src.positions.items()}
    src.key_positions = {fix(p): v for p, v in src.key_positions.items()}


def read_lines(file: str) -> list[str]:
    try:
        return Path(file).read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
