"""Flows: the states a bot walks through, and the engine that walks them for one call.

A ``Flow`` (loaded by ``flow_file.py``) is a set of named states. Entering a
state runs, in order: its hook (``call``), its outcome commit (``outcome``),
its prompt (``say`` then ``ask``), ``clear``; then it either waits for the
caller (``ask``: with ``on`` / ``collect`` / ``confirm``), moves on (``next``,
``branch``) or finishes the call (``end``, ``transfer``). A ``collect`` state
whose slot is already filled is skipped, so slots given early carry over.

``Conversation`` is that engine at the text level: the dialog stage feeds it
final transcripts, interim ones and silence timeouts; ``voicebot test-dialog``
feeds it a test file's lines. Everything it decides is reported through an
``emit(type, **fields)`` callback as ``intent`` / ``no_match`` / ``state`` /
``silence_timeout`` / ``transfer`` / ``outcome`` / ``flow_error`` events.
"""

from __future__ import annotations

import logging
from collections import ChainMap
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from voicebot.dialog.hooks import HookCall, HookFn, run_hook
from voicebot.dialog.outcomes import Outcome, OutcomeStore
from voicebot.dialog.prompt import Prompt, Speaker
from voicebot.nlu.match import Match, Matcher

log = logging.getLogger(__name__)

REPEAT = "@repeat"  # the built-in target: say the last prompt again
CONFIRM_INTENTS = ("affirm", "deny")
MAX_HOPS = 64  # state entries per input; more means a loop of states that never wait

Emit = Callable[..., None]


@dataclass(slots=True)
class Policy:
    """What happens on silence or on an utterance that matches nothing.

    After ``reprompts`` re-prompts (``say`` + the state's ``reprompt``), the
    next one goes to ``exit``; without an exit the bot keeps waiting.
    """

    reprompts: int = 2
    exit: str | None = None
    say: Prompt | None = None
    timeout: float = 8.0  # seconds (silence only), counted from the end of the prompt


@dataclass(slots=True)
class HookSpec:
    function: str
    fn: HookFn
    args: dict[str, Any] = field(default_factory=dict)
    returns: dict[str, str | None] = field(default_factory=dict)  # name -> slot type for speech
    timeout: float = 2.0


@dataclass(slots=True)
class BranchRule:
    """``if`` holds when every named value equals the given one (a list: any of; null: unset)."""

    goto: str
    when: dict[str, Any] = field(default_factory=dict)

    def holds(self, values: Mapping[str, Any]) -> bool:
        for name, want in self.when.items():
            have = values.get(name)
            if isinstance(want, list):
                if have not in want:
                    return False
            elif have != want:
                return False
        return True


@dataclass(slots=True)
class State:
    name: str
    say: Prompt | None = None
    ask: Prompt | None = None
    reprompt: Prompt | None = None
    on: dict[str, str] = field(default_factory=dict)
    collect: str | None = None
    confirm: dict[str, str] | None = None  # {"affirm": state, "deny": state}
    call: HookSpec | None = None
    branch: list[BranchRule] = field(default_factory=list)
    next: str | None = None
    transfer: str | None = None
    end: bool = False
    outcome: str | None = None
    clear: tuple[str, ...] = ()
    silence: Policy = field(default_factory=Policy)
    no_match: Policy = field(default_factory=Policy)
    barge_in: bool = True
    on_error: str | None = None
    file: str = ""
    line: int = 0

    @property
    def final(self) -> bool:
        return self.end or self.transfer is not None

    @property
    def waits(self) -> bool:
        """The caller speaks next (a state with nowhere to go waits too: only globals leave it)."""
        return not self.final and not self.branch and (self.ask is not None or self.next is None)

    def targets(self) -> list[str]:
        """Every state this one can lead to by itself (globals not included)."""
        out = [*self.on.values(), *(self.confirm or {}).values(), *(r.goto for r in self.branch)]
        out += [t for t in (self.next, self.on_error) if t]
        if self.waits:
            out += [t for t in (self.silence.exit, self.no_match.exit) if t]
        return [t for t in out if t != REPEAT]


