"""The fuzzy tier: word-level edit alignment of an utterance against template graphs.

Each template is a DAG in its language's ``WordGraph``. Matching is an
edit-distance DP over (utterance position, graph node): a literal word may
match (-1), be replaced by a similar word (+1, half an edit) or by any word
(+3), or be missing (+3); an extra utterance word costs +4; a slot consumes
the words its type parses (0). Those costs are ``4 * edits - literals``, so a
path is accepted when it has at most one edit per four literal words (cost
<= 0): "when i open on sunday" against "when [do] you open [on {day}]" is one
substitution over four literals. A cheap prefilter on required and known
words keeps the DP to a handful of templates per utterance.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Any

from rapidfuzz import process
from rapidfuzz.distance import Indel

from voicebot.nlu.wordgraph import Spans, Template, WordGraph, first_values

MAX_EDITS = 3
_CANDIDATES = 6  # templates aligned per utterance after the prefilter
_BEAM = 7  # cost units kept behind the best state of a row (an edit is 3-4)


@dataclass(slots=True)
class FuzzyResult:
    intent: str
    slots: dict[str, Any]
    edits: float
    literals: int

    @property
    def confidence(self) -> float:
        """Below 1 by construction: 0.9 without edits, 0.1 less per edit, a little less
        the larger the share of edited literals."""
        return round(0.9 - 0.1 * self.edits - 0.2 * self.edits / max(self.literals, 1), 3)


def edits_for(confidence: float) -> float:
    """Most edits a result can have and still reach ``confidence``."""
    return (0.9 - confidence) / 0.1 + 1e-9


def prefilter(
    templates: list[Template],
    words: list[str],
    similar: list[frozenset[str]],
    slot_words: dict[int, frozenset[str] | None],
) -> list[Template]:
    """The few templates worth aligning, by a quick estimate of the final cost.

    Per utterance word: -1 if the template has it, 0 if one of its slots may
    contain it, +1 if it has a similar word, else +3; plus +3 per required word
    missing that no unknown word can stand in for. ``slot_words`` is keyed by
    template start node (see ``SlotType.words``).
    """
    present = set(words)
    tokens = ["#" if w[0].isdigit() else w for w in words]
    scored = []
    for i, t in enumerate(templates):
        # Each missing required word is an edit, and edits need 3 matched words each.
        missing = len(t.required - present)
        if (
            missing > MAX_EDITS
            or 3 * missing > len(t.vocab & present)
            or (len(t.vocab & present) < 2)
        ):
            continue
        accepts = slot_words[t.start]
        estimate = unknown = hits = 0
        for word, token, close in zip(words, tokens, similar, strict=True):
            if word in t.vocab:
                estimate -= 1
                hits += 1
            elif accepts is None or token in accepts:
                continue
            elif close and not close.isdisjoint(t.vocab):
                estimate += 1
            else:
                estimate += 3
                unknown += 1
        estimate += 3 * max(0, missing - unknown)
        if estimate <= 1 and hits >= 2:
            scored.append((estimate, -hits, i))
    scored.sort()
    return [templates[i] for _, _, i in scored[:_CANDIDATES]]


def align(
    g: WordGraph,
    t: Template,
    words: list[str],
    spans: Spans,
    similar: list[frozenset[str]],
    max_edits: float = MAX_EDITS,
) -> FuzzyResult | None:
    """Best alignment of ``words`` to template ``t`` within the edit budget, or None.

    ``similar[i]``: template words close enough to ``words[i]`` for a half edit.
    States whose cost cannot come back to <= 0 (each remaining word the template
    knows can lower it by one) are dropped, which keeps the DP small.
    """
    n = len(words)
    # Words that can still match a literal bound how far the cost can come down,
    # and l >= 4e with l <= matches + e bounds the edits: e <= matches / 3.
    can_match = [0] * (n + 1)
    for i in range(n - 1, -1, -1):
        can_match[i] = can_match[i + 1] + (words[i] in t.vocab)
    max_edits = min(max_edits, can_match[0] / 3)
    rows: list[dict[int, tuple[float, float, int, tuple[tuple[str, Any], ...]]]] = [
        {} for _ in range(n + 1)
    ]
    rows[0][t.start] = (0.0, 0.0, 0, ())
    index, word_edges, slot_edges = g.words, g.word_edges, g.slots
    heap: list[int] = []
    current = 0

    def relax(
        i: int, v: int, cost: float, edits: float, lits: int, slots: tuple[tuple[str, Any], ...]
    ) -> None:
        if edits > max_edits or cost > can_match[i]:
            return
        row = rows[i]
        old = row.get(v)
        if old is None or (cost, edits) < (old[0], old[1]):
            if old is None and i == current:
                heapq.heappush(heap, v)
            row[v] = (cost, edits, lits, slots)

    for i in range(n + 1):
        current = i
        row = rows[i]
        if row:  # a beam: partial paths far behind the best of their row rarely win
            limit = min(state[0] for state in row.values()) + _BEAM
            for v in [v for v, state in row.items() if state[0] > limit]:
                del row[v]
        heap[:] = list(row)
        heapq.heapify(heap)
        word = words[i] if i < n else None
        close = similar[i] if i < n else frozenset()
        # A word the template knows is matched where it occurs, not swapped in elsewhere.
        swappable = word is not None and word not in t.vocab
        bound = can_match[i]
        while heap:
            v = heapq.heappop(heap)
            cost, edits, lits, slots = row[v]
            # Edits are checked here, before the call, because most are out of budget.
            whole = edits + 1 <= max_edits
            if word is not None:
                for to in index[v].get(word, ()):
                    relax(i + 1, to, cost - 1, edits, lits + 1, slots)
                if close and edits + 0.5 <= max_edits:
                    for other in close:
                        for to in index[v].get(other, ()):
                            relax(i + 1, to, cost + 1, edits + 0.5, lits + 1, slots)
                if whole and swappable:
                    for _, to in word_edges[v]:
                        relax(i + 1, to, cost + 3, edits + 1, lits + 1, slots)
                if whole:
                    relax(i + 1, v, cost + 4, edits + 1, lits, slots)
            if whole and cost + 3 <= bound:
                for _, to in word_edges[v]:
                    relax(i, to, cost + 3, edits + 1, lits + 1, slots)
            for name, slot, to in slot_edges[v]:
                for j, value in spans(name, i):
                    relax(j, to, cost, edits, lits, (*slots, (slot, value)))
    ends = [state for v, state in rows[n].items() if g.final[v] == t.final]
    final = min(ends, key=lambda state: (state[0], state[1]), default=None)
    if final is None or final[0] > 0 or final[2] < 2:
        return None
    return FuzzyResult(t.intent, first_values(final[3]), final[1], final[2])


def similar_words(words: list[str], vocab: list[str]) -> list[frozenset[str]]:
    """Per utterance word, the template words within a half edit ("reservations")."""
    out: list[frozenset[str]] = []
    for word in words:
        if len(word) < 3 or word.isdigit():
            out.append(frozenset())
            continue
        found = process.extract(
            word, vocab, scorer=Indel.normalized_similarity, score_cutoff=0.75, limit=None
        )
        out.append(frozenset(w for w, _, _ in found if w != word))
    return out
