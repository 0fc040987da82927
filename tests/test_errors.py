"""Every exception voicebot defines derives from VoicebotError and is in the errors.py tree."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import voicebot
from voicebot import errors
from voicebot.errors import VoicebotError

_LINE = re.compile(
    r"^(?P<indent> *)(?P<name>\w+)(?: \[(?P<builtin>\w+)\])?(?:  (?P<module>[\w.]+))?"
)


def defined_exceptions() -> dict[str, type[BaseException]]:
    """``module.Class`` -> class, for every exception class defined in the package."""
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(voicebot.__path__, "voicebot."):
        if info.name.rpartition(".")[2] == "__main__":
            continue  # runs the command line when imported
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if (
                inspect.isclass(obj)
                and issubclass(obj, BaseException)
                and obj.__module__ == info.name
            ):
                found[f"{info.name}.{name}"] = obj
    return found


def tree() -> list[tuple[int, str, str | None, str]]:
    """(depth, class, built-in base or None, module) per line of the docstring's tree."""
    doc = errors.__doc__ or ""
    block = doc.split("::\n", 1)[1].strip("\n").split("\n\n", 1)[0]
    rows = []
    for line in block.splitlines():
        m = _LINE.match(line)
        assert m, line
        depth = (len(m["indent"]) - 4) // 4
        rows.append((depth, m["name"], m["builtin"], m["module"] or "voicebot.errors"))
    return rows


def test_the_tree_lists_every_exception_under_its_base_and_no_other():
    rows = tree()
    assert rows[0][:2] == (0, "VoicebotError")
    listed: dict[str, type[BaseException]] = {}
    parents: list[type[BaseException]] = []
    for depth, name, builtin, module in rows:
        cls = getattr(importlib.import_module(module), name, None)
        assert inspect.isclass(cls) and issubclass(cls, BaseException), f"{module}.{name}"
        del parents[depth:]
        if parents:
            assert issubclass(cls, parents[-1]), f"{name} is listed under {parents[-1].__name__}"
            voicebot_bases = [b for b in cls.__bases__ if issubclass(b, VoicebotError)]
            assert voicebot_bases == [parents[-1]], f"{name}'s base is {voicebot_bases}"
        builtins = [b.__name__ for b in cls.__bases__ if not issubclass(b, VoicebotError)]
        assert builtins == ([builtin] if builtin else []), f"{name}: bases {cls.__bases__}"
        parents.append(cls)
        listed[f"{module}.{name}"] = cls
    assert listed == defined_exceptions()


def test_every_exception_voicebot_defines_is_a_voicebot_error():
    strays = [n for n, c in defined_exceptions().items() if not issubclass(c, VoicebotError)]
    assert strays == []


def test_errors_is_a_leaf_module():
    source = inspect.getsource(errors)
    assert not re.search(r"^\s*(from|import) voicebot", source, re.M)
