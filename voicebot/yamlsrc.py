"""The one YAML reader: loading with positions, and the checks every file format shares.

PyYAML's safe loader forgets positions and silently keeps the last of two
duplicate keys. Bot authors need ``file:line:col`` for every mistake, so this
module composes the node tree itself, records the position of every key and
value (``YamlFile``), and reports duplicate keys as errors. ``Reader``
collects the diagnostics of one or more files and holds the shared checks
(unknown key, wrong type, missing key, a value out of a set of choices);
``did_you_mean`` is the one suggestion helper. Pipelines, intents, flows,
dialog tests and corpora are all read through it.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from voicebot.diagnostics import Diagnostic

NodePath = tuple[str | int, ...]  # keys and list indices from the document's root


@dataclass(slots=True)
class YamlFile:
    """A loaded YAML document: plain Python data plus the position of each node path."""

    file: str
    data: Any
    positions: dict[NodePath, tuple[int, int]]
    key_positions: dict[NodePath, tuple[int, int]]
    lines: list[str] = field(default_factory=list)  # the text as read

    def at(self, path: NodePath, *, key: bool = False) -> tuple[int, int]:
        """Line and column of ``path`` (its key with ``key``), else of its nearest parent."""
        table = self.key_positions if key else self.positions
        while path not in table and path:
            path = path[:-1]
        return table.get(path, (1, 1))

    def diag(
        self,
        path: NodePath,
        code: str,
        message: str,
        *,
        key: bool = False,
        severity: str = "error",
    ) -> Diagnostic:
        """The one diagnostic constructor for a place in this file."""
        line, col = self.at(path, key=key)
        return Diagnostic(self.file, line, col, code, message, severity)

    def literal_at(self, path: NodePath, *, key: bool = False) -> str:
        """The word written at ``path`` (YAML 1.1 reads ``on``, ``yes``, ``no`` as booleans)."""
        line, col = self.at(path, key=key)
        raw = self.lines[line - 1][col - 1 :] if 0 < line <= len(self.lines) else ""
        match = re.match(r"[\"']?([A-Za-z~]+)", raw)
        return match.group(1) if match else str(self.data)

    def template_col(self, path: NodePath, offset: int) -> tuple[int, int]:
        """Where character ``offset`` (a brace) of a scalar is written; else the scalar's start.

        Exact for scalars on one line without escapes; for others (folded,
        escaped) the brace is not where the offset says, and the start is reported.
        """
        line, col = self.at(path)
        raw = self.lines[line - 1] if 0 < line <= len(self.lines) else ""
        exact = col + offset + (1 if raw[col - 1 : col] in ("'", '"') else 0)
        if raw[exact - 1 : exact] and raw[exact - 1] in "{}":
            return line, exact
        return line, col

    def unbool_keys(self) -> None:
        """Turn boolean mapping keys back into the words written (``on:`` must stay "on")."""
        renames: dict[NodePath, str] = {}

        def walk(node: Any, path: NodePath) -> Any:
            if isinstance(node, dict):
                out = {}
                for k, v in node.items():
                    if type(k) is bool:
                        word = self.literal_at((*path, k), key=True)
                        renames[(*path, k)] = word
                        k = word
                    out[k] = walk(v, (*path, k))
                return out
            if isinstance(node, list):
                return [walk(v, (*path, i)) for i, v in enumerate(node)]
            return node

        self.data = walk(self.data, ())
        if not renames:
            return

        def fix(path: NodePath) -> NodePath:
            out: list[str | int] = []
            for part in path:
                old = (*out, part)
                out.append(renames[old] if type(part) is bool and old in renames else part)
            return tuple(out)

        self.positions = {fix(p): v for p, v in self.positions.items()}
        self.key_positions = {fix(p): v for p, v in self.key_positions.items()}


def _pos(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def load(path: str | Path, display: str | None = None) -> tuple[YamlFile, list[Diagnostic]]:
    """Parse ``path``; syntax errors and duplicate keys come back as diagnostics."""
    name = display or str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        return YamlFile(name, None, {}, {}), [Diagnostic(name, 1, 1, "E001", f"cannot read: {exc}")]
    return loads(text, name)


def loads(text: str, name: str = "<string>") -> tuple[YamlFile, list[Diagnostic]]:
    """Parse ``text`` (reported as file ``name``)."""
    diags: list[Diagnostic] = []
    positions: dict[NodePath, tuple[int, int]] = {}
    key_positions: dict[NodePath, tuple[int, int]] = {}
    lines = text.splitlines()
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = exc.problem or str(exc)
        diags.append(Diagnostic(name, line, col, "E002", f"YAML syntax error: {problem}"))
        return YamlFile(name, None, positions, key_positions, lines), diags
    constructor = yaml.SafeLoader("")  # only used to turn scalars into Python values

    def convert(n: yaml.Node, path: NodePath) -> Any:
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
    return YamlFile(name, data, positions, key_positions, lines), diags


def did_you_mean(name: object, choices: Iterable[object], show: Callable[[str], str] = repr) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices`` (``show`` spells it), or ""."""
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1)
    return f" (did you mean {show(close[0])}?)" if close else ""


