"""Templates compiled to one word graph per language, and the exact tier on it.

hassil parses the templates; matching runs on this compiled form because
hassil's backtracking string matcher took 5-15 ms per utterance on the
reference grammar (big alternations, optional slot phrases in any order) -
far over the 2 ms budget. Each template becomes a DAG of word, slot and empty
edges (permutations unrolled; rules inlined), all templates of a language
share one node space, and every node gets, at build time, the words and slots
leaving its empty-edge closure. The exact tier is then a breadth-first
simulation over (utterance position, node) keeping the best path per state:
one dict lookup per live node and word, slot spans parsed once per utterance.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hassil import (
    Alternative,
    Expression,
    Group,
    ListReference,
    Permutation,
    RuleReference,
    Sentence,
    TextChunk,
)

from voicebot.nlu.templates import (
    literal_words,
    required_clauses,
    required_words,
    slot_refs,
)

WORD, SLOT, EPS = 0, 1, 2
_MAX_PERMUTED = 4  # permutations of more items keep the written order only

# (kind, payload, to): payload is a word, or (definition_name, slot_name) for a slot.
Edge = tuple[int, Any, int]
# (definition, start) -> [(end, value)] for every span from ``start`` its type accepts.
Spans = Callable[[str, int], list[tuple[int, Any]]]


@dataclass(slots=True)
class Template:
    intent: str
    start: int
    final: int
    last: int  # highest node id of this template (ids are contiguous from start)
    required: frozenset[str]
    vocab: frozenset[str]
    slot_types: frozenset[str]  # slot definitions it uses
    clauses: tuple[frozenset[str], ...]  # every match has a word of each (templates.py)


@dataclass
class WordGraph:
    edges: list[list[Edge]] = field(default_factory=list)
    templates: list[Template] = field(default_factory=list)
    # Filled by ``finish``: per node, over its empty-edge closure.
    words: list[dict[str, tuple[int, ...]]] = field(default_factory=list)
    word_edges: list[tuple[tuple[str, int], ...]] = field(default_factory=list)
    slots: list[tuple[tuple[str, str, int], ...]] = field(default_factory=list)
    accept: list[str | None] = field(default_factory=list)
    final: list[int] = field(default_factory=list)  # the template final in the closure, or -1

    def node(self) -> int:
        self.edges.append([])
        return len(self.edges) - 1

    def add(self, intent: str, sentence: Sentence, rules: dict[str, Sentence]) -> None:
        start = self.node()
        final = _build(self, sentence.expression, start, rules, 0)
        self.templates.append(
            Template(
                intent,
                start,
                final,
                len(self.edges) - 1,
                frozenset(required_words(sentence.expression, rules)),
                frozenset(literal_words(sentence.expression, rules)),
                frozenset(r.list_name for r in slot_refs(sentence.expression, rules)),
                tuple(sorted(required_clauses(sentence.expression, rules), key=len)),
            )
        )

    def finish(self) -> None:
        """Merge equivalent nodes, then precompute closures; call once after the last ``add``."""
        self._merge_suffixes()
        size = len(self.edges)
        closure: list[tuple[int, ...]] = [()] * size
        for v in range(size - 1, -1, -1):  # empty edges always point to higher ids
            reach = {v}
            for kind, _, to in self.edges[v]:
                if kind == EPS:
                    reach.update(closure[to])
            closure[v] = tuple(sorted(reach))
        finals = {t.final: t.intent for t in self.templates}
        self.words, self.word_edges, self.slots, self.accept, self.final = [], [], [], [], []
        for v in range(size):
            words: dict[str, list[int]] = {}
            slots: list[tuple[str, str, int]] = []
            final = -1
            for u in closure[v]:
                if u in finals:
                    final = u
                for kind, payload, to in self.edges[u]:
                    if kind == WORD:
                        words.setdefault(payload, []).append(to)
                    elif kind == SLOT:
                        slots.append((*payload, to))
            self.words.append({w: tuple(dict.fromkeys(t)) for w, t in words.items()})
            self.word_edges.append(tuple((w, to) for w, t in self.words[-1].items() for to in t))
            self.slots.append(tuple(dict.fromkeys(slots)))
            self.accept.append(finals.get(final))
            self.final.append(final)

    def _merge_suffixes(self) -> None:
        """Share nodes whose futures are identical (unrolled permutations, alternatives).

        Bottom-up like DAWG minimisation: a node with the same outgoing edges (to
        already-merged targets) as a higher node becomes that node; a node whose
        only edge is empty becomes its target. Targets always have higher ids, so
        edges keep pointing upwards and the DP order stays valid.
        """
        finals = {t.final: k for k, t in enumerate(self.templates)}
        canon = list(range(len(self.edges)))
        seen: dict[tuple[Any, ...], int] = {}
        for v in range(len(self.edges) - 1, -1, -1):
            edges = sorted({(k, p, canon[to]) for k, p, to in self.edges[v]}, key=repr)
            if len(edges) == 1 and edges[0][0] == EPS and v not in finals:
                canon[v] = edges[0][2]
                continue
            signature = (finals.get(v), tuple(edges))
            if signature in seen:
                canon[v] = seen[signature]
            else:
                seen[signature] = v
                self.edges[v] = edges
        for t in self.templates:
            t.start = canon[t.start]
        for v in range(len(self.edges)):
            if canon[v] != v:
                self.edges[v] = []


def _build(
    g: WordGraph, expr: Expression, start: int, rules: dict[str, Sentence], depth: int
) -> int:
    if isinstance(expr, TextChunk):
        node = start
        for word in expr.text.split():
            nxt = g.node()
            g.edges[node].append((WORD, word, nxt))
            node = nxt
        return node
    if isinstance(expr, ListReference):
        nxt = g.node()
        g.edges[start].append((SLOT, (expr.list_name, expr.slot_name), nxt))
        return nxt
    if isinstance(expr, RuleReference):
        rule = rules.get(expr.rule_name)
        if rule is None or depth > 8:
            return start
        return _build(g, rule.expression, start, rules, depth + 1)
    if isinstance(expr, Alternative):
        return _join(g, [_build(g, item, start, rules, depth) for item in expr.items])
    if isinstance(expr, Permutation):
        items = expr.items
        orders = itertools.permutations(items) if len(items) <= _MAX_PERMUTED else [items]
        ends = []
        for order in orders:
            node = start
            for item in order:
                node = _build(g, item, node, rules, depth)
            ends.append(node)
        return _join(g, ends)
    if isinstance(expr, Group):
        node = start
        for item in expr.items:
            node = _build(g, item, node, rules, depth)
        return node
    return start


def _join(g: WordGraph, ends: list[int]) -> int:
    join = g.node()
    for end in dict.fromkeys(ends):
        g.edges[end].append((EPS, None, join))
    return join


# (literal words matched, -open slots, slots) - compared on the first two.
State = tuple[int, int, tuple[tuple[str, Any], ...]]


@dataclass(slots=True)
class Entry:
    """Templates indexed by a word they require, so an utterance only wakes up those
    whose required words it contains."""

    always: tuple[Template, ...]  # templates that require no word
    by_word: dict[str, tuple[Template, ...]]  # a word of the first clause -> templates

    @classmethod
    def of(cls, templates: list[Template]) -> Entry:
        always: list[Template] = []
        by_word: dict[str, list[Template]] = {}
        for t in templates:
            if not t.clauses:
                always.append(t)
            for word in t.clauses[0] if t.clauses else ():
                by_word.setdefault(word, []).append(t)
        return cls(tuple(always), {w: tuple(ts) for w, ts in by_word.items()})

    def starts(self, words: list[str]) -> list[int]:
        """Start nodes of the templates the utterance can possibly match."""
        present = set(words)
        out = [t.start for t in self.always]
        seen: set[int] = set()
        for word in present:
            for t in self.by_word.get(word, ()):
                if t.start not in seen and all(not c.isdisjoint(present) for c in t.clauses):
                    seen.add(t.start)
                    out.append(t.start)
        return out


def match_exact(
    g: WordGraph,
    entry: Entry,
    words: list[str],
    spans: Spans,
    open_types: frozenset[str],
    skips: dict[int, list[int]],
    expect: str | None = None,
) -> dict[str, State]:
    """Best complete path per intent. ``skips``: position -> ends of skippable phrases.

    ``expect`` is the slot the bot just asked for: filling it outranks other
    readings of the same words ("eight" after "At what time?" is a time).
    """
    n = len(words)
    rows: list[dict[int, State]] = [{} for _ in range(n + 1)]
    rows[0] = dict.fromkeys(entry.starts(words), (0, 0, ()))
    index, slot_edges = g.words, g.slots

    def relax(row: dict[int, State], node: int, state: State) -> None:
        old = row.get(node)
        if old is None or state[:2] > old[:2]:
            row[node] = state

    for i in range(n):
        row = rows[i]
        if not row:
            continue
        word = words[i]
        nxt = rows[i + 1]
        for node, state in row.items():
            lits, opens, found = state
            for to in index[node].get(word, ()):
                relax(nxt, to, (lits + 1, opens, found))
            for name, slot, to in slot_edges[node]:
                penalty = -1 if slot == expect else 1 if name in open_types else 0
                for j, value in spans(name, i):
                    relax(rows[j], to, (lits, opens - penalty, (*found, (slot, value))))
        for j in skips.get(i, ()):
            for node, state in row.items():
                relax(rows[j], node, state)
    best: dict[str, State] = {}
    for node, state in rows[n].items():
        intent = g.accept[node]
        if intent is not None and (intent not in best or state[:2] > best[intent][:2]):
            best[intent] = state
    return best


def first_values(pairs: tuple[tuple[str, Any], ...]) -> dict[str, Any]:
    """Slot values in utterance order; a slot said twice keeps its first value."""
    out: dict[str, Any] = {}
    for slot, value in pairs:
        out.setdefault(slot, value)
    return out


@dataclass(slots=True)
class Inside:
    """A template matched by a stretch of the utterance, not all of it."""

    intent: str
    start: int
    end: int
    literals: int
    slots: tuple[tuple[str, Any], ...]


def match_inside(
    g: WordGraph, entry: Entry, words: list[str], spans: Spans, skips: dict[int, list[int]]
) -> list[Inside]:
    """Every intent whose template matches some ``words[start:end]``: its best stretch
    (most literal words, then the latest end - a goodbye closes an utterance)."""
    n = len(words)
    starts = entry.starts(words)
    # per row: node -> (literals, start, slots)
    rows: list[dict[int, tuple[int, int, tuple[tuple[str, Any], ...]]]] = [{} for _ in range(n + 1)]
    index, slot_edges = g.words, g.slots

    def relax(
        row: dict[int, tuple[int, int, tuple[tuple[str, Any], ...]]],
        node: int,
        state: tuple[int, int, tuple[tuple[str, Any], ...]],
    ) -> None:
        old = row.get(node)
        if old is None or state[0] > old[0]:
            row[node] = state

    best: dict[str, Inside] = {}
    for i in range(n + 1):
        row = rows[i]
        for node, (lits, start, found) in row.items():
            intent = g.accept[node]
            if intent is not None and lits > 0:
                old = best.get(intent)
                if old is None or (lits, i) > (old.literals, old.end):
                    best[intent] = Inside(intent, start, i, lits, found)
        if i == n:
            break
        for node in starts:
            relax(row, node, (0, i, ()))
        word = words[i]
        nxt = rows[i + 1]
        for node, state in list(row.items()):
            lits, start, found = state
            for to in index[node].get(word, ()):
                relax(nxt, to, (lits + 1, start, found))
            for name, slot, to in slot_edges[node]:
                for j, value in spans(name, i):
                    relax(rows[j], to, (lits, start, (*found, (slot, value))))
        for j in skips.get(i, ()):
            for node, state in list(row.items()):
                if state[0] > 0:
                    relax(rows[j], node, state)
    return list(best.values())
