"""``docs/pipeline.md``, the reference of every pipeline key, rendered from the schema itself.

Each key's type, default and allowed values come from the dataclasses of
``voicebot/config.py``, its description from the field's ``doc`` metadata, each
section's introduction from its class docstring. After a schema change,
regenerate the page with ``python -m voicebot.config_docs``; a test fails while
the committed page differs from what this module renders.
"""

from __future__ import annotations

import dataclasses
import inspect
import sys
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from voicebot.config import PipelineConfig

COMMAND = "python -m voicebot.config_docs"
DOCS_PATH = Path(__file__).resolve().parent.parent / "docs" / "pipeline.md"


@dataclass(frozen=True)
class Key:
    """One pipeline key as the reference shows it."""

    name: str
    type: str
    default: str
    allowed: str
    doc: str


@dataclass
class Section:
    """The keys of one schema class, and every place it appears (``asr.remote``, ``tts.remote``)."""

    cls: type
    paths: list[str]
    keys: list[Key]


def keys_of(cls: type) -> list[tuple[dataclasses.Field[Any], Any]]:
    """The pipeline keys of a schema class with their resolved types (internal fields left out)."""
    hints = typing.get_type_hints(cls)
    return [(f, hints[f.name]) for f in dataclasses.fields(cls) if not f.metadata.get("internal")]


def undocumented(cls: type = PipelineConfig, prefix: str = "") -> list[str]:
    """Dotted paths of the keys without a ``doc``, in this class and the sections below it."""
    missing = []
    for f, tp in keys_of(cls):
        path = f"{prefix}{f.name}"
        if not str(f.metadata.get("doc", "")).strip():
            missing.append(path)
        if dataclasses.is_dataclass(tp):
            missing += undocumented(typing.cast(type, tp), f"{path}.")
    return missing


def sections(root: type = PipelineConfig) -> list[Section]:
    """Every schema class in the order its first key appears, the root's own keys first."""
    found: dict[type, Section] = {}

    def visit(cls: type, path: str) -> None:
        if cls in found:
            found[cls].paths.append(path)
            return
        section = found[cls] = Section(cls, [path], [])
        nested = []
        for f, tp in keys_of(cls):
            child = f"{path}.{f.name}" if path else f.name
            section.keys.append(_key(f, tp, child))
            if dataclasses.is_dataclass(tp):
                nested.append((typing.cast(type, tp), child))
        for cls_, child in nested:
            visit(cls_, child)

    visit(root, "")
    return list(found.values())


def render(root: type = PipelineConfig) -> str:
    """The text of ``docs/pipeline.md`` (the reference of ``root`` and its sections)."""
    missing = undocumented(root)
    if missing:
        raise ValueError(f"pipeline keys without a doc: {', '.join(missing)}")
    lines = [
        "# Pipeline YAML reference",
        "",
        f"<!-- Generated from voicebot/config.py by `{COMMAND}`; do not edit. -->",
        "",
        "Every key a pipeline file may hold, section by section. Keys left out take",
        "their default. `voicebot check` (and every command that loads a pipeline)",
        "reports unknown keys, wrong types, values outside *allowed* and missing files",
        "as `file:line:col`, all at once. An example file is in the",
        "[README](../README.md#pipeline-yaml).",
    ]
    for section in sections(root):
        title = ", ".join(f"`{p}`" for p in section.paths) if section.paths[0] else "Top level"
        lines += ["", f"## {title}", "", _intro(section.cls), ""]
        lines += ["| key | type | default | allowed | description |", "|---|---|---|---|---|"]
        lines += [
            "| "
            + " | ".join(_cell(v) for v in (f"`{k.name}`", k.type, k.default, k.allowed, k.doc))
            + " |"
            for k in section.keys
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the reference: to the path given, else to the checkout's ``docs/pipeline.md``."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) > 1 or (args and args[0].startswith("-")):
        print(f"usage: {COMMAND} [PATH]  (default: {DOCS_PATH})", file=sys.stderr)
        return 2
    path = Path(args[0]) if args else DOCS_PATH
    if not path.parent.is_dir():
        print(f"{path.parent} does not exist (not a checkout?): give a PATH", file=sys.stderr)
        return 2
    path.write_text(render(), encoding="utf-8")
    print(f"wrote {path}")
    return 0


# --- one key ------------------------------------------------------------------------


def _key(f: dataclasses.Field[Any], tp: Any, path: str) -> Key:
    doc = str(f.metadata["doc"])
    if dataclasses.is_dataclass(tp):
        return Key(f.name, "mapping", "", "", f"{doc}; keys: section `{path}`")
    return Key(f.name, _type(tp), _default(f), _allowed(f, tp), doc)


def _type(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        kinds = {type(a).__name__ for a in typing.get_args(tp)}
        return " or ".join(sorted(kinds))
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        named = [_type(a) for a in args if a is not type(None)]
        return " or ".join(named) + (" or unset" if type(None) in args else "")
    if origin is list:
        (item,) = typing.get_args(tp)
        return f"list of {_type(item)}"
    return str(getattr(tp, "__name__", tp))


def _default(f: dataclasses.Field[Any]) -> str:
    if f.default_factory is not dataclasses.MISSING:
        return f"`{_yaml(f.default_factory())}`"
    if f.default is dataclasses.MISSING:
        return "required"
    return "unset" if f.default is None else f"`{_yaml(f.default)}`"


def _allowed(f: dataclasses.Field[Any], tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        return ", ".join(f"`{_yaml(a)}`" for a in typing.get_args(tp))
    lo, hi = f.metadata.get("lo"), f.metadata.get("hi")
    if lo is not None and hi is not None:
        return f"{_number(lo)} to {_number(hi)}"
    if lo is not None:
        return f"at least {_number(lo)}"
    if hi is not None:
        return f"at most {_number(hi)}"
    return ""


def _yaml(value: Any) -> str:
    """A value as it would be written in the pipeline file."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value == "":
        return '""'
    if isinstance(value, list):
        return "[" + ", ".join(_yaml(v) for v in value) + "]"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


def _intro(cls: type) -> str:
    """The first paragraph of the class docstring, in Markdown."""
    doc = inspect.getdoc(cls) or ""
    first = doc.split("\n\n", 1)[0]
    return " ".join(first.split()).replace("``", "`")


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


if __name__ == "__main__":
    sys.exit(main())
