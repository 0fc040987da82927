"""A bot = flow + intents + matcher: cross-file checks and the per-process cache.

``bind`` checks what only both files together can tell: the flow's intents and
slots exist in the intent files (with a "did you mean"), prompts only use
declared slots and hook values, ``confirm`` has ``affirm``/``deny`` intents,
and the intents cover the flow's languages. ``load_bot`` does all of it for a
pipeline (plus: the pipeline's language is one the flow speaks).

Codes: E405 unknown intent, E406 undeclared slot or value, E410 confirm without
affirm/deny intents, E412 a digit of a ``dtmf`` menu in a state that takes its
slot keyed in, E413 collect of an undeclared slot, E415 language not covered;
W405 a ``dtmf`` key's intent that its state does not handle.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from voicebot.diagnostics import ConfigError, Diagnostic
from voicebot.dialog.flow import Bot
from voicebot.dialog.flow_file import ParsedFlow, read_flow
from voicebot.dialog.keypad import DIGITS, entry_length
from voicebot.dialog.prompt import Speaker
from voicebot.nlu.match import CONFIRM_INTENTS
from voicebot.nlu.slot_day import speak_date
from voicebot.yamlsrc import did_you_mean, load

if TYPE_CHECKING:
    from voicebot.config import PipelineConfig
    from voicebot.nlu.match import Matcher
    from voicebot.nlu.slots import SlotType
    from voicebot.nlu.template_matcher import IntentSet

TEXT_TYPE = "text"  # a hook value said as it is


def _slot_types(intents: IntentSet) -> dict[str, SlotType]:
    """Slot name -> type, over every intent (the first definition wins)."""
    types: dict[str, SlotType] = {}
    for intent in intents.intents.values():
        for slot, kind in intent.slots.items():
            types.setdefault(slot, kind)
    return types


def _type_named(name: str, intents: IntentSet, slots: dict[str, SlotType]) -> SlotType | None:
    from voicebot.nlu.slots import SLOT_KINDS

    if name in slots:
        return slots[name]
    if name in intents.slot_types:
        return intents.slot_types[name]
    cls = SLOT_KINDS.get(name)
    return cls() if cls is not None else None


def bind(src: ParsedFlow, intents: IntentSet) -> tuple[Bot, list[Diagnostic]]:
    """The flow checked against ``intents``; the ``Bot`` is usable only without errors."""
    diags: list[Diagnostic] = []
    names = intents.intents
    slots = _slot_types(intents)
    dates = {f"{slot}_date" for slot, kind in slots.items() if kind.kind == "day"}
    values = set(slots) | set(src.hook_values) | dates
    confirm_reported: set[tuple[str, int, int]] = set()
    for ref in src.refs:
        where = (ref.src.file, *ref.src.at(ref.path, key=ref.key))
        if ref.kind == "intent" and ref.name not in names:
            diags.append(
                ref.src.diag(
                    ref.path,
                    "E405",
                    f"unknown intent {ref.name!r}{did_you_mean(ref.name, names)}",
                    key=ref.key,
                )
            )
        elif ref.kind == "confirm" and ref.name not in names and where not in confirm_reported:
            confirm_reported.add(where)
            missing = [n for n in CONFIRM_INTENTS if n not in names]
            diags.append(
                ref.src.diag(
                    ref.path,
                    "E410",
                    "'confirm' needs the intents "
                    f"{' and '.join(map(repr, missing))} in the intent files",
                )
            )
        elif ref.kind == "slot" and ref.name not in slots:
            diags.append(
                ref.src.diag(
                    ref.path,
                    "E413",
                    f"no intent has a slot {ref.name!r}{did_you_mean(ref.name, slots)}",
                )
            )
        elif ref.kind == "value" and ref.name not in values:
            diags.append(
                ref.diag(
                    "E406",
                    f"undeclared slot {ref.name!r}"
                    f"{did_you_mean(ref.name, values)} (slots come from the "
                    "intent files, values from a hook's 'returns')",
                )
            )
        elif (
            ref.kind == "type"
            and ref.name != TEXT_TYPE
            and _type_named(ref.name, intents, slots) is None
        ):
            diags.append(
                ref.src.diag(
                    ref.path,
                    "E406",
                    f"unknown slot type {ref.name!r} (a slot name, a slot type, or 'text')",
                )
            )
    flow = src.flow
    missing = [lang for lang in flow.languages if lang not in intents.languages]
    if missing and src.languages_at:
        lsrc, path = src.languages_at
        diags.append(
            lsrc.diag(
                path,
                "E415",
                f"the intent files have no {', '.join(missing)} "
                f"(they cover {', '.join(intents.languages) or 'nothing'})",
            )
        )
    speakers: dict[str, Speaker] = {slot: kind.speak for slot, kind in slots.items()}
    speakers.update(dict.fromkeys(dates, speak_date))
    for name, kind in src.hook_values.items():
        if name in slots:
            continue
        slot_type = _type_named(kind, intents, slots) if kind and kind != TEXT_TYPE else None
        if slot_type is not None:
            speakers[name] = slot_type.speak
    collectors = {
        slot: frozenset(i.name for i in names.values() if slot in i.slots) for slot in slots
    }
    keyed = {slot: kind for slot, kind in slots.items() if entry_length(kind) is not None}
    hints: dict[str, Callable[[str], str]] = {slot: kind.hint for slot, kind in slots.items()}
    bot = Bot(flow, collectors, speakers, frozenset(names), keyed, hints)
    return bot, diags + _menu_diags(bot, src)


def _menu_diags(bot: Bot, src: ParsedFlow) -> list[Diagnostic]:
    """A ``dtmf`` key's intent the state does not handle (W405); a digit key where the
    state's slot is keyed in (E412: the entry could never start with it)."""
    diags: list[Diagnostic] = []
    for ref in src.refs:
        if ref.kind != "menu" or ref.name not in bot.intent_names:
            continue
        state = bot.flow.states.get(str(ref.path[1]))
        if state is None:
            continue
        key = str(ref.path[-1]).upper()
        slot = bot.keyed_slot(state)
        if slot is not None and key in DIGITS:
            diags.append(
                ref.src.diag(
                    ref.path,
                    "E412",
                    f"key {key!r} cannot be a menu key here: {state.name!r} takes "
                    f"{slot!r} keyed in (use *, # or A-D, or a state without it)",
                    key=True,
                )
            )
        elif ref.name not in bot.accepts(state):
            diags.append(
                ref.src.diag(
                    ref.path,
                    "W405",
                    f"key {key!r}: state {state.name!r} does not handle intent {ref.name!r} "
                    "(add it to 'on' or 'global')",
                    severity="warning",
                )
            )
    return diags