def is_type(value: Any, kind: type) -> bool:
    """``isinstance`` as a YAML author means it: a boolean is no number, an integer is a float."""
    if isinstance(value, bool):
        return kind is bool
    if kind is float:
        return isinstance(value, (int, float))
    return isinstance(value, kind)


KIND_NAMES: dict[type, str] = {
    dict: "a mapping",
    list: "a list",
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
}


class Reader:
    """Collects the diagnostics of one or more files; the checks every format shares.

    Each check takes the code to report: the formats keep their own code ranges
    (``voicebot.diagnostics``).
    """

    def __init__(self) -> None:
        self.diags: list[Diagnostic] = []

    def err(
        self,
        src: YamlFile,
        path: NodePath,
        code: str,
        message: str,
        *,
        key: bool = False,
        severity: str = "error",
    ) -> None:
        self.diags.append(src.diag(path, code, message, key=key, severity=severity))

    def warn(
        self, src: YamlFile, path: NodePath, code: str, message: str, *, key: bool = False
    ) -> None:
        self.err(src, path, code, message, key=key, severity="warning")

    def unknown_keys(
        self,
        src: YamlFile,
        data: dict[Any, Any],
        path: NodePath,
        allowed: Iterable[str],
        code: str,
        *,
        noun: str = "key",
        where: str = "",
        suggest: bool = True,
    ) -> dict[Any, Any]:
        """Report each key of ``data`` not in ``allowed`` (``unknown {noun} 'k' in {where}``,
        with a "did you mean"); returns the known part."""
        allowed = tuple(allowed)
        for k in data:
            if k not in allowed:
                inside = f" in {where}" if where else ""
                hint = did_you_mean(k, allowed) if suggest else ""
                self.err(src, (*path, k), code, f"unknown {noun} {k!r}{inside}{hint}", key=True)
        return {k: v for k, v in data.items() if k in allowed}

    def expect(
        self, src: YamlFile, path: NodePath, value: Any, kind: type, what: str, *, code: str
    ) -> bool:
        """Whether ``value`` is a ``kind``; if not, ``{what} must be a ..., got int 3``."""
        if is_type(value, kind):
            return True
        self.err(
            src,
            path,
            code,
            f"{what} must be {KIND_NAMES.get(kind, 'valid')}, got {type(value).__name__} {value!r}",
        )
        return False

    def require(
        self, src: YamlFile, path: NodePath, name: str, code: str, *, why: str = ""
    ) -> None:
        """Report the missing key ``name`` under ``path`` (``why``: when it is needed)."""
        self.err(src, path, code, f"missing required key {name!r}" + (f" ({why})" if why else ""))

    def choice(
        self, src: YamlFile, path: NodePath, value: Any, choices: Iterable[Any], code: str
    ) -> bool:
        """Whether ``value`` is one of ``choices``; if not, the choices and a "did you mean"."""
        choices = tuple(choices)
        if value in choices:
            return True
        listed = " | ".join(repr(c) for c in choices)
        hint = did_you_mean(value, choices)
        self.err(src, path, code, f"must be one of {listed}, got {value!r}{hint}")
        return False
