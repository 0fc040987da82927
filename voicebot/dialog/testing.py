"""``voicebot test-dialog``: conversation tests for flows, at the text level (no audio).

A test file names the bot (a pipeline, or flow + intents + language) and lists
conversations; each step is one caller input and what should follow::

    pipeline: ../../pipelines/restaurant.yaml
    today: 2025-06-02            # optional: resolves "today" / "tomorrow"
    tests:
      - name: book in one go
        steps:
          - bot: "Hello ... How can I help you?"     # no input: checks the greeting
          - user: "a table for four on friday at half past seven"
            intent: book_table
            slots: {party_size: 4, day: friday, time: "19:30"}
            state: confirm_booking
            bot_contains: half past seven
          - silent: true                            # the caller says nothing (timeout)
            bot_contains: still there

Inputs: ``user`` (final transcript), ``user_partial`` (a partial transcript
while the bot speaks: only interim intents act), ``dtmf: "4#"`` (keys pressed,
one after the other; the step checks what follows the last), ``silent: true``
(after keys: the inter-digit timeout, which ends the entry); with
``user``, ``heard: 0.4`` says the caller began speaking when 40 % of the bot's
last reply had played (a barge-in; a "yes" over a read-back confirms nothing).
Expectations: ``intent`` (null: no match), ``slots``, ``matcher``, ``state``,
``bot`` (exact, spacing ignored), ``bot_contains``, ``transfer``, ``outcome``
(a kind, or ``{kind, slots}``), ``ended``, ``collected`` (slots so far; null:
unset). Outcomes go to an in-memory store. A failing step prints expected and
got side by side; the test stops there.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voicebot.diagnostics import ConfigError
from voicebot.dialog.bot import LoadedBot, check_dialog, errors
from voicebot.dialog.flow import Conversation, Step
from voicebot.dialog.outcomes import MemoryOutcomeStore
from voicebot.events import Event, IntentEvent, NoMatchEvent, OutcomeEvent, TransferEvent
from voicebot.frames import DTMF_KEYS
from voicebot.yamlsrc import NodePath, Reader, YamlFile, did_you_mean, load

INPUTS = ("user", "user_partial", "dtmf", "silent")
MODIFIERS = ("heard",)  # share of the bot's last reply heard before the caller spoke
EXPECTS = (
    "intent",
    "slots",
    "matcher",
    "state",
    "bot",
    "bot_contains",
    "transfer",
    "outcome",
    "ended",
    "collected",
)
HEADER = ("pipeline", "flow", "intents", "language", "today", "tests")


@dataclass
class TestStep:
    input: str  # "start" | "user" | "user_partial" | "dtmf" | "silent"
    text: str
    expect: dict[str, Any]
    path: NodePath
    heard: float = 1.0


@dataclass
class DialogTest:
    name: str
    steps: list[TestStep]
    path: NodePath


@dataclass
class Suite:
    src: YamlFile
    loaded: LoadedBot
    language: str
    today: dt.date | None
    tests: list[DialogTest] = field(default_factory=list)


@dataclass
class Failure:
    test: str
    step: int
    where: str
    said: str  # the step's input
    lines: list[str]


def _relative(src: YamlFile, value: str) -> str:
    p = Path(value)
    return str(p if p.is_absolute() else Path(src.file).parent / p)


def load_suite(path: str | Path) -> Suite:
    """Parse a dialog-test file and its bot; raises ``ConfigError`` with every problem."""
    src, diags = load(path)
    src.unbool_keys()
    if src.data is None:
        raise ConfigError(diags or [src.diag((), "E502", "empty dialog-test file")])
    r = Reader()
    r.diags += diags
    data = src.data if isinstance(src.data, dict) else {}
    if not isinstance(src.data, dict):
        r.err(src, (), "E502", "a dialog-test file is a mapping with 'tests'")
    r.unknown_keys(src, data, (), HEADER, "E501")
    loaded, language = _bot(src, data, r)
    today = data.get("today")
    if today is not None and not isinstance(today, dt.date):
        r.err(src, ("today",), "E502", f"'today' must be a date (YYYY-MM-DD), got {today!r}")
        today = None
    if errors(r.diags) or loaded is None:
        raise ConfigError(r.diags)
    suite = Suite(src, loaded, language, today)
    tests = data.get("tests")
    if not isinstance(tests, list) or not tests:
        r.err(src, ("tests",), "E502", "'tests' must be a non-empty list")
        tests = []
    for i, node in enumerate(tests):
        test = _test(src, node, ("tests", i), suite, r)
        if test is not None:
            suite.tests.append(test)
    if errors(r.diags):
        raise ConfigError(r.diags)
    return suite


def _bot(src: YamlFile, data: dict[str, Any], r: Reader) -> tuple[LoadedBot | None, str]:
    language: str
    if "pipeline" in data:
        from voicebot.config import load_pipeline

        try:
            config = load_pipeline(_relative(src, str(data["pipeline"])))
        except ConfigError as exc:
            r.diags += exc.diagnostics
            return None, ""
        if config.dialog.type != "flow":
            r.err(src, ("pipeline",), "E502", "the pipeline's dialog is not a flow")
            return None, ""
        flow, intents, language = config.dialog.flow, config.dialog.intents, config.language
        pipeline: str | None = str(config.path)
    else:
        missing = [k for k in ("flow", "intents", "language") if k not in data]
        if missing:
            r.err(
                src,
                (),
                "E503",
                "name the bot: 'pipeline', or 'flow', 'intents' "
                f"and 'language' (missing {', '.join(missing)})",
            )
            return None, ""
        flow = [_relative(src, str(p)) for p in _as_list(data["flow"])]
        intents = [_relative(src, str(p)) for p in _as_list(data["intents"])]
        language, pipeline = str(data["language"]), None
    loaded, bot_diags = check_dialog(tuple(flow), tuple(intents), language, pipeline)
    r.diags += errors(bot_diags)
    return loaded, language


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _test(src: YamlFile, node: Any, path: NodePath, suite: Suite, r: Reader) -> DialogTest | None:
    if not isinstance(node, dict) or not isinstance(node.get("steps"), list):
        r.err(src, path, "E502", "a test is {name: ..., steps: [...]}")
        return None
    r.unknown_keys(src, node, path, ("name", "steps"), "E501", suggest=False)
    test = DialogTest(str(node.get("name", f"test {path[-1]}")), [], path)
    states, intents = suite.loaded.bot.flow.states, suite.loaded.intents.intents
    for i, step in enumerate(node["steps"]):
        where = (*path, "steps", i)
        if not isinstance(step, dict):
            r.err(src, where, "E502", "a step is a mapping (user: ..., expectations)")
            continue
        r.unknown_keys(src, step, where, INPUTS + MODIFIERS + EXPECTS, "E501")
        inputs = [k for k in INPUTS if k in step]
        if len(inputs) > 1 or (not inputs and i > 0):
            r.err(
                src,
                where,
                "E503",
                "each step needs exactly one input: user, "
                "user_partial, dtmf or silent: true (only the first may have none: "
                "it checks the greeting)",
            )
            continue
        kind = inputs[0] if inputs else "start"
        text = "" if kind in ("start", "silent") else step[kind]
        if isinstance(text, bool):  # YAML 1.1: an unquoted yes / no is a boolean
            text = src.literal_at((*where, kind))
        text = str(text)
        if kind == "silent" and step["silent"] is not True:
            r.err(src, (*where, "silent"), "E502", "'silent' must be true")
        if kind == "dtmf" and (not text or any(k not in DTMF_KEYS for k in text.upper())):
            r.err(
                src,
                (*where, "dtmf"),
                "E502",
                f"'dtmf' must be keypad keys (0-9, *, #, A-D; quote them), got {text!r}",
            )
        if step.get("state") is not None and step["state"] not in states:
            r.err(
                src,
                (*where, "state"),
                "E404",
                f"unknown state {step['state']!r}{did_you_mean(step['state'], states)}",
            )
        if step.get("intent") is not None and step["intent"] not in intents:
            r.err(
                src,
                (*where, "intent"),
                "E405",
                f"unknown intent {step['intent']!r}{did_you_mean(step['intent'], intents)}",
            )
        expect = {k: step[k] for k in EXPECTS if k in step}
        heard = step.get("heard", 1.0)
        if isinstance(heard, bool) or not isinstance(heard, (int, float)) or not 0 <= heard <= 1:
            r.err(
                src,
                (*where, "heard"),
                "E502",
                "'heard' must be a number from 0 "
                "(the caller spoke before the bot's reply began) to 1",
            )
            heard = 1.0
        elif "heard" in step and kind != "user":
            r.err(src, (*where, "heard"), "E503", "'heard' goes with 'user'")
        test.steps.append(TestStep(kind, text, expect, where, float(heard)))
    return test


# --- running ------------------------------------------------------------------------


def _norm(text: str) -> str:
    return " ".join(str(text).split())


class _Run:
    def __init__(self, suite: Suite, n: int) -> None:
        self.events: list[Event] = []
        self.store = MemoryOutcomeStore()
        matcher = suite.loaded.matcher(suite.language, suite.today)
        self.conv = Conversation(
            suite.loaded.bot,
            matcher,
            self.store,
            call_id=f"test{n:04d}",
            emit=self.events.append,
            language=suite.language,
        )

    async def step(self, step: TestStep) -> Step:
        self.events.clear()
        if step.input == "start":
            return await self.conv.start()
        if step.input == "silent":
            return await self.conv.silence()
        if step.input == "dtmf":
            result = Step(state=self.conv.state_name)
            for key in step.text.upper():
                result = await self.conv.press(key)  # the step checks the last key's answer
            return result
        if step.input == "user_partial":
            match = self.conv.match_interim(step.text)
            if match is None:
                return Step(state=self.conv.state_name)
            return await self.conv.hear_interim(match)
        return await self.conv.hear(step.text, heard=step.heard)


def _check(run: _Run, step: Step, expect: dict[str, Any]) -> list[str]:
    """Mismatches as diff lines (empty: the step passed)."""
    got: dict[str, Any] = {}
    intents = [e for e in run.events if isinstance(e, IntentEvent)]
    match = intents[-1] if intents else None
    got["intent"] = match.name if match else None
    got["slots"] = match.slots if match else None
    got["matcher"] = match.matcher if match else None
    got["state"] = run.conv.state_name
    got["bot"] = _norm(step.text)
    transfers = [e.target for e in run.events if isinstance(e, TransferEvent)]
    got["transfer"] = transfers[-1] if transfers else None
    outcomes = [e for e in run.events if isinstance(e, OutcomeEvent)]
    got["ended"] = bool(run.conv.ended)
    out: list[str] = []
    for key, want in expect.items():
        if key == "bot_contains":
            wants = want if isinstance(want, list) else [want]
            missing = [w for w in wants if _norm(w).lower() not in got["bot"].lower()]
            if missing:
                out += _diff("bot_contains", missing, got["bot"])
        elif key == "outcome" and want is None:
            if outcomes:
                out += _diff("outcome", None, [o.kind for o in outcomes])
        elif key == "outcome":
            kind = want.get("kind") if isinstance(want, dict) else want
            have = [o for o in outcomes if o.kind == kind]
            slots = want.get("slots") if isinstance(want, dict) else None
            if not have or (slots is not None and have[-1].slots != slots):
                out += _diff(
                    "outcome",
                    want,
                    [{"kind": o.kind, "slots": o.slots} for o in outcomes] or None,
                )
        elif key == "collected":
            collected = {k: run.conv.slots.get(k) for k in (want or {})}
            if collected != (want or {}):
                out += _diff("collected", want, collected)
        elif key == "bot":
            if _norm(want) != got["bot"]:
                out += _diff("bot", _norm(want), got["bot"])
        elif got.get(key) != want:
            out += _diff(key, want, got.get(key))
    return out


def _show(value: Any) -> str:
    """repr with mapping keys sorted, so slot order never shows up as a difference."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k!r}: {_show(v)}" for k, v in sorted(value.items())) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return repr(value)