@dataclass(slots=True)
class Flow:
    name: str
    languages: tuple[str, ...]
    start: str
    states: dict[str, State]
    handlers: dict[str, str] = field(default_factory=dict)  # global: intent -> state
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Bot:
    """A flow bound to its intents: which intents fill which slot, how values are spoken."""

    flow: Flow
    collectors: dict[str, frozenset[str]]  # slot -> intents that can carry it
    speakers: dict[str, Speaker]  # value name -> how to say it
    intent_names: frozenset[str] = frozenset()

    def accepts(self, state: State) -> frozenset[str]:
        """The intents the matcher may return in ``state``: its own plus the global ones."""
        names = set(state.on) | set(self.flow.handlers)
        if state.confirm:
            names |= set(state.confirm)
        if state.collect:
            names |= self.collectors.get(state.collect, frozenset())
        return frozenset(names & self.intent_names) if self.intent_names else frozenset(names)


@dataclass(slots=True)
class Step:
    """The engine's answer to one input: what to say and where the call stands."""

    text: str = ""
    barge_in: bool = True
    state: str = ""
    match: Match | None = None
    ended: str | None = None  # "end" or "transfer" once the call is finished
    outcomes: list[Outcome] = field(default_factory=list)


class FlowError(RuntimeError):
    """The flow cannot go on (a hook or commit failed and the state has no ``on_error``)."""


