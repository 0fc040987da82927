"""docs/events.md against the event definitions in voicebot/events.py, and the records."""

from __future__ import annotations

import dataclasses
import inspect
import re
from typing import Any

import pytest

from tests.support.paths import DOCS
from voicebot import events
from voicebot.clock import FastClock
from voicebot.events import (
    EVENTS,
    Event,
    EventBus,
    IntentEvent,
    StateEvent,
    TranscriptEvent,
    TurnEvent,
    is_optional,
    record_key,
)

DOC = DOCS / "events.md"
_CELL = re.compile(r"`([^`]+)`")


def _section(title: str) -> str:
    text = DOC.read_text()
    start = text.index(f"## {title}")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def _rows(section: str) -> list[list[str]]:
    """The body rows of the first table in ``section``, as cells."""
    rows = []
    for line in section.splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            rows.append([c.strip() for c in re.split(r"(?<!\\)\|", line.strip("|"))])
    return rows[1:]  # without the header


def documented() -> dict[str, list[str]]:
    """Event type -> its fields as docs/events.md lists them (``name?`` for optional ones)."""
    out: dict[str, list[str]] = {}
    for row in _rows(_section("Types")):
        (name,) = _CELL.findall(row[0])
        assert name not in out, f"{name} documented twice"
        out[name] = _CELL.findall(row[1])
    return out


def defined(cls: type[Event]) -> list[str]:
    """An event's fields in record order, ``name?`` for optional ones."""
    return [record_key(f) + "?" * is_optional(f) for f in dataclasses.fields(cls)]


def test_every_event_is_documented_with_its_fields_and_no_other():
    docs = documented()
    assert sorted(docs) == sorted(EVENTS), "event types in docs/events.md != voicebot/events.py"
    for name, cls in EVENTS.items():
        assert docs[name] == defined(cls), f"fields of {name!r}: docs != {cls.__name__}"


def test_the_turn_table_explains_every_figure_of_the_turn_event():
    figures = [_CELL.findall(row[0])[0] for row in _rows(_section("The `turn` event"))]
    assert figures == defined(TurnEvent)[1:]  # all but the turn number


def test_every_event_class_is_registered_under_its_own_name_with_a_docstring():
    classes = [
        c
        for _, c in inspect.getmembers(events, inspect.isclass)
        if issubclass(c, Event) and c is not Event
    ]
    assert sorted(classes, key=lambda c: c.__name__) == sorted(
        EVENTS.values(), key=lambda c: c.__name__
    )
    for name, cls in EVENTS.items():
        assert cls.event_type == name
        assert cls.__name__ == "".join(p.title() for p in name.split("_")) + "Event"
        assert cls.__doc__ and "\n" not in cls.__doc__.strip(), cls
        assert cls.__dataclass_params__.frozen


def test_the_record_is_stamped_and_keeps_field_order_leaving_out_unset_optionals():
    bus = EventBus("c1", FastClock())
    seen: list[dict[str, object]] = []
    bus.subscribe(seen.append)
    bus.emit(StateEvent(2, from_=None, to="hello"), t=1.23456)
    bus.emit(TranscriptEvent(final=True, text="hi", turn=1, language="", decode_ms=0.0), t=2)
    bus.emit(IntentEvent(3, "order", {}, 0.9, "fuzzy", "x", interim=True, mentioned={"a": 1}), t=3)
    bus.emit(IntentEvent(3, "order", {}, 0.9, "fuzzy", "x"), t=4)
    assert [list(e.items()) for e in seen] == [
        [("type", "state"), ("call_id", "c1"), ("t", 1.2346), ("turn", 2), ("from", None),
         ("to", "hello")],
        [("type", "transcript"), ("call_id", "c1"), ("t", 2), ("final", True), ("text", "hi"),
         ("turn", 1), ("language", ""), ("decode_ms", 0.0)],
        [("type", "intent"), ("call_id", "c1"), ("t", 3), ("turn", 3), ("name", "order"),
         ("slots", {}), ("confidence", 0.9), ("matcher", "fuzzy"), ("text", "x"),
         ("interim", True), ("mentioned", {"a": 1})],
        [("type", "intent"), ("call_id", "c1"), ("t", 4), ("turn", 3), ("name", "order"),
         ("slots", {}), ("confidence", 0.9), ("matcher", "fuzzy"), ("text", "x")],
    ]  # fmt: skip


def test_a_misspelled_field_fails_at_once():
    misspelled: dict[str, Any] = {"final": True, "txt": "hi", "turn": 1}
    with pytest.raises(TypeError, match="txt"):
        TranscriptEvent(**misspelled)
    with pytest.raises(dataclasses.FrozenInstanceError):
        StateEvent(1, None, "a").to = "b"
