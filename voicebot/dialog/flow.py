"""Flows: the states a bot walks through, and the engine that walks them for one call.

A ``Flow`` (loaded by ``flow_file.py``) is a set of named states. Entering a
state runs, in order: its hook (``call``), its outcome commit (``outcome``),
its prompt (``say`` then ``ask``), ``clear``; then it either waits for the
caller (``ask``: with ``on`` / ``collect`` / ``confirm``), moves on (``next``,
``branch``) or finishes the call (``end``, ``transfer``). A ``collect`` state
whose slot is already filled is skipped, so slots given early carry over.

``Conversation`` is that engine at the text level: the dialog stage feeds it
final transcripts, interim ones, key presses (``press``: a state's ``dtmf``
menu keys, digits keyed into a number slot, see ``keypad.py``) and silence
timeouts; ``voicebot test-dialog`` feeds it a test file's lines. Everything it
decides is reported through an ``emit(event)`` callback as ``intent`` /
``no_match`` / ``state`` / ``silence_timeout`` / ``transfer`` / ``outcome`` /
``flow_error`` events, each carrying the caller turn the dialog stage set in
``turn``.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections import ChainMap
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from voicebot.dialog.hooks import HookCall, HookFn, run_hook
from voicebot.dialog.keypad import (
    CLEAR_KEY,
    DIGIT_TIMEOUT,
    DIGITS,
    END_KEY,
    DigitEntry,
    entry_length,
)
from voicebot.dialog.outcomes import Outcome, OutcomeStore
from voicebot.dialog.prompt import Prompt, Speaker
from voicebot.errors import VoicebotError
from voicebot.events import (
    Event,
    FlowErrorEvent,
    IntentEvent,
    NoMatchEvent,
    OutcomeEvent,
    SilenceTimeoutEvent,
    StateEvent,
    TransferEvent,
)
from voicebot.frames import SecondPass
from voicebot.nlu.clauses import clauses, is_question, joined
from voicebot.nlu.match import AFFIRM, DENY, Match, Matcher
from voicebot.nlu.relative import resolve
from voicebot.nlu.slot_day import DayValue, speak_day
from voicebot.nlu.slot_time import pick_reading
from voicebot.nlu.slots import SlotType
from voicebot.nlu.unsure import match_unsure

log = logging.getLogger(__name__)

REPEAT = "@repeat"  # the built-in target: say the last prompt again
CONFIRM_CONFIDENCE = 0.75  # a "yes" below this (a guess of a lower tier) books nothing
HEARD_ENOUGH = 0.75  # share of a read-back the caller must have heard before a "yes" counts
ASIDE_CONFIDENCE = 0.8  # a question asked along with an answer is answered at this confidence
ASIDE_MAX_WORDS = 20  # a longer stretch is no question asked in passing
MAX_HOPS = 64  # state entries per input; more means a loop of states that never wait
# What the bot says when the transport could not transfer the caller (a state's own
# ``transfer_failed`` wins), before it hangs up.
TRANSFER_FAILED = {
    "en": "Sorry, I could not connect you. Please call again later. Goodbye!",
    "de": "Entschuldigung, ich konnte Sie nicht verbinden. Bitte rufen Sie später "
    "noch einmal an. Auf Wiederhören!",
}

Emit = Callable[[Event], object]
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_WORDS = re.compile(r"[^\W\d_]+")
# Words after a weekday that say it is right: "Wednesday's right, but seven"
_AGREEING = frozenset("right correct fine ok okay good stimmt passt richtig".split())
# ... no rejection in these: "no problem, Friday at eight then"
_NOT_REJECTING = re.compile(
    r"\b(?:no (?:problem|worries|rush|hurry)|not bad|kein problem|nicht schlecht)\b"
)
# Words before a weekday that name its week: "this Friday", "next Friday"
_WEEK_NAMED = {
    "en": frozenset("this next coming following".split()),
    "de": frozenset("diesen diesem kommenden nächsten nächster übernächsten".split()),
}
# Words that reject something said before: then a weekday said again is a new one
_REJECTING = {
    "en": frozenset("no not nope nah wrong".split()),
    "de": frozenset("nein nicht nee falsch".split()),
}


@dataclass(slots=True)
class RepromptPolicy:
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
    hint: Prompt | None = None  # how callers answer here, for the recogniser (asr: hints)
    on: dict[str, str] = field(default_factory=dict)
    dtmf: dict[str, str] = field(default_factory=dict)  # menu: key -> intent
    collect: str | None = None
    within: tuple[str, str] | None = None  # a collected time's reading between two values
    confirm: dict[str, str] | None = None  # {"affirm": state, "deny": state}
    call: HookSpec | None = None
    branch: list[BranchRule] = field(default_factory=list)
    next: str | None = None
    transfer: str | None = None
    transfer_failed: Prompt | None = None  # said if the transport could not transfer
    end: bool = False
    outcome: str | None = None
    clear: tuple[str, ...] = ()
    silence: RepromptPolicy = field(default_factory=RepromptPolicy)
    no_match: RepromptPolicy = field(default_factory=RepromptPolicy)
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
    digressions: set[str] = field(default_factory=set)  # global intents that return


@dataclass(slots=True)
class Bot:
    """A flow bound to its intents: which intents fill which slot, how values are spoken."""

    flow: Flow
    collectors: dict[str, frozenset[str]]  # slot -> intents that can carry it
    speakers: dict[str, Speaker]  # value name -> how to say it
    intent_names: frozenset[str] = frozenset()
    keyed: dict[str, SlotType] = field(default_factory=dict)  # slots that take digit entry
    hints: dict[str, Callable[[str], str]] = field(default_factory=dict)  # slot -> its type's

    def keyed_slot(self, state: State) -> str | None:
        """The slot ``state`` collects when it can be keyed in (a number, digits)."""
        slot = state.collect
        return slot if slot in self.keyed else None

    def accepts(self, state: State) -> frozenset[str]:
        """The intents the matcher may return in ``state``: its own plus the global ones."""
        names = set(state.on) | set(self.flow.handlers)
        if state.confirm:
            names |= set(state.confirm)
        if state.collect:
            names |= self.collectors.get(state.collect, frozenset())
        return frozenset(names & self.intent_names) if self.intent_names else frozenset(names)

    def route(self, state: State, intent: str) -> tuple[str, str | None]:
        """How ``state`` handles ``intent``: (kind, target). Kinds: ``on``, ``confirm``,
        ``collect`` (target: the state's ``next`` once its slot is filled) and ``global``;
        a state's own ``on`` wins over everything else."""
        if intent in state.on:
            return "on", state.on[intent]
        if state.confirm and intent in state.confirm:
            return "confirm", state.confirm[intent]
        if intent in self.flow.digressions:  # a question, whatever slots it carries
            return "global", self.flow.handlers.get(intent)
        if state.collect and intent in self.collectors.get(state.collect, ()):
            return "collect", state.next
        return "global", self.flow.handlers.get(intent)

    def actions(self, state: State) -> dict[str, str]:
        """Accepted intent -> what the state does with it: intents with the same action
        are one reading for the matcher's "two close readings" rule. A state's own ``on``
        and a global that does not return are both a move to their target ("no" and
        "goodbye" after "Anything else?" both end the call)."""
        out = {}
        for intent in self.accepts(state):
            kind, target = self.route(state, intent)
            if kind in ("on", "global") and intent not in self.flow.digressions:
                kind = "go"
            out[intent] = f"{kind}:{target}"
        return out


def _rejected_day(words: list[str], day: str, rejecting: frozenset[str]) -> bool:
    """A rejecting word stands just before the weekday ("no, Friday", "no, just Friday")
    and no word after it says it is right ("not quite, Wednesday's right, but ...")."""
    day = day.lower()
    return any(
        w.startswith(day)
        and bool(rejecting.intersection(words[max(0, i - 2) : i]))
        and not _AGREEING.intersection(words[i + 1 : i + 3])
        for i, w in enumerate(words)
    )


@dataclass(slots=True)
class Step:
    """The engine's answer to one input: what to say and where the call stands."""

    text: str = ""
    barge_in: bool = True
    state: str = ""
    match: Match | None = None
    ended: str | None = None  # "end" or "transfer" once the call is finished
    outcomes: list[Outcome] = field(default_factory=list)


@dataclass(slots=True)
class _Digression:
    """A question answered mid-collection; the bot then returns to ``resume``."""

    resume: str
    slots: dict[str, Any]
    hook_values: dict[str, Any]
    entered: int = 0  # states entered since it began
    ask_again: bool = True  # False: the turn's answer follows, so the question is not asked


def _same(old: Any, new: Any) -> bool:
    """Equal values, a day's calendar date included ("friday" the 4th is not the 18th)."""
    return old == new and getattr(old, "date", None) == getattr(new, "date", None)


class FlowError(VoicebotError, RuntimeError):
    """The flow cannot go on (a hook or commit failed and the state has no ``on_error``)."""


class Conversation:
    """One call's walk through a flow."""

    def __init__(
        self,
        bot: Bot,
        matcher: Matcher,
        store: OutcomeStore,
        *,
        call_id: str,
        emit: Emit | None = None,
        language: str | None = None,
    ) -> None:
        self.bot = bot
        self.flow = bot.flow
        self.matcher = matcher
        self.store = store
        self.call_id = call_id
        self.language = language or matcher.language
        self.emit: Emit = emit or (lambda event: None)
        self.turn = 0  # the caller turn being answered (0: the greeting), on every event
        self.slots: dict[str, Any] = {}
        self.hook_values: dict[str, Any] = {}
        self.values = ChainMap(self.slots, self.hook_values)
        self.state_name = ""
        self.ended: str | None = None
        self.last_prompt = ""
        self.last_barge_in = True
        self.no_matches = 0
        self.silences = 0
        self.heard = 1.0  # share of the last prompt the caller heard before speaking
        self._visits = 0
        self._collected_in: dict[str, tuple[int, str]] = {}  # slot -> (visit, collect state)
        self._digression: _Digression | None = None
        self.entry = DigitEntry()

    @property
    def state(self) -> State:
        return self.flow.states[self.state_name]

    def accepts(self) -> frozenset[str]:
        return self.bot.accepts(self.state) if self.state_name else frozenset()

    def expected_slot(self) -> str | None:
        """The slot the current state asks for (it wins ambiguous readings)."""
        return self.state.collect if self.state_name else None

    def asr_context(self) -> str | None:
        """What the caller is answering, for the recogniser: the question of the state the
        call waits in (its last sentence: "At what time?"), or None."""
        if self.ended or not self.state_name or not self.last_prompt:
            return None
        sentences = [s for s in _SENTENCE.split(self.last_prompt) if s.strip()]
        return sentences[-1].strip() if sentences else None

    def asr_hint(self) -> str | None:
        """How callers answer the state the call waits in, for the recogniser to read the
        answer in its light (``asr.context: hints``): the state's own ``hint``, else the
        hint of the type of the slot it collects ("Half past seven. Quarter to eight. 8
        pm."), or None."""
        if self.ended or not self.state_name:
            return None
        state = self.state
        if state.hint is not None:
            return self._text(state.hint) or None
        hint = self.bot.hints.get(state.collect or "")
        return (hint(self.language) or None) if hint is not None else None

    def silence_timeout(self) -> float | None:
        """Seconds of caller silence (after the prompt) until ``silence()``; None: never."""
        if self.ended or not self.state_name:
            return None
        if self.entry.pending:
            return DIGIT_TIMEOUT  # the keys so far are the entry
        policy = self.state.silence
        if self.silences >= policy.reprompts and not policy.exit:
            return None
        return policy.timeout

    def place(self, state: str, values: Mapping[str, Any]) -> None:
        """Put the conversation in ``state`` holding ``values``, as if the bot had just asked
        its question there (corpora and benchmarks score one turn in a given state)."""
        self.state_name = state
        self._store(values)
        self.last_prompt = self._text(self.state.ask)

    # --- inputs --------------------------------------------------------------
    async def start(self) -> Step:
        return await self._enter(self.flow.start)

    async def hear(
        self,
        text: str,
        *,
        heard: float = 1.0,
        unsure: Collection[int] = (),
        second_pass: SecondPass | None = None,
    ) -> Step:
        """A final transcript. ``heard``: the share of the bot's last prompt that had played
        when the caller started speaking (barge-in; 0: they spoke before it began).
        ``unsure``: the words (indexes in ``text.split()``) the recogniser was unsure of; a
        value read only from them is not taken (``nlu/unsure.py``). ``second_pass``: where
        nothing the state accepts matched, the same audio recognised again (a larger model,
        ``asr.second_pass``), matched in its place."""
        if self.ended:
            return Step(state=self.state_name, ended=self.ended)
        self.heard = heard
        self.entry.clear()  # said, not keyed: the keys so far are moot
        allowed = self.bot.actions(self.state) if self.state_name else {}
        expect = self.expected_slot()
        # "an hour later", "one more person": the value it comes to, from what is held
        held = {k: self.slots.get(k) for k in self.bot.collectors}
        resolved = resolve(text, self.language, held, unsure)
        text, unsure = resolved.text, resolved.unsure
        match = await match_unsure(self.matcher, text, unsure, allowed, expect=expect)
        if resolved.changed and not resolved.unsure and match is None:
            # a change named with free words around it ("and one more person, my sister
            # is coming too"): the values it came to, said alone
            alone = await match_unsure(self.matcher, resolved.values, (), allowed, expect=expect)
            if alone is not None and set(resolved.changed) <= set(alone.slots):
                match = alone
        if second_pass is not None and (match is None or match.intent not in self.accepts()):
            again, again_unsure = await second_pass()
            found = await match_unsure(self.matcher, again, again_unsure, allowed, expect=expect)
            if found is not None and found.intent in self.accepts():
                match, text = found, again
        aside = await self._aside(text, unsure, allowed, expect, match)
        if aside is not None:
            return await self._both(*aside, text)
        return await self._handle(match, text)

    def _held_days(self, match: Match, text: str) -> Match:
        """A weekday named alone that the call holds already, in a turn that rejects
        nothing, is the day held, with its date ("Wednesday's right, but seven", "yes,
        Friday" after a read-back of Wednesday the 9th, Friday the 18th); "no, Friday",
        "this Friday", "next Friday" name their own."""
        if match.intent == DENY:
            return match
        words = _WORDS.findall(_NOT_REJECTING.sub(" ", text.lower()))
        rejecting = _REJECTING.get(self.language, frozenset())
        weeks = _WEEK_NAMED.get(self.language, frozenset())

        def kept(values: Mapping[str, Any]) -> dict[str, Any]:
            out = {}
            for name, value in values.items():
                held = self.slots.get(name)
                if not (
                    isinstance(value, DayValue)
                    and not value.explicit
                    and isinstance(held, DayValue)
                    and str(held) == str(value)
                ):
                    continue
                day = speak_day(str(value), self.language)
                if not _rejected_day(words, day, rejecting | weeks):
                    out[name] = held
            return out

        slots, mentioned = kept(match.slots), kept(match.mentioned)
        if not slots and not mentioned:  # (a DayValue equals its weekday name: compare
            return match  # the dates, not the dicts)
        return dataclasses.replace(
            match,
            slots={**match.slots, **slots},
            mentioned={**match.mentioned, **mentioned},
        )

    async def _aside(
        self,
        text: str,
        unsure: Collection[int],
        allowed: dict[str, str],
        expect: str | None,
        whole: Match | None,
    ) -> tuple[Match, Match | None] | None:
        """A question the flow answers in passing (a ``return: true`` global the state has
        no handler of its own for), asked along with a turn's answer that gives values:
        "Eight, and can you also tell me if you open on Mondays?". (the question, the
        rest of the turn read alone), or None. The rest is None where it reads as nothing
        the state accepts; then the question is only taken if the whole turn read as
        nothing either. A bare yes or no beside a question is no answer of its own ("yes,
        what time do you close?"): the turn is read whole."""
        state = self.state
        questions = {
            k: v
            for k, v in allowed.items()
            if k in self.flow.digressions and self.bot.route(state, k)[0] == "global"
        }
        if not questions or (whole is not None and whole.matcher == "exact"):
            return None  # (a template read the turn as said: one request)
        stretches = clauses(text, self.language)
        if len(stretches) < 2:
            return None
        words = text.split()
        for k, stretch in enumerate(stretches):
            if stretch[1] - stretch[0] > ASIDE_MAX_WORDS:
                continue
            # the stretch's own best reading among all the state takes ("Sonntag," is an
            # answer, though of the questions alone it reads most like the opening hours)
            question = await self._match_part(words, [stretch], unsure, allowed, expect)
            if question is None or question.intent not in questions:
                continue
            if question.matcher != "exact" and question.confidence < ASIDE_CONFIDENCE:
                continue
            rest = stretches[:k] + stretches[k + 1 :]
            main = await self._match_part(words, rest, unsure, allowed, expect)
            if (
                main is not None
                and (
                    main.intent not in self.accepts()
                    or main.intent in self.flow.digressions
                    # "Is Sunday open, what hours?": the rest asks too, it answers nothing
                    # (by a lead, not a "?" alone: Whisper writes a hesitant "Saturday?")
                    or all(
                        is_question(" ".join(words[a:b]).rstrip("?"), self.language)
                        for a, b in rest
                    )
                )
            ):
                main = None
            if main is not None and not any(
                v is not None for v in (*main.slots.values(), *main.mentioned.values())
            ):
                return None
            if main is None and whole is not None and whole.intent in self.accepts():
                return None  # the turn as a whole says what the caller wants
            return question, main
        return None

    async def _match_part(
        self,
        words: list[str],
        stretches: list[tuple[int, int]],
        unsure: Collection[int],
        allowed: dict[str, str],
        expect: str | None,
    ) -> Match | None:
        text, kept = joined(words, stretches)
        where = {original: k for k, original in enumerate(kept)}
        part_unsure = [where[i] for i in unsure if i in where]
        return await match_unsure(self.matcher, text, part_unsure, allowed, expect=expect)

    async def _both(self, question: Match, main: Match | None, text: str) -> Step:
        """Answer ``question`` in passing, then take ``main``, the turn's answer, as if
        it had been said alone; without one, return to the pending question."""
        state = self.state
        if main is not None:  # "Sonntag, und bis wann haben Sie da offen?": that Sunday
            given = {
                slot: value
                for slot, value in main.slots.items()
                if slot not in question.slots
                and question.intent in self.bot.collectors.get(slot, frozenset())
            }
            question = dataclasses.replace(question, slots={**question.slots, **given})
        self._heard_intent(question)
        self.no_matches = self.silences = 0
        target = self.flow.handlers.get(question.intent)
        assert target is not None
        values = {k: v for k, v in question.slots.items() if v is not None}
        first = await self._digress(state, values, target, ask_again=main is None)
        first.match = question
        if main is None or self.ended:
            return first
        second = await self._handle(main, text)
        step = Step(
            " ".join(t for t in (first.text, second.text) if t),
            first.barge_in and second.barge_in,
            second.state,
            main,
            second.ended,
            first.outcomes + second.outcomes,
        )
        if step.text:
            self.last_prompt, self.last_barge_in = step.text, step.barge_in
        return step

    def match_interim(self, text: str) -> Match | None:
        """An interim intent in a partial transcript (fast: exact tier only, no fallback)."""
        if self.ended:
            return None
        return self.matcher.match(text, self.accepts(), interim=True, expect=self.expected_slot())

    async def hear_interim(self, match: Match) -> Step:
        """Act on ``match_interim``'s result (the final transcript of the turn is then moot)."""
        return await self._handle(match, match.text, interim=True)

    async def press(self, key: str) -> Step:
        """A key the caller pressed: a ``dtmf`` menu key of the state acts at once; in a
        state collecting a number, digits gather until ``#`` (or the value's length, or
        ``silence()`` after ``DIGIT_TIMEOUT``). Anything else is a no-match."""
        if self.ended:
            return Step(state=self.state_name, ended=self.ended)
        state = self.state
        self.heard = 1.0  # a key is pressed on purpose, whatever was playing
        if not self.entry.pending and key in state.dtmf:
            return await self._handle(Match(state.dtmf[key], {}, 1.0, "dtmf", key), key)
        slot = self.bot.keyed_slot(state)
        if slot is None or key not in DIGITS + END_KEY + CLEAR_KEY:
            return await self._no_match(state, key)
        longest = entry_length(self.bot.keyed[slot]) or 1
        keys = self.entry.add(key, longest)
        if keys is None:
            return Step(state=state.name)  # more keys to come
        return await self._keyed(state, slot, keys)

    async def _keyed(self, state: State, slot: str, keys: str) -> Step:
        """A complete digit entry: the slot's value, as if the caller had said it (with the
        intent that collects it here carrying the fewest slots: the ``intent`` event's name)."""
        value = self.bot.keyed[slot].parse(keys, self.language) if keys else None
        accepted = self.accepts()
        collecting = sorted(
            (sum(i in carriers for carriers in self.bot.collectors.values()), i)
            for i in self.bot.collectors.get(slot, ())
            if i in accepted and self.bot.route(state, i)[0] == "collect"
        )
        if value is None or not collecting:
            return await self._no_match(state, keys or END_KEY)
        match = Match(collecting[0][1], {slot: value}, 1.0, "dtmf", keys)
        return await self._handle(match, keys)

    async def silence(self) -> Step:
        """The caller said nothing for ``silence_timeout()`` seconds (after keys: the
        entry is complete)."""
        if self.ended:
            return Step(state=self.state_name, ended=self.ended)
        if self.entry.pending:
            keys, state = self.entry.keys, self.state
            self.entry.clear()
            slot = self.bot.keyed_slot(state)
            assert slot is not None
            return await self._keyed(state, slot, keys)
        self.silences += 1
        state = self.state
        self.emit(SilenceTimeoutEvent(self.turn, state=state.name, count=self.silences))
        return await self._reprompt(state, state.silence, self.silences)

    # --- decisions -----------------------------------------------------------
    async def _handle(self, match: Match | None, text: str, interim: bool = False) -> Step:
        state = self.state
        if match is None or match.intent not in self.accepts():
            return await self._no_match(state, text)
        match = self._held_days(match, text)
        kind, target = self.bot.route(state, match.intent)
        values = {k: v for k, v in match.slots.items() if v is not None}
        if kind == "confirm":  # "no, Saturday": a value said with the yes or no
            values.update(
                {
                    k: v
                    for k, v in match.mentioned.items()
                    if v is not None and k in self.bot.collectors
                }
            )
        changed = [k for k, v in values.items() if not _same(self.slots.get(k), v)]
        corrected = [k for k in changed if self.slots.get(k) is not None]
        if (
            kind == "confirm"
            and not changed
            and match.intent == AFFIRM
            and (not self._confirmable(match))
        ):
            return await self._no_match(state, text, reason="unconfirmed")
        self._heard_intent(match, interim)
        missing = self.no_matches + 1  # if this answer, too, lacks the slot asked for
        self.no_matches = self.silences = 0
        if kind == "global" and match.intent in self.flow.digressions and target != REPEAT:
            assert target is not None
            step = await self._digress(state, values, target)
            step.match = match
            return step
        self._store(values)
        if kind == "confirm" and changed:
            # "no, make it five", "yes, but on Sunday": a correction, read back again
            target = self._collector(changed) or state.name
        elif kind != "on" and corrected:
            # a value changed while collecting: redo what depended on it (its checks)
            target = self._collector(corrected) or target
        if kind == "collect" and state.within:
            self._pick_reading(state)
        if target == REPEAT:
            step = Step(self.last_prompt, self.last_barge_in, state.name)
        elif (
            kind == "collect"
            and self.slots.get(state.collect or "") is None
            and (target == state.next)
        ):
            # a collect state heard other slots than the one it asks for: ask again, and
            # count it like a no-match - a caller who never gives it is not asked forever
            self.no_matches = missing
            if missing > state.no_match.reprompts and state.no_match.exit:
                step = await self._enter(state.no_match.exit)
            else:
                step = Step(self._text(state.reprompt or state.ask), state.barge_in, state.name)
        else:
            assert target is not None
            step = await self._enter(target)
        step.match = match
        return step

    def _heard_intent(self, match: Match, interim: bool = False) -> None:
        self.emit(
            IntentEvent(
                self.turn,
                name=match.intent,
                slots=dict(match.slots),
                confidence=round(match.confidence, 3),
                matcher=match.matcher,
                text=match.text,
                interim=interim,
                mentioned=dict(match.mentioned),
                unsure=dict(match.unsure),
            )
        )

    def _confirmable(self, match: Match) -> bool:
        """A "yes" books only when it answers the read-back, heard, and is clearly a yes."""
        sure = match.matcher == "exact" or match.confidence >= CONFIRM_CONFIDENCE
        return sure and self.heard >= HEARD_ENOUGH

    async def _no_match(self, state: State, text: str, reason: str | None = None) -> Step:
        self.no_matches += 1
        self.emit(
            NoMatchEvent(
                self.turn, text=text, state=state.name, count=self.no_matches, reason=reason or None
            )
        )
        return await self._reprompt(state, state.no_match, self.no_matches)

    def _store(self, values: Mapping[str, Any]) -> None:
        """Keep slot values; a day also keeps its calendar date as ``<slot>_date``."""
        for name, value in values.items():
            self.slots[name] = value
            date = getattr(value, "date", None)
            if date is not None:
                self.slots[f"{name}_date"] = date.isoformat()
            else:
                self.slots.pop(f"{name}_date", None)

    def _collector(self, slots: list[str]) -> str | None:
        """The collect state that took the earliest of ``slots`` (re-entering it skips
        what is known and re-runs the checks after it)."""
        seen = [self._collected_in[s] for s in slots if s in self._collected_in]
        return min(seen)[1] if seen else None

    def _pick_reading(self, state: State) -> None:
        slot = state.collect
        if slot is None or state.within is None or self.slots.get(slot) is None:
            return
        low, high = (self.values.get(name) for name in state.within)
        if isinstance(low, str) and isinstance(high, str):
            self.slots[slot] = pick_reading(self.slots[slot], low, high)

    async def _digress(
        self, state: State, values: Mapping[str, Any], target: str, ask_again: bool = True
    ) -> Step:
        """Answer a global question mid-call; ``_enter`` returns to ``state`` afterwards
        (and asks its question again, unless ``ask_again`` is False). The question's slots
        ("are you open on Monday?") never touch the call's own."""
        if self._digression is None:
            self._digression = _Digression(
                state.name, dict(self.slots), dict(self.hook_values), ask_again=ask_again
            )
        self._store(values)
        return await self._enter(target)

    async def _reprompt(self, state: State, policy: RepromptPolicy, count: int) -> Step:
        if count > policy.reprompts:
            if policy.exit:
                return await self._enter(policy.exit)
            if policy is state.silence:
                return Step(state=state.name)  # out of re-prompts: keep waiting quietly
        text = " ".join(
            t for t in (self._text(policy.say), self._text(state.reprompt or state.ask)) if t
        )
        return Step(text, state.barge_in, state.name)

    async def _enter(self, name: str) -> Step:
        """Enter ``name`` and move on until a state waits or the call is over."""
        texts: list[str] = []
        barge_in = True
        outcomes: list[Outcome] = []
        self.entry.clear()
        for _ in range(MAX_HOPS):
            state = self.flow.states[name]
            digression = self._digression
            if digression is not None and state.waits and digression.entered > 0:
                resumed = self._resume(digression)
                if resumed:
                    texts.append(resumed)
                break
            if state.collect:
                filled = self.slots.get(state.collect) is not None
                if filled or state.collect not in self._collected_in:
                    self._visits += 1
                    self._collected_in[state.collect] = (self._visits, name)
                if filled and state.within:
                    self._pick_reading(state)
                if filled and state.next:
                    name = state.next  # already known: skip the question
                    continue
            self.emit(StateEvent(self.turn, from_=self.state_name or None, to=name))
            self.state_name = name
            self.no_matches = self.silences = 0
            if digression is not None:
                digression.entered += 1
            try:
                if state.call is not None:
                    await self._call(state, state.call)
                if state.outcome is not None:
                    outcomes.append(await self._commit(state.outcome))
            except Exception as exc:  # a hook or the store failed
                target = state.on_error
                self.emit(
                    FlowErrorEvent(
                        self.turn,
                        state=name,
                        message=str(exc),
                        kind=type(exc).__name__,
                        goto=target or None,
                    )
                )
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
                self.slots.pop(f"{slot}_date", None)
                self.hook_values.pop(slot, None)
            if state.end:
                self.ended = "end"
            elif state.transfer is not None:
                self.ended = "transfer"
                apology = self._text(state.transfer_failed) or TRANSFER_FAILED.get(
                    self.language, ""
                )
                self.emit(
                    TransferEvent(
                        self.turn, target=state.transfer, slots=dict(self.slots), apology=apology
                    )
                )
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
            raise FlowError(
                f"more than {MAX_HOPS} states without waiting for the caller (last: {name!r})"
            )
        if self.ended:
            self._digression = None
        text = " ".join(texts)
        if text:
            self.last_prompt, self.last_barge_in = text, barge_in
        return Step(text, barge_in, self.state_name, ended=self.ended, outcomes=outcomes)

    def _resume(self, digression: _Digression) -> str:
        """Back from a digression: the call's own values again, and its pending question."""
        self._digression = None
        self.slots.clear()
        self.slots.update(digression.slots)
        self.hook_values.clear()
        self.hook_values.update(digression.hook_values)
        state = self.flow.states[digression.resume]
        self.emit(StateEvent(self.turn, from_=self.state_name or None, to=state.name, resumed=True))
        self.state_name = state.name
        self.no_matches = self.silences = 0
        return self._text(state.ask or state.reprompt) if digression.ask_again else ""

    def _text(self, prompt: Prompt | None) -> str:
        if prompt is None:
            return ""
        return prompt.render(self.language, self.values, self.bot.speakers)

    async def _call(self, state: State, spec: HookSpec) -> None:
        call = HookCall(
            self.call_id,
            state.name,
            self.language,
            dict(self.values),
            dict(spec.args),
            self.flow.data,
        )
        result = await run_hook(spec.fn, call, spec.timeout)
        unknown = set(result) - set(spec.returns)
        if unknown:
            log.warning("hook %s returned undeclared values %s", spec.function, sorted(unknown))
        for name in spec.returns:
            self.hook_values[name] = result.get(name)

    async def _commit(self, kind: str) -> Outcome:
        outcome = Outcome(self.call_id, kind, dict(self.slots), self.flow.name)
        outcome = await self.store.commit(outcome)
        self.emit(
            OutcomeEvent(
                self.turn,
                kind=kind,
                slots=outcome.slots,
                id=outcome.id,
                created_at=outcome.created_at,
            )
        )
        return outcome
