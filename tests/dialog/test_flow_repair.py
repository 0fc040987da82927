"""Flow behaviour for callers who change their mind and ask in between: digressions that
return, corrections, confirmations only on a heard read-back, time readings picked by the
flow's data - and ``voicebot check`` on the new keys, at file:line:col."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from pathlib import Path
from typing import Any

import pytest

from voicebot.dialog.bot import check_files
from voicebot.dialog.flow import Bot, Conversation
from voicebot.dialog.flow_file import read_flow
from voicebot.dialog.hooks import HookCall, hook
from voicebot.dialog.outcomes import MemoryOutcomeStore
from voicebot.nlu.match import Match, Matcher
from voicebot.nlu.slot_day import DayValue
from voicebot.nlu.slot_time import parse_time
from voicebot.nlu.slots import DaySlot, TimeSlot

FLOW = """\
flow: clinic
languages: [en]
start: ask_day
global:
  hours: {goto: hours, return: true}
  bye: bye
states:
  ask_day:
    collect: day
    ask: "Which day?"
    next: check
  check:
    call: {function: clinic_hours, returns: {opens: time, closes: time}}
    next: ask_time
  ask_time:
    collect: time
    within: [opens, closes]
    ask: "What time?"
    next: confirm
  confirm:
    ask: "{day} at {time}, shall I book it?"
    confirm: {affirm: booked, deny: ask_day}
  booked: {outcome: visit, say: "Booked.", next: more}
  more: {ask: "Anything else?", on: {bye: bye}}
  hours: {say: "We open at nine.", next: more}
  bye: {say: "Bye.", end: true}