@dataclass
class LoadedBot:
    """Everything a call of a flow pipeline shares: built once per process."""

    bot: Bot
    intents: IntentSet
    diagnostics: list[Diagnostic]  # warnings only (errors raise)
    _matchers: dict[tuple[str, Any], Matcher] = field(default_factory=dict, repr=False)

    def matcher(self, language: str, today: Any = None) -> Matcher:
        """The bot's matcher for ``language`` (built once; matchers are stateless): the
        templates, then the statistical tier trained from them (cached on disk)."""
        from voicebot.nlu.matcher import IntentMatcher

        key = (language, today)
        if key not in self._matchers:
            matcher = IntentMatcher(self.intents, language, today=today)
            # each state's candidate tables, built now rather than in a call's first turn
            matcher.warm(
                self.bot.actions(state) for state in self.bot.flow.states.values() if state.waits
            )
            self._matchers[key] = matcher
        return self._matchers[key]


def check_files(
    flow_paths: Sequence[str | Path],
    intent_paths: Sequence[str | Path],
) -> tuple[Bot | None, IntentSet | None, list[Diagnostic]]:
    """Load and cross-check flow and intent files; every diagnostic, errors and warnings."""
    from voicebot.nlu.template_matcher import load_intents

    intents, diags = load_intents([str(p) for p in intent_paths])
    flow_src, flow_diags = read_flow(list(flow_paths))
    diags = [*diags, *flow_diags]
    bot, bind_diags = bind(flow_src, intents)
    diags += bind_diags
    return bot, intents, _unique(diags)


def check_pipeline_dialog(config: PipelineConfig) -> tuple[LoadedBot | None, list[Diagnostic]]:
    """The dialog of a flow pipeline: files, cross-checks, and the pipeline's language."""
    d = config.dialog
    if d.type != "flow":
        return None, []
    return check_dialog(
        tuple(d.flow), tuple(d.intents), config.language, str(config.path) if config.path else None
    )


def check_dialog(
    flow: Sequence[str], intent_files: Sequence[str], language: str, pipeline: str | None = None
) -> tuple[LoadedBot | None, list[Diagnostic]]:
    """Like ``check_files``, plus: the flow and the intents speak ``language``."""
    bot, intents, diags = check_files(flow, intent_files)
    if bot is not None and pipeline is not None:
        psrc, _ = load(pipeline)
        at = ("language",) if ("language",) in psrc.positions else ("dialog", "flow")
        if bot.flow.languages and language not in bot.flow.languages:
            diags.append(
                psrc.diag(
                    at,
                    "E415",
                    f"the flow has no {language!r} prompts "
                    f"(it speaks {', '.join(bot.flow.languages)})",
                )
            )
        if intents is not None and language not in intents.languages:
            diags.append(psrc.diag(at, "E415", f"the intent files have no {language!r} templates"))
    if bot is None or intents is None or errors(diags):
        return None, diags
    return LoadedBot(bot, intents, [d for d in diags if d.severity != "error"]), diags


def errors(diags: Iterable[Diagnostic]) -> list[Diagnostic]:
    return [d for d in diags if d.severity == "error"]


def _unique(diags: list[Diagnostic]) -> list[Diagnostic]:
    seen: set[Diagnostic] = set()
    out = []
    for d in sorted(diags, key=lambda d: (d.file, d.line, d.col, d.code)):
        if d not in seen:
            seen.add(d)
            out.append(d)
    return out


@functools.cache
def _cached(
    flow: tuple[str, ...], intents: tuple[str, ...], language: str, pipeline: str | None
) -> LoadedBot:
    loaded, diags = check_dialog(flow, intents, language, pipeline)
    if loaded is None:
        raise ConfigError(errors(diags))
    return loaded


def load_bot(config: PipelineConfig) -> LoadedBot:
    """The process-wide bot of a flow pipeline; raises ``ConfigError`` on any error."""
    d = config.dialog
    return _cached(
        tuple(d.flow), tuple(d.intents), config.language, str(config.path) if config.path else None
    )