class Conversation:
    """One call's walk through a flow."""

    def __init__(self, bot: Bot, matcher: Matcher, store: OutcomeStore, *, call_id: str,
                 emit: Emit | None = None, language: str | None = None) -> None:
        self.bot = bot
        self.flow = bot.flow
        self.matcher = matcher
        self.store = store
        self.call_id = call_id
        self.language = language or matcher.language
        self.emit: Emit = emit or (lambda type, **fields: None)
        self.slots: dict[str, Any] = {}
        self.hook_values: dict[str, Any] = {}
        self.values = ChainMap(self.slots, self.hook_values)
        self.state_name = ""
        self.ended: str | None = None
        self.last_prompt = ""
        self.last_barge_in = True
        self.no_matches = 0
        self.silences = 0

    @property
    def state(self) -> State:
        return self.flow.states[self.state_name]

    def accepts(self) -> frozenset[str]:
        return self.bot.accepts(self.state) if self.state_name else frozenset()

    def expected_slot(self) -> str | None:
        """The slot the current state asks for (it wins ambiguous readings)."""
        return self.state.collect if self.state_name else None

    def silence_timeout(self) -> float | None:
        """Seconds of caller silence (after the prompt) until ``silence()``; None: never."""
        if self.ended or not self.state_name:
            return None
        policy = self.state.silence
        if self.silences >= policy.reprompts and not policy.exit:
            return None
        return policy.timeout

    # --- inputs --------------------------------------------------------------
    async def start(self) -> Step:
        return await self._enter(self.flow.start)

    async def hear(self, text: str) -> Step:
        """A final transcript."""
        if self.ended:
            return Step(state=self.state_name, ended=self.ended)
        match = await self.matcher.match_async(text, self.accepts(), expect=self.expected_slot())
        return await self._handle(match, text)

    def match_interim(self, text: str) -> Match | None:
        """An interim intent in a partial transcript (fast: exact tier only, no fallback)."""
        if self.ended:
            return None
        return self.matcher.match(text, self.accepts(), interim=True, expect=self.expected_slot())

    async def hear_interim(self, match: Match) -> Step:
        """Act on ``match_interim``'s result (the final transcript of the turn is then moot)."""
        return await self._handle(match, match.text, interim=True)

    async def silence(self) -> Step:
        """The caller said nothing for ``silence_timeout()`` seconds."""
        if self.ended:
            return Step(state=self.state_name, ended=self.ended)
        self.silences += 1
        state = self.state
        self.emit("silence_timeout", state=state.name, count=self.silences)
        return await self._reprompt(state, state.silence, self.silences)

    # --- decisions -----------------------------------------------------------
    async def _handle(self, match: Match | None, text: str, interim: bool = False) -> Step:
        state = self.state
        if match is None or match.intent not in self.accepts():
            self.no_matches += 1
            self.emit("no_match", text=text, state=state.name, count=self.no_matches)
            return await self._reprompt(state, state.no_match, self.no_matches)
        self.emit("intent", name=match.intent, slots=dict(match.slots),
                  confidence=round(match.confidence, 3), matcher=match.matcher, text=match.text,
                  **({"interim": True} if interim else {}))
        self.no_matches = self.silences = 0
        self.slots.update({k: v for k, v in match.slots.items() if v is not None})
        target = self._route(state, match.intent)
        if target == REPEAT:
            step = Step(self.last_prompt, self.last_barge_in, state.name)
        elif target is None:  # a collect state heard other slots than the one it asks for
            step = Step(self._text(state.reprompt or state.ask), state.barge_in, state.name)
        else:
            step = await self._enter(target)
        step.match = match
        return step

    def _route(self, state: State, intent: str) -> str | None:
        if intent in state.on:
            return state.on[intent]
        if state.confirm and intent in state.confirm:
            return state.confirm[intent]
        if state.collect and intent in self.bot.collectors.get(state.collect, ()):
            return state.next if self.slots.get(state.collect) is not None else None
        return self.flow.handlers[intent]

    async def _reprompt(self, state: State, policy: Policy, count: int) -> Step:
        if count > policy.reprompts:
            if policy.exit:
                return await self._enter(policy.exit)
            if policy is state.silence:
                return Step(state=state.name)  # out of re-prompts: keep waiting quietly
        text = " ".join(t for t in (self._text(policy.say), self._text(state.reprompt or state.ask))
                        if t)
        return Step(text, state.barge_in, state.name)

    async def _enter(self, name: str) -> Step:
        """Enter ``name`` and move on until a state waits or the call is over."""
        texts: list[str] = []
        barge_in = True
        outcomes: list[Outcome] = []
        for _ in range(MAX_HOPS):
            state = self.flow.states[name]
            if state.collect and self.slots.get(state.collect) is not None and state.next:
                name = state.next  # already known: skip the question
                continue
            self.emit("state", **{"from": self.state_name or None, "to": name})
            self.state_name = name
            self.no_matches = self.silences = 0
            try:
                if state.call is not None:
                    await self._call(state, state.call)
                if state.outcome is not None:
                    outcomes.append(await self._commit(state.outcome))
            except Exception as exc:  # a hook or the store failed
                target = state.on_error
                self.emit("flow_error", state=name, message=str(exc), kind=type(exc).__name__,
                          **({"goto": target} if target else {}))
                if not target:
                    raise FlowError(f"state {name!r}: {exc}") from exc
                name = target
                continue
            text = " ".join(t for t in (self._text(state.say), self._text(state.ask)) if t)
            if text:
                texts.append(text)
                barge_in = barge_in and state.barge_in
            for slot in state.clear:
                self.slots.pop(slot, None)
                self.hook_values.pop(slot, None)
            if state.end:
                self.ended = "end"
            elif state.transfer is not None:
                self.ended = "transfer"
                self.emit("transfer", target=state.transfer, slots=dict(self.slots))
            elif state.branch:
                name = next((r.goto for r in state.branch if r.holds(self.values)), "")
                if not name:
                    raise FlowError(f"state {state.name!r}: no branch applies")
                continue
            elif not state.waits and state.next:
                name = state.next
                continue
            break
        else:
            raise FlowError(f"more than {MAX_HOPS} states without waiting for the caller "
                            f"(last: {name!r})")
        text = " ".join(texts)
        if text:
            self.last_prompt, self.last_barge_in = text, barge_in
        return Step(text, barge_in, self.state_name, ended=self.ended, outcomes=outcomes)

    def _text(self, prompt: Prompt | None) -> str:
        if prompt is None:
            return ""
        return prompt.render(self.language, self.values, self.bot.speakers)

    async def _call(self, state: State, spec: HookSpec) -> None:
        call = HookCall(self.call_id, state.name, self.language, dict(self.values),
                        dict(spec.args), self.flow.data)
        result = await run_hook(spec.fn, call, spec.timeout)
        unknown = set(result) - set(spec.returns)
        if unknown:
            log.warning("hook %s returned undeclared values %s", spec.function, sorted(unknown))
        for name in spec.returns:
            self.hook_values[name] = result.get(name)

    async def _commit(self, kind: str) -> Outcome:
        outcome = Outcome(self.call_id, kind, dict(self.slots), self.flow.name)
        outcome = await self.store.commit(outcome)
        self.emit("outcome", kind=kind, slots=outcome.slots, id=outcome.id,
                  created_at=outcome.created_at)
        return outcome