"""


@hook("clinic_hours")
def clinic_hours(call: HookCall) -> dict[str, Any]:
    return {"opens": "08:00", "closes": "17:00"}


class Scripted(Matcher):
    """Returns the next scripted match for each utterance (None: no match)."""

    language = "en"

    def __init__(self, table: dict[str, Match | None]) -> None:
        self.table = table

    def match(
        self,
        text: str,
        allowed: Collection[str] | None = None,
        *,
        interim: bool = False,
        expect: str | None = None,
    ) -> Match | None:
        found = self.table.get(text)
        return found if found is None or allowed is None or found.intent in allowed else None


def _bot(tmp_path: Path) -> Bot:
    path = tmp_path / "clinic_flow.yaml"
    path.write_text(FLOW)
    src, diags = read_flow([path])
    assert not [d for d in diags if d.severity == "error"], diags
    collectors = {"day": frozenset({"inform", "hours"}), "time": frozenset({"inform"})}
    speakers = {"day": DaySlot().speak, "time": TimeSlot().speak}
    intents = frozenset({"inform", "hours", "bye", "affirm", "deny"})
    return Bot(src.flow, collectors, speakers, intents)


FRIDAY = DayValue("friday", dt.date(2026, 12, 4))
MONDAY = DayValue("monday", dt.date(2026, 12, 7))


def _conv(
    tmp_path: Path, table: dict[str, Match | None]
) -> tuple[Conversation, MemoryOutcomeStore]:
    store = MemoryOutcomeStore()
    return Conversation(_bot(tmp_path), Scripted(table), store, call_id="t"), store


async def test_within_picks_the_reading_inside_the_flows_hours(tmp_path: Path) -> None:
    eight = parse_time("8", "en", "evening")  # a person would say 8 pm, the clinic 8 am
    assert eight == "20:00"
    conv, _ = _conv(
        tmp_path,
        {"friday": Match("inform", {"day": FRIDAY}), "at eight": Match("inform", {"time": eight})},
    )
    await conv.start()
    await conv.hear("friday")
    step = await conv.hear("at eight")
    assert conv.slots["time"] == "08:00" and step.state == "confirm"
    assert "eight a m" in step.text


async def test_a_digression_keeps_the_calls_values_and_returns(tmp_path: Path) -> None:
    conv, _ = _conv(
        tmp_path,
        {
            "friday": Match("inform", {"day": FRIDAY}),
            "are you open on monday": Match("hours", {"day": MONDAY}),
        },
    )
    await conv.start()
    await conv.hear("friday")
    step = await conv.hear("are you open on monday")
    assert step.text == "We open at nine. What time?" and step.state == "ask_time"
    assert conv.slots["day"] == "friday" and conv.slots["day_date"] == "2026-12-04"


async def test_a_deny_with_a_value_is_a_correction(tmp_path: Path) -> None:
    nine = parse_time("9 am", "en")
    conv, store = _conv(
        tmp_path,
        {
            "friday": Match("inform", {"day": FRIDAY}),
            "nine": Match("inform", {"time": nine}),
            "no monday": Match("deny", {}, mentioned={"day": MONDAY}),
            "yes": Match("affirm", {}),
        },
    )
    await conv.start()
    await conv.hear("friday")
    await conv.hear("nine")
    step = await conv.hear("no monday")
    assert step.state == "confirm" and step.text.startswith("Monday at nine a m")
    step = await conv.hear("yes")
    assert [o.slots["day"] for o in store.outcomes] == ["monday"]
    assert store.outcomes[0].slots["day_date"] == "2026-12-07"


async def test_a_yes_that_did_not_hear_the_read_back_books_nothing(tmp_path: Path) -> None:
    conv, store = _conv(
        tmp_path,
        {
            "friday": Match("inform", {"day": FRIDAY}),
            "nine": Match("inform", {"time": parse_time("9 am", "en")}),
            "yes": Match("affirm", {}),
            "yes i guess": Match("affirm", {}, confidence=0.6, matcher="statistical"),
        },
    )
    await conv.start()
    await conv.hear("friday")
    await conv.hear("nine")
    step = await conv.hear("yes", heard=0.4)  # said over the read-back
    assert not store.outcomes and step.state == "confirm" and "shall I book it" in step.text
    await conv.hear("yes i guess")  # a guess of a lower tier
    assert not store.outcomes
    await conv.hear("yes")
    assert len(store.outcomes) == 1


async def _friday_week(
    tmp_path: Path, said: str, match: Match
) -> tuple[Conversation, MemoryOutcomeStore]:
    """A call holding Friday the 11th ("Friday week"), then ``said`` heard as ``match``."""
    eleventh = DayValue("friday", dt.date(2026, 12, 11), explicit=True)
    table = {
        "friday week": Match("inform", {"day": eleventh}),
        said: match,
        "yes friday": Match("affirm", {}, mentioned={"day": FRIDAY}),
    }
    conv, store = _conv(tmp_path, table)
    await conv.start()
    await conv.hear("friday week")
    await conv.hear(said)
    return conv, store


async def test_a_weekday_said_again_keeps_the_date_held(tmp_path: Path) -> None:
    # "Friday's right, at nine": a bare Friday is the Friday held (the 11th), not the
    # coming one; "this Friday" names the coming one
    eleventh = DayValue("friday", dt.date(2026, 12, 11), explicit=True)
    this_friday = DayValue("friday", FRIDAY.date, explicit=True)
    conv, _ = _conv(
        tmp_path,
        {
            "friday week": Match("inform", {"day": eleventh}),
            "fridays right at nine": Match(
                "inform", {"day": FRIDAY, "time": parse_time("9 am", "en")}
            ),
            "no this friday": Match("deny", {}, mentioned={"day": this_friday}),
        },
    )
    await conv.start()
    await conv.hear("friday week")
    step = await conv.hear("fridays right at nine")
    assert step.state == "confirm" and conv.slots["day_date"] == "2026-12-11"
    await conv.hear("no this friday")
    assert conv.slots["day_date"] == "2026-12-04"
    # a weekday after a "no" is a new one, not the one held ("What time?" - "no, Friday")
    conv, _ = await _friday_week(tmp_path, "no friday", Match("inform", {"day": FRIDAY}))
    assert conv.slots["day_date"] == "2026-12-04"
    # "yes, Friday" at the read-back: the Friday held, booked (a value said with the yes)
    conv, store = await _friday_week(
        tmp_path, "nine", Match("inform", {"time": parse_time("9 am", "en")})
    )
    await conv.hear("yes friday")
    assert [o.slots["day_date"] for o in store.outcomes] == ["2026-12-11"]


def _check(tmp_path: Path, flow: str) -> list[str]:
    path = tmp_path / "flow.yaml"
    path.write_text(flow)
    intents = tmp_path / "intents.yaml"
    intents.write_text(
        "slots: {day: {type: day}, time: {type: time}}\n"
        "intents:\n"
        "  inform: {templates: {en: ['{day}', '{time}']}}\n"
        "  hours: {templates: {en: ['hours']}}\n"
        "  bye: {templates: {en: ['bye']}}\n"
        "  affirm: {templates: {en: ['yes']}}\n"
        "  deny: {templates: {en: ['no']}}\n"
    )
    _, _, diags = check_files([path], [intents])
    return [str(d).replace(str(tmp_path) + "/", "") for d in diags]


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            ("  hours: {goto: hours, return: true}", "  hours: {goto: hourz, return: true}"),
            "flow.yaml:5:17: E404 unknown state 'hourz' (did you mean 'hours'?)",
        ),
        (
            ("  hours: {goto: hours, return: true}", "  hours: {goto: hours, return: yes please}"),
            "flow.yaml:5:32: E402 expected true or false, got 'yes please'",
        ),
        (
            ("  hours: {goto: hours, return: true}", "  hours: {goto: hours, retrun: true}"),
            "flow.yaml:5:24: E401 unknown key 'retrun' in global handler 'hours' (did you mean "
            "'return'?)",
        ),
        (
            ("  hours: {goto: hours, return: true}", "  hours: {return: true}"),
            "flow.yaml:5:3: E403 global handler 'hours' needs 'goto' (the state that answers it)",
        ),
        (
            ("    within: [opens, closes]", "    within: [opens]"),
            "flow.yaml:17:13: E402 'within' must be a list of two value names, e.g. [open, close]",
        ),
        (
            ("    within: [opens, closes]", "    within: [opens, shuts]"),
            "flow.yaml:17:21: E406 undeclared slot 'shuts' (slots come from the intent files, "
            "values from a hook's 'returns')",
        ),
    ],
)
def test_check_reports_digression_and_within_mistakes(
    tmp_path: Path, edit: tuple[str, str], expected: str
) -> None:
    assert edit[0] in FLOW
    diags = _check(tmp_path, FLOW.replace(*edit))
    assert expected in diags, diags


def test_the_clinic_flow_checks_clean(tmp_path: Path) -> None:
    assert [d for d in _check(tmp_path, FLOW) if " E" in d] == []
