"""Flow YAML: loading, and every check a bot author needs, as ``file:line:col`` diagnostics.

``read_flow(paths)`` parses one or more flow files into a ``Flow`` (states may
be spread over several files; names must be unique across them) and checks
what needs no intents: keys and types, state references, template syntax,
language variants, unreachable states and dead ends (warnings).
``bind(...)`` (in ``bot.py``) then checks the flow against the intent files.

Diagnostic codes: E4xx and W4xx (the cross-file ones, E405, E406, E413 and
E415, come from ``bot.py``), listed with their meanings in
``voicebot.diagnostics``. A ``global`` entry is a state name or ``{goto:
state, return: true}`` (a digression: the bot answers, then returns to the
pending question). A state's ``dtmf`` maps keypad keys to intents (a menu:
``{"1": book_table, "0": human_agent}``; E418 for a key that is not one of
``0-9 * # A-D``). A ``transfer`` target is a name, or a ``sip:``/``sips:``/``tel:``
URI that a phone call is REFERred to (E419 when such a URI is malformed).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from voicebot.diagnostics import Diagnostic
from voicebot.dialog.flow import REPEAT, BranchRule, Flow, HookSpec, RepromptPolicy, State
from voicebot.dialog.flow_graph import StateRef, check_graph, check_shape
from voicebot.dialog.hooks import resolve
from voicebot.dialog.prompt import Prompt, PromptTemplateError, parse_template
from voicebot.dialog.transfer import is_uri, valid_uri
from voicebot.frames import DTMF_KEYS
from voicebot.nlu.match import CONFIRM_INTENTS
from voicebot.yamlsrc import NodePath, Reader, YamlFile, load

TOP_KEYS = ("flow", "languages", "start", "defaults", "global", "data", "hook_modules", "states")
STATE_KEYS = (
    "say",
    "ask",
    "reprompt",
    "hint",
    "on",
    "dtmf",
    "collect",
    "within",
    "confirm",
    "call",
    "branch",
    "next",
    "transfer",
    "transfer_failed",
    "end",
    "outcome",
    "clear",
    "silence",
    "no_match",
    "barge_in",
    "on_error",
)
DEFAULT_KEYS = ("silence", "no_match", "barge_in", "on_error")
POLICY_KEYS = {
    "silence": ("timeout_ms", "reprompts", "exit", "say"),
    "no_match": ("reprompts", "exit", "say"),
}
CALL_KEYS = ("function", "args", "returns", "timeout_ms")
GLOBAL_KEYS = ("goto", "return")

__all__ = ["FlowReader", "ParsedFlow", "Ref", "read_flow"]


@dataclass(slots=True)
class Ref:
    """A name in a flow file that ``bind`` checks against the intents: where it was written."""

    kind: str  # "intent" | "slot" | "value" | "type"
    name: str
    src: YamlFile
    path: NodePath
    key: bool = False
    at: tuple[int, int] | None = None  # exact line, column (a placeholder inside a prompt)

    def diag(self, code: str, message: str) -> Diagnostic:
        if self.at is not None:
            return Diagnostic(self.src.file, *self.at, code, message)
        return self.src.diag(self.path, code, message, key=self.key)


@dataclass
class ParsedFlow:
    """A parsed flow plus what ``bind`` needs to report cross-file problems."""

    flow: Flow
    refs: list[Ref] = field(default_factory=list)
    hook_values: dict[str, str | None] = field(default_factory=dict)  # name -> type
    files: list[YamlFile] = field(default_factory=list)
    languages_at: tuple[YamlFile, NodePath] | None = None


class FlowReader(Reader):
    """Reads flow files into one ``Flow``; all problems end up in ``diags``."""

    def __init__(self) -> None:
        super().__init__()
        self.out = ParsedFlow(Flow("", (), "", {}))
        self.state_at: dict[str, tuple[YamlFile, NodePath]] = {}
        self.first: dict[str, tuple[YamlFile, NodePath]] = {}  # single-definition top-level keys
        self.defaults: tuple[YamlFile, dict[str, Any]] | None = None
        self.base = {
            "silence": RepromptPolicy(),
            "no_match": RepromptPolicy(),
        }  # defaults, parsed once
        self.barge_in = True
        self.on_error: str | None = None
        self.start_at: tuple[YamlFile, NodePath] | None = None
        self.refs: list[StateRef] = []  # state references, checked once all files are read

    def read(self, paths: list[str | Path]) -> ParsedFlow:
        docs: list[tuple[YamlFile, dict[str, Any]]] = []
        for path in paths:
            src, diags = load(path)
            self.diags.extend(diags)
            if src.data is None and diags:
                continue
            src.unbool_keys()
            self.out.files.append(src)
            top = self.keys(src, src.data, (), TOP_KEYS, "a flow file")
            docs.append((src, top))
            self._top(src, top)
        if not docs:
            return self.out
        flow = self.out.flow
        if not flow.languages:
            src = docs[0][0]
            self.err(src, (), "E403", "missing 'languages' (e.g. [en, de]) in the flow files")
        if not flow.start:
            self.err(docs[0][0], (), "E403", "missing 'start' (the first state) in the flow files")
        self._defaults()
        for src, top in docs:
            states = top.get("states")
            if states is None:
                continue
            if not isinstance(states, dict):
                self.err(src, ("states",), "E402", "'states' must be a mapping of names")
                continue
            for name, node in states.items():
                self._state(src, str(name), node, ("states", name))
        if self.out.flow.start and self.start_at:
            self._state_ref(self.start_at[0], self.out.flow.start, self.start_at[1])
        check_graph(self.out.flow, self.refs, self.state_at, self)
        return self.out

    # --- the shared checks, with the flow codes ------------------------------------
    def keys(
        self, src: YamlFile, node: Any, path: NodePath, allowed: tuple[str, ...], what: str
    ) -> dict[str, Any]:
        """The known keys of mapping ``node`` (E402 if it is none, E401 for each unknown key)."""
        if not isinstance(node, dict):
            self.err(src, path, "E402", f"{what} must be a mapping")
            return {}
        return self.unknown_keys(src, node, path, allowed, "E401", where=what)

    def string(self, src: YamlFile, value: Any, path: NodePath, what: str) -> str | None:
        if isinstance(value, str) and value:
            return value
        self.err(src, path, "E402", f"{what} must be a non-empty string, got {value!r}")
        return None

    def names(self, src: YamlFile, value: Any, path: NodePath, what: str) -> list[str]:
        """A string or a list of strings."""
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(i, str) and i for i in items):
            self.err(src, path, "E402", f"{what} must be a name or a list of names")
            return []
        return items

    # --- top level ---------------------------------------------------------------
    def _once(self, src: YamlFile, key: str) -> bool:
        if key in self.first:
            first_src, first_path = self.first[key]
            line = first_src.at(first_path, key=True)[0]
            self.err(
                src,
                (key,),
                "E416",
                f"{key!r} is already defined in {first_src.file}:{line}",
                key=True,
            )
            return False
        self.first[key] = (src, (key,))
        return True

    def _top(self, src: YamlFile, top: dict[str, Any]) -> None:
        flow = self.out.flow
        if "flow" in top and self._once(src, "flow"):
            flow.name = self.string(src, top["flow"], ("flow",), "'flow' (the flow's name)") or ""
        if "languages" in top and self._once(src, "languages"):
            langs = self.names(src, top["languages"], ("languages",), "'languages'")
            flow.languages = tuple(langs)
            self.out.languages_at = (src, ("languages",))
        if "start" in top and self._once(src, "start"):
            flow.start = self.string(src, top["start"], ("start",), "'start'") or ""
            self.start_at = (src, ("start",))
        if "defaults" in top and self._once(src, "defaults"):
            node = self.keys(src, top["defaults"], ("defaults",), DEFAULT_KEYS, "'defaults'")
            self.defaults = (src, node)
        for module in (
            self.names(src, top["hook_modules"], ("hook_modules",), "'hook_modules'")
            if "hook_modules" in top
            else []
        ):
            try:
                importlib.import_module(module)
            except ImportError as exc:
                self.err(
                    src, ("hook_modules",), "E411", f"cannot import hook module {module!r}: {exc}"
                )
        for section, target in (("global", flow.handlers), ("data", flow.data)):
            entries = top.get(section)
            if entries is None:
                continue
            if not isinstance(entries, dict):
                self.err(src, (section,), "E402", f"{section!r} must be a mapping")
                continue
            for key, value in entries.items():
                if key in target:
                    self.err(
                        src,
                        (section, key),
                        "E416",
                        f"{section} {key!r} is defined twice across flow files",
                        key=True,
                    )
                    continue
                if section == "global":
                    value = self._global(src, str(key), value)
                    if value is None:
                        continue
                target[str(key)] = value

    def _global(self, src: YamlFile, intent: str, node: Any) -> str | None:
        """A global handler: a state name, or ``{goto: state, return: true}`` (a digression:
        answered mid-collection, then the bot returns to its pending question)."""
        path = ("global", intent)
        self.out.refs.append(Ref("intent", intent, src, path, key=True))
        if isinstance(node, dict):
            data = self.keys(src, node, path, GLOBAL_KEYS, f"global handler {intent!r}")
            if "goto" not in data:
                self.err(
                    src,
                    path,
                    "E403",
                    f"global handler {intent!r} needs 'goto' (the state that answers it)",
                    key=True,
                )
                return None
            target = self.string(src, data["goto"], (*path, "goto"), "'goto'")
            self._state_ref(src, target, (*path, "goto"), repeat=True)
            if "return" in data:
                if self._bool(src, data["return"], (*path, "return")):
                    if target == REPEAT:
                        self.err(
                            src,
                            (*path, "return"),
                            "E412",
                            f"{REPEAT!r} always returns to "
                            "the question: 'return' is for a state that answers a digression",
                        )
                    self.out.flow.digressions.add(intent)
            return target
        value = self.string(src, node, path, f"global handler for {intent!r}")
        self._state_ref(src, value, path, repeat=True)
        return value

    # --- states ------------------------------------------------------------------
    def _state(self, src: YamlFile, name: str, node: Any, path: NodePath) -> None:
        if name in self.state_at:
            first_src, first_path = self.state_at[name]
            line = first_src.at(first_path, key=True)[0]
            self.err(
                src,
                path,
                "E407",
                f"state {name!r} is already defined at {first_src.file}:{line}",
                key=True,
            )
            return
        self.state_at[name] = (src, path)
        data = self.keys(src, node, path, STATE_KEYS, f"state {name!r}")
        line = src.at(path, key=True)[0]
        st = State(name, file=src.file, line=line)
        st.say = self._prompt(src, data.get("say"), (*path, "say"))
        st.ask = self._prompt(src, data.get("ask"), (*path, "ask"))
        st.reprompt = self._prompt(src, data.get("reprompt"), (*path, "reprompt"))
        st.hint = self._prompt(src, data.get("hint"), (*path, "hint"))
        st.transfer_failed = self._prompt(
            src, data.get("transfer_failed"), (*path, "transfer_failed")
        )
        for key in ("next", "transfer", "outcome", "collect", "on_error"):
            if key in data:
                setattr(st, key, self.string(src, data[key], (*path, key), f"{key!r}"))
        for key in ("next", "on_error"):
            self._state_ref(src, getattr(st, key), (*path, key))
        if st.transfer and is_uri(st.transfer) and not valid_uri(st.transfer):
            self.err(
                src,
                (*path, "transfer"),
                "E419",
                f"transfer target {st.transfer!r} is not a URI a call can be sent to "
                "(sip:user@host[:port], sips:…, tel:+number)",
            )
        if st.transfer_failed is not None and not st.transfer:
            self.err(
                src,
                (*path, "transfer_failed"),
                "E420",
                "'transfer_failed' is what the bot says when this state's transfer fails: "
                "it needs a 'transfer' target",
                key=True,
            )
        if st.collect:
            self.out.refs.append(Ref("slot", st.collect, src, (*path, "collect")))
        if "within" in data:
            st.within = self._within(src, data["within"], (*path, "within"), "collect" in data)
        if "end" in data and data["end"] is not True:
            self.err(src, (*path, "end"), "E402", "'end' must be true (omit it otherwise)")
        st.end = data.get("end") is True
        if "barge_in" in data:
            st.barge_in = self._bool(src, data["barge_in"], (*path, "barge_in"))
        if "clear" in data:
            st.clear = tuple(self.names(src, data["clear"], (*path, "clear"), "'clear'"))
            for i, slot in enumerate(st.clear):
                self.out.refs.append(Ref("value", slot, src, (*path, "clear", i)))
        self._on(src, st, data, path)
        self._dtmf(src, st, data, path)
        self._confirm(src, st, data, path)
        self._branch(src, st, data, path)
        if "call" in data:
            st.call = self._call(src, data["call"], (*path, "call"))
        for kind in ("silence", "no_match"):
            policy = replace(self.base[kind])
            if kind in data:
                self._policy(src, kind, data[kind], (*path, kind), policy)
            setattr(st, kind, policy)
        if "barge_in" not in data:
            st.barge_in = self.barge_in
        if st.on_error is None:
            st.on_error = self.on_error
        check_shape(src, st.name, data, path, self)
        self.out.flow.states[name] = st

    def _within(
        self, src: YamlFile, node: Any, where: NodePath, collects: bool
    ) -> tuple[str, str] | None:
        """``within: [open, close]``: of a time's readings ("8" is 08:00 or 20:00), take the
        one between these two values (hook values or slots, ``HH:MM``)."""
        if not collects:
            self.err(
                src,
                where,
                "E403",
                "'within' needs 'collect' (the time it picks a reading of)",
                key=True,
            )
            return None
        if (
            not isinstance(node, list)
            or len(node) != 2
            or not all(isinstance(n, str) for n in node)
        ):
            self.err(
                src, where, "E402", "'within' must be a list of two value names, e.g. [open, close]"
            )
            return None
        for i, name in enumerate(node):
            self.out.refs.append(Ref("value", name, src, (*where, i)))
        return node[0], node[1]

    def _on(self, src: YamlFile, st: State, data: dict[str, Any], path: NodePath) -> None:
        node = data.get("on")
        if node is None:
            return
        if not isinstance(node, dict):
            self.err(src, (*path, "on"), "E402", "'on' must map intents to states")
            return
        for intent, target in node.items():
            where = (*path, "on", intent)
            self.out.refs.append(Ref("intent", str(intent), src, where, key=True))
            target = self.string(src, target, where, f"the target of {intent!r}")
            self._state_ref(src, target, where, repeat=True)
            if target:
                st.on[str(intent)] = target

    def _dtmf(self, src: YamlFile, st: State, data: dict[str, Any], path: NodePath) -> None:
        """``dtmf: {"1": book_table, "0": human_agent}``: keys that stand for intents."""
        node = data.get("dtmf")
        if node is None:
            return
        if not isinstance(node, dict):
            self.err(src, (*path, "dtmf"), "E402", "'dtmf' must map keys to intents")
            return
        for key, intent in node.items():
            where = (*path, "dtmf", key)
            name = str(key)
            if isinstance(key, bool) or len(name) != 1 or name.upper() not in DTMF_KEYS:
                self.err(
                    src,
                    where,
                    "E418",
                    f"{name!r} is not a keypad key (one of 0-9, *, #, A-D; quote * and #)",
                    key=True,
                )
                continue
            intent = self.string(src, intent, where, f"the intent of key {name!r}")
            if intent:
                self.out.refs.append(Ref("intent", intent, src, where))
                self.out.refs.append(Ref("menu", intent, src, where))
                st.dtmf[name.upper()] = intent

    def _confirm(self, src: YamlFile, st: State, data: dict[str, Any], path: NodePath) -> None:
        if "confirm" not in data:
            return
        where = (*path, "confirm")
        node = self.keys(src, data["confirm"], where, CONFIRM_INTENTS, "'confirm'")
        missing = [k for k in CONFIRM_INTENTS if k not in node]
        if missing and isinstance(data["confirm"], dict):
            self.err(
                src,
                where,
                "E410",
                f"'confirm' needs both 'affirm' and 'deny' targets (missing {', '.join(missing)})",
            )
        st.confirm = {}
        for key, target in node.items():
            target = self.string(src, target, (*where, key), f"the {key!r} target")
            self._state_ref(src, target, (*where, key))
            if target:
                st.confirm[key] = target
        for key in CONFIRM_INTENTS:
            self.out.refs.append(Ref("confirm", key, src, where))

    def _branch(self, src: YamlFile, st: State, data: dict[str, Any], path: NodePath) -> None:
        if "branch" not in data:
            return
        where = (*path, "branch")
        rules = data["branch"]
        if not isinstance(rules, list) or not rules:
            self.err(src, where, "E402", "'branch' must be a list of {if: ..., goto: state}")
            return
        for i, rule in enumerate(rules):
            node = self.keys(src, rule, (*where, i), ("if", "goto"), "a branch rule")
            goto = self.string(src, node.get("goto"), (*where, i, "goto"), "'goto'")
            self._state_ref(src, goto, (*where, i, "goto"))
            when = node.get("if", {})
            if not isinstance(when, dict):
                self.err(
                    src,
                    (*where, i, "if"),
                    "E402",
                    "'if' must map values to expected "
                    "values (a list means any of, null means unset)",
                )
                when = {}
            for name in when:
                self.out.refs.append(Ref("value", str(name), src, (*where, i, "if", name), True))
            if when and i == len(rules) - 1:
                self.err(
                    src,
                    (*where, i),
                    "E414",
                    "the last branch rule needs no 'if': it is "
                    "the default when nothing else applies",
                )
            elif not when and i < len(rules) - 1:
                self.err(
                    src,
                    (*where, i),
                    "E414",
                    "a rule without 'if' always applies: the rules after it are never used",
                )
            if goto:
                st.branch.append(BranchRule(goto, {str(k): v for k, v in when.items()}))

    def _call(self, src: YamlFile, node: Any, where: NodePath) -> HookSpec | None:
        data = self.keys(src, node, where, CALL_KEYS, "'call'")
        if not data:
            return None
        function = self.string(src, data.get("function"), (*where, "function"), "'function'")
        if function is None:
            return None
        try:
            fn = resolve(function)
        except LookupError as exc:
            self.err(src, (*where, "function"), "E411", str(exc))
            return None
        spec = HookSpec(function, fn)
        args = data.get("args", {})
        if not isinstance(args, dict):
            self.err(src, (*where, "args"), "E402", "'args' must be a mapping")
        else:
            spec.args = dict(args)
        returns = data.get("returns", {})
        if isinstance(returns, list) and all(isinstance(n, str) for n in returns):
            returns = dict.fromkeys(returns)
        if not isinstance(returns, dict):
            self.err(
                src,
                (*where, "returns"),
                "E402",
                "'returns' must map value names to slot types (or list names)",
            )
            returns = {}
        for name, kind in returns.items():
            spec.returns[str(name)] = kind if isinstance(kind, str) else None
            self.out.hook_values.setdefault(str(name), spec.returns[str(name)])
            if kind is not None:
                self.out.refs.append(Ref("type", str(kind), src, (*where, "returns", name)))
        if "timeout_ms" in data:
            ms = data["timeout_ms"]
            if isinstance(ms, int) and not isinstance(ms, bool) and 0 < ms <= 60000:
                spec.timeout = ms / 1000
            else:
                self.err(
                    src,
                    (*where, "timeout_ms"),
                    "E402",
                    f"'timeout_ms' must be an integer in [1, 60000], got {ms!r}",
                )
        return spec

    def _defaults(self) -> None:
        if self.defaults is None:
            return
        src, node = self.defaults
        for kind in ("silence", "no_match"):
            if kind in node:
                self._policy(src, kind, node[kind], ("defaults", kind), self.base[kind])
        if "barge_in" in node:
            self.barge_in = self._bool(src, node["barge_in"], ("defaults", "barge_in"))
        if "on_error" in node:
            self.on_error = self.string(
                src, node["on_error"], ("defaults", "on_error"), "'on_error'"
            )
            self._state_ref(src, self.on_error, ("defaults", "on_error"))

    def _policy(
        self, src: YamlFile, kind: str, node: Any, where: NodePath, policy: RepromptPolicy
    ) -> None:
        """Apply one ``silence`` / ``no_match`` mapping on top of ``policy``."""
        data = self.keys(src, node, where, POLICY_KEYS[kind], repr(kind))
        for key in ("reprompts", "timeout_ms"):
            if key not in data:
                continue
            value = data[key]
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                self.err(
                    src,
                    (*where, key),
                    "E402",
                    f"{key!r} must be a non-negative integer, got {value!r}",
                )
            elif key == "reprompts":
                policy.reprompts = value
            else:
                policy.timeout = value / 1000
        if "exit" in data:
            policy.exit = self.string(src, data["exit"], (*where, "exit"), "'exit'")
            self._state_ref(src, policy.exit, (*where, "exit"))
        if "say" in data:
            policy.say = self._prompt(src, data["say"], (*where, "say"))

    def _bool(self, src: YamlFile, value: Any, path: NodePath) -> bool:
        if isinstance(value, bool):
            return value
        self.err(src, path, "E402", f"expected true or false, got {value!r}")
        return True

    # --- prompts and references ----------------------------------------------------
    def _prompt(self, src: YamlFile, node: Any, path: NodePath) -> Prompt | None:
        if node is None:
            return None
        langs = self.out.flow.languages
        if isinstance(node, str):
            if len(langs) > 1:
                self.err(
                    src,
                    path,
                    "E408",
                    f"needs a variant per language ({', '.join(langs)}), e.g. {{{langs[0]}: ...}}",
                )
                return None
            node = {langs[0] if langs else "": node}
            where = {lang: path for lang in node}
        elif isinstance(node, dict):
            where = {str(lang): (*path, lang) for lang in node}
            missing = [lang for lang in langs if lang not in node]
            if missing:
                self.err(src, path, "E408", f"missing language variant {', '.join(missing)}")
            for lang in node:
                if langs and lang not in langs:
                    self.warn(
                        src,
                        (*path, lang),
                        "W403",
                        f"variant {lang!r} is not one of the flow's languages ({', '.join(langs)})",
                        key=True,
                    )
        else:
            self.err(src, path, "E402", "a prompt is a mapping of language -> text")
            return None
        texts: dict[str, str] = {}
        for lang, text in node.items():
            if not isinstance(text, str):
                self.err(
                    src, where[str(lang)], "E402", f"prompt text must be a string, got {text!r}"
                )
                continue
            try:
                parts = parse_template(text)
            except PromptTemplateError as exc:
                line, col = src.template_col(where[str(lang)], exc.offset)
                self.diags.append(
                    Diagnostic(src.file, line, col, "E409", f"template syntax: {exc}")
                )
                continue
            texts[str(lang)] = text
            for part in parts:
                if not isinstance(part, str):
                    at = src.template_col(where[str(lang)], part.offset)
                    self.out.refs.append(Ref("value", part.name, src, where[str(lang)], at=at))
        return Prompt.of(texts) if texts else None

    def _state_ref(
        self, src: YamlFile, name: str | None, path: NodePath, repeat: bool = False
    ) -> None:
        if name:
            self.refs.append((name, src, path, repeat))

    # --- whole-graph checks ------------------------------------------------------


def read_flow(paths: list[str | Path]) -> tuple[ParsedFlow, list[Diagnostic]]:
    """Parse flow files; diagnostics hold errors and warnings (``severity``)."""
    reader = FlowReader()
    out = reader.read(paths)
    return out, reader.diags
