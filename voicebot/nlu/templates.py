"""Template sentences: hassil parsing with precise errors, and literal normalisation.

hassil's parser reports an unbalanced bracket as "Unable to find end of ...
from index N" in a wrapped copy of the text; ``syntax_error`` checks the
delimiters first so an author gets the offending character's offset. After
parsing, every literal chunk goes through ``normalize_chunk`` so templates and
ASR text are spelled alike ("two" -> "2", "o'clock" -> "oclock").
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from hassil import (
    Alternative,
    Expression,
    Group,
    ListReference,
    Permutation,
    RuleReference,
    Sentence,
    TextChunk,
    parse_sentence,
)

from voicebot.errors import VoicebotError
from voicebot.nlu.normalize import normalize_chunk

_OPEN = {"(": ")", "[": "]", "{": "}", "<": ">"}
_CLOSE = {v: k for k, v in _OPEN.items()}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class IntentTemplateError(VoicebotError, ValueError):
    """An intent template that cannot be parsed; ``offset`` indexes the template text."""

    def __init__(self, message: str, offset: int = 0) -> None:
        super().__init__(message)
        self.offset = offset


def syntax_error(text: str) -> IntentTemplateError | None:
    """The first delimiter or name problem in ``text``, with its offset; None if clean."""
    if not text.strip():
        return IntentTemplateError("empty template", 0)
    stack: list[tuple[str, int]] = []
    escaped = False
    for i, ch in enumerate(text):
        if escaped:
            escaped = False
            continue
        if ch == "\\":
            escaped = True
        elif ch in _OPEN:
            if stack and stack[-1][0] in "{<":
                return IntentTemplateError(
                    f"{ch!r} inside {stack[-1][0]}...{_OPEN[stack[-1][0]]}", i
                )
            stack.append((ch, i))
        elif ch in _CLOSE:
            if not stack:
                return IntentTemplateError(f"unmatched {ch!r}", i)
            opener, start = stack.pop()
            if _OPEN[opener] != ch:
                return IntentTemplateError(
                    f"{ch!r} closes {opener!r} opened at offset {start}; expected "
                    f"{_OPEN[opener]!r}",
                    i,
                )
            if opener in "{<":
                problem = _name_problem(opener, text[start + 1 : i])
                if problem:
                    return IntentTemplateError(problem, start)
            elif not text[start + 1 : i].strip():
                return IntentTemplateError(f"empty {opener}{ch}", start)
    if stack:
        opener, start = stack[-1]
        return IntentTemplateError(f"unclosed {opener!r} (expected {_OPEN[opener]!r})", start)
    return None


def _name_problem(opener: str, inner: str) -> str | None:
    if opener == "<":
        return None if _NAME.match(inner) else f"bad rule name <{inner}>"
    parts = inner.split(":")
    if len(parts) > 2 or not all(_NAME.match(p) for p in parts):
        return f"bad slot reference {{{inner}}}: use {{slot}} or {{type_name:slot}}"
    return None


def compile_template(text: str, language: str) -> Sentence:
    """Parse with hassil and normalise the literals; raises ``IntentTemplateError``."""
    problem = syntax_error(text)
    if problem is not None:
        raise problem
    try:
        sentence = parse_sentence(text, keep_text=True)
    except Exception as exc:  # hassil raises ParseError, AssertionError, ValueError
        raise IntentTemplateError(f"cannot parse template: {exc}") from exc
    _normalize_literals(sentence.expression, language)
    return sentence


def _normalize_literals(expr: Expression, language: str) -> None:
    if isinstance(expr, TextChunk):
        if expr.text.strip():
            expr.text = normalize_chunk(expr.text, language)
    elif isinstance(expr, Group):
        for item in expr.items:
            _normalize_literals(item, language)


def walk(expr: Expression) -> Iterator[Expression]:
    """Every node of an expression tree (rules are not followed)."""
    yield expr
    if isinstance(expr, Group):
        for item in expr.items:
            yield from walk(item)


def slot_refs(
    expr: Expression, rules: dict[str, Sentence] | None = None, depth: int = 0
) -> list[ListReference]:
    """Slot references in the template; with ``rules``, also those inside used rules."""
    refs: list[ListReference] = []
    for node in walk(expr):
        if isinstance(node, ListReference):
            refs.append(node)
        elif isinstance(node, RuleReference) and rules and depth < 8 and node.rule_name in rules:
            refs += slot_refs(rules[node.rule_name].expression, rules, depth + 1)
    return refs


def rule_refs(expr: Expression) -> list[str]:
    return [e.rule_name for e in walk(expr) if isinstance(e, RuleReference)]


def literal_words(expr: Expression, rules: dict[str, Sentence], depth: int = 0) -> set[str]:
    """All literal words anywhere in the template (rules followed)."""
    words: set[str] = set()
    for node in walk(expr):
        if isinstance(node, TextChunk):
            words.update(node.text.split())
        elif isinstance(node, RuleReference) and depth < 8 and node.rule_name in rules:
            words |= literal_words(rules[node.rule_name].expression, rules, depth + 1)
    return words


def required_words(expr: Expression, rules: dict[str, Sentence], depth: int = 0) -> set[str]:
    """Literal words on every path through the template (rules followed)."""
    if isinstance(expr, TextChunk):
        return set(expr.text.split())
    if isinstance(expr, Alternative):
        if expr.is_optional or not expr.items:
            return set()
        branches = [required_words(item, rules, depth + 1) for item in expr.items]
        return set.intersection(*branches)
    if isinstance(expr, (Group, Permutation)):
        out: set[str] = set()
        for item in expr.items:
            out |= required_words(item, rules, depth + 1)
        return out
    if isinstance(expr, RuleReference) and depth < 8 and expr.rule_name in rules:
        return required_words(rules[expr.rule_name].expression, rules, depth + 1)
    return set()


def required_clauses(
    expr: Expression, rules: dict[str, Sentence], depth: int = 0
) -> set[frozenset[str]]:
    """Word sets of which every match contains at least one word each (CNF).

    "(book|reserve) [a] table" gives {{book, reserve}, {table}}: a cheap, sound
    test that rules a template out before matching.
    """
    if isinstance(expr, TextChunk):
        return {frozenset((word,)) for word in expr.text.split()}
    if isinstance(expr, Alternative):
        if expr.is_optional or not expr.items:
            return set()
        branches = [required_clauses(item, rules, depth + 1) for item in expr.items]
        if not all(branches):
            return set()
        return {frozenset().union(*(min(b, key=len) for b in branches))}
    if isinstance(expr, (Group, Permutation)):
        out: set[frozenset[str]] = set()
        for item in expr.items:
            out |= required_clauses(item, rules, depth + 1)
        return out
    if isinstance(expr, RuleReference) and depth < 8 and expr.rule_name in rules:
        return required_clauses(rules[expr.rule_name].expression, rules, depth + 1)
    return set()
