"""YAML loading that keeps where every value came from.

PyYAML's safe loader forgets positions and silently keeps the last of two
duplicate keys. Bot authors need ``file:line:col`` for every mistake, so this
module composes the node tree itself, records the position of every key and
value, and reports duplicate keys as errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from voicebot.errors import VoicebotError

Path_ = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Diagnostic:
    file: str
    line: int  # 1-based
    col: int  # 1-based
    code: str
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        level = "" if self.severity == "error" else f"{self.severity}: "
        return f"{self.file}:{self.line}:{self.col}: {self.code} {level}{self.message}"


class ConfigError(VoicebotError):
    """One or more diagnostics; ``str()`` lists them one per line."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = diagnostics
        super().__init__("\n".join(str(d) for d in diagnostics))


@dataclass(slots=True)
class Source:
    """A loaded YAML document: plain Python data plus the position of each path."""

    file: str
    data: Any
    positions: dict[Path_, tuple[int, int]]
    key_positions: dict[Path_, tuple[int, int]]

    def at(self, path: Path_, *, key: bool = False) -> tuple[int, int]:
        table = self.key_positions if key else self.positions
        while path not in table and path:
            path = path[:-1]
        return table.get(path, (1, 1))

    def diag(
        self, path: Path_, code: str, message: str, *, key: bool = False, severity: str = "error"
    ) -> Diagnostic:
        line, col = self.at(path, key=key)
        return Diagnostic(self.file, line, col, code, message, severity)


def _pos(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def load(path: str | Path, display: str | None = None) -> tuple[Source, list[Diagnostic]]:
    """Parse ``path``; syntax errors and duplicate keys come back as diagnostics."""
    name = display or str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        return Source(name, None, {}, {}), [Diagnostic(name, 1, 1, "E001", f"cannot read: {exc}")]
    return loads(text, name)


def loads(text: str, name: str = "<string>") -> tuple[Source, list[Diagnostic]]:
    diags: list[Diagnostic] = []
    positions: dict[Path_, tuple[int, int]] = {}
    key_positions: dict[Path_, tuple[int, int]] = {}
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = exc.problem or str(exc)
        diags.append(Diagnostic(name, line, col, "E002", f"YAML syntax error: {problem}"))
        return Source(name, None, positions, key_positions), diags
    constructor = yaml.SafeLoader("")  # only used to turn scalars into Python values

    def convert(n: yaml.Node, path: Path_) -> Any:
        positions[path] = _pos(n)
        if isinstance(n, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in n.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    diags.append(
                        Diagnostic(name, *_pos(key_node), "E003", "merge keys (<<) are unsupported")
                    )
                    continue
                key = (
                    constructor.construct_object(key_node)
                    if isinstance(key_node, yaml.ScalarNode)
                    else None
                )
                if not isinstance(key, (str, int)):
                    diags.append(Diagnostic(name, *_pos(key_node), "E004", "keys must be strings"))
                    continue
                if key in out:
                    first = key_positions[(*path, key)]
                    diags.append(
                        Diagnostic(
                            name,
                            *_pos(key_node),
                            "E005",
                            f"duplicate key {key!r} (first defined at line {first[0]})",
                        )
                    )
                    continue
                key_positions[(*path, key)] = _pos(key_node)
                out[key] = convert(value_node, (*path, key))
            return out
        if isinstance(n, yaml.SequenceNode):
            return [convert(item, (*path, i)) for i, item in enumerate(n.value)]
        return constructor.construct_object(n, deep=True)

    data = convert(node, ()) if node is not None else None
    return Source(name, data, positions, key_positions), diags