def _diff(key: str, want: Any, got: Any) -> list[str]:
    return [f"  {key}:", f"    - expected: {_show(want)}", f"    + got:      {_show(got)}"]


def _heard(event: IntentEvent | NoMatchEvent) -> str:
    if isinstance(event, NoMatchEvent):
        return f"no match for {event.text!r}"
    return f"{event.name} {_show(event.slots)} ({event.matcher})"


def _describe(step: TestStep) -> str:
    if step.input == "start":
        return "the greeting"
    if step.input == "silent":
        return "silent"
    return f"{step.input}: {step.text!r}"


async def run_suite(suite: Suite) -> tuple[int, list[Failure]]:
    """Run every test; returns (passed, failures)."""
    passed, failures = 0, []
    for n, test in enumerate(suite.tests):
        run = _Run(suite, n)
        steps = test.steps
        if not steps or steps[0].input != "start":
            await run.conv.start()
        for i, step in enumerate(steps):
            result = await run.step(step)
            problems = _check(run, result, step.expect)
            if problems:
                line, col = suite.src.at(step.path)
                heard = [e for e in run.events if isinstance(e, (IntentEvent, NoMatchEvent))]
                trail = [
                    f"  bot said: {result.text!r}",
                    f"  heard: {_heard(heard[-1]) if heard else 'nothing'}; now in state "
                    f"{run.conv.state_name!r}, collected {_show(run.conv.slots)}",
                ]
                later = len(steps) - i - 1
                if later:
                    trail.append(f"  ({later} later step{'s' * (later > 1)} not run)")
                failures.append(
                    Failure(
                        test.name,
                        i + 1,
                        f"{suite.src.file}:{line}:{col}",
                        _describe(step),
                        problems + trail,
                    )
                )
                break
        else:
            passed += 1
    return passed, failures


def run_files(paths: list[str], verbose: bool = False) -> int:
    """The CLI: 0 all passed, 1 some failed, 2 a file could not be loaded."""
    status = 0
    for path in paths:
        try:
            suite = load_suite(path)
        except ConfigError as exc:
            for diag in sorted(exc.diagnostics, key=lambda d: (d.file, d.line, d.col)):
                print(diag)
            status = 2
            continue
        passed, failures = asyncio.run(run_suite(suite))
        for f in failures:
            print(f"{f.where}: FAIL {f.test!r}, step {f.step} ({f.said})")
            print("\n".join(f.lines))
        if verbose:
            failed = {f.test for f in failures}
            for test in suite.tests:
                if test.name not in failed:
                    print(f"ok   {test.name}")
        print(f"{path}: {passed} passed, {len(failures)} failed")
        if failures and status == 0:
            status = 1
    return status
