"""Python hooks a flow calls with ``call:`` (look something up, check availability).

A hook is a plain function taking one ``HookCall`` and returning a mapping of
values (or None). Flows name hooks either by dotted path (``package.module:function``)
or by a registered name (``@hook("name")``; builtins: ``lookup``). Hooks run
with a timeout; synchronous ones run in a worker thread so a slow lookup never
blocks the event loop (a timed-out thread is abandoned, not killed - hooks
should have their own I/O timeouts too).
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from voicebot.errors import VoicebotError

HookResult = Mapping[str, Any] | None
HookFn = Callable[["HookCall"], HookResult | Awaitable[HookResult]]


@dataclass(frozen=True, slots=True)
class HookCall:
    """What a hook sees: the call's collected values (read-only copies) and its arguments."""

    call_id: str
    state: str
    language: str
    values: Mapping[str, Any]  # slots collected so far and earlier hook results
    args: Mapping[str, Any] = field(default_factory=dict)
    data: Mapping[str, Any] = field(default_factory=dict)  # the flow's `data:` section


class HookError(VoicebotError):
    """A hook failed, timed out or returned something that is not a mapping."""


_REGISTRY: dict[str, HookFn] = {}


def hook(name: str | None = None) -> Callable[[HookFn], HookFn]:
    """Register a function under ``name`` (default: its own name) for ``call: name``."""

    def register(fn: HookFn) -> HookFn:
        key = name or fn.__name__
        if key in _REGISTRY and _REGISTRY[key] is not fn:
            raise ValueError(f"hook {key!r} is already registered")
        _REGISTRY[key] = fn
        return fn

    return register


def registered() -> list[str]:
    return sorted(_REGISTRY)


def resolve(ref: str) -> HookFn:
    """The hook named ``ref``; raises LookupError with a reason a bot author can act on."""
    if ":" not in ref:
        fn = _REGISTRY.get(ref)
        if fn is None:
            known = ", ".join(registered()) or "none"
            raise LookupError(
                f"no hook registered as {ref!r} (registered: {known}; "
                "or use 'package.module:function')"
            )
        return fn
    module_name, _, attr = ref.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise LookupError(f"cannot import {module_name!r}: {exc}") from exc
    target: Any = module
    for part in attr.split("."):
        target = getattr(target, part, None)
        if target is None:
            raise LookupError(f"{module_name!r} has no {attr!r}")
    if not callable(target):
        raise LookupError(f"{ref!r} is not callable")
    return cast(HookFn, target)  # a callable; its signature is the hook author's promise


async def run_hook(fn: HookFn, call: HookCall, limit: float) -> dict[str, Any]:
    """Run ``fn`` for at most ``limit`` seconds; sync functions run in the default executor."""
    try:
        if inspect.iscoroutinefunction(fn):
            result = await asyncio.wait_for(fn(call), limit)
        else:
            loop = asyncio.get_running_loop()
            future = loop.run_in_executor(None, functools.partial(fn, call))
            result = await asyncio.wait_for(future, limit)
            if inspect.isawaitable(result):
                result = await asyncio.wait_for(result, limit)
    except TimeoutError as exc:
        raise HookError(f"hook timed out after {limit:g} s") from exc
    except Exception as exc:
        raise HookError(f"hook raised {type(exc).__name__}: {exc}") from exc
    if result is None:
        return {}
    if not isinstance(result, Mapping):
        raise HookError(f"hook returned {type(result).__name__}, expected a mapping")
    return dict(result)


@hook("lookup")
def lookup(call: HookCall) -> dict[str, Any]:
    """Row ``values[key]`` of table ``data[table]``: ``args: {table: ..., key: slot}``.

    A row that is a mapping is returned as is; a scalar row as ``{"value": row}``;
    a missing row as ``{}`` (the declared return values become null).
    """
    table = call.data.get(str(call.args.get("table")))
    if not isinstance(table, Mapping):
        raise KeyError(f"flow data has no table {call.args.get('table')!r}")
    key = call.values.get(str(call.args.get("key")))
    row = table.get(key) if key is not None else None
    if row is None:
        return {}
    return dict(row) if isinstance(row, Mapping) else {"value": row}
