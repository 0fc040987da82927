"""Split a reply into clauses so synthesis (and playback) can start before the reply ends.

The first clause sets time-to-first-audio, so it is cut early: at the first comma once it
has ``min_chars``, or before a conjunction when a long first sentence has no usable
punctuation. Later clauses are synthesized while earlier ones play, so they stay longer
(whole sentences, commas only past ``comma_chars``), which keeps prosody natural.

Only punctuation followed by whitespace is a boundary, so "7.30", "19:30", "3,5" and
"z.B." stay whole; periods after abbreviations, initials and German ordinals ("am 3. Mai")
are not boundaries either. No text is dropped: the clauses hold every word, in order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Punctuation run, closing quotes/brackets, then whitespace or the end of the text; or a
# line break after a word (LLM output uses those as sentence ends too).
_BOUNDARY = re.compile(r"""([.!?…;:,]+)(["'”’“»«)\]]*)(?=\s|$)|(?<=[^\s.!?…;:,])[ \t]*\n""")

_ABBREVIATIONS = frozenset(
    """mr mrs ms dr prof st jr sr vs approx dept ave mt e.g i.e cf resp
    z.b nr bzw ca hr fr str evtl ggf inkl zzgl bspw sog vgl d.h u.a o.ä u.u s.o s.u
    dipl ing tel abs abt allg bzgl gem max min mind""".split()
)
_MONTHS = frozenset(
    """januar jänner februar märz april mai juni juli august september oktober november
    dezember january february march may june july october december""".split()
)
# Words before "3." that make it a German ordinal ("am 3. Mai", "im 2. Stock").
_ORDINAL_CONTEXT = frozenset(
    "am im um zum zur vom beim der die das den dem des ab bis seit ihr sein jeden jedem".split()
)
_CONJUNCTIONS = frozenset(
    """and but because which while although though whereas
    und aber denn weil dass sondern obwohl während wobei""".split()
)
_OPENERS = "\"'„“‘«»([¿¡"


@dataclass(slots=True)
class _Piece:
    text: str
    kind: str  # "sentence", "clause", "comma" or "end"


def split_clauses(
    text: str, min_chars: int = 10, *, comma_chars: int = 40, first_max_chars: int = 80
) -> list[str]:
    """Clauses of ``text`` in order, each with at least ``min_chars`` characters if possible.

    A comma ends the first clause when both sides have ``min_chars``, a later clause when
    both sides have ``comma_chars``; ``first_max_chars`` is how long the first clause may
    get before it is cut at a conjunction.
    """
    pieces = _pieces(text)
    clauses: list[str] = []
    current = ""
    for i, piece in enumerate(pieces):
        current = _join(current, piece.text)
        if piece.kind == "end":
            break
        if piece.kind == "comma":
            limit = min_chars if not clauses else comma_chars
            if len(current) < limit or _rest_of_sentence(pieces, i + 1) < limit:
                continue
        elif len(current) < min_chars:
            continue
        clauses.append(current)
        current = ""
    if current:
        if clauses and len(current) < min_chars:
            clauses[-1] = _join(clauses[-1], current)
        else:
            clauses.append(current)
    if clauses and len(clauses[0]) > first_max_chars:
        clauses[:1] = _cut_at_conjunction(clauses[0], min_chars)
    return clauses


def _pieces(text: str) -> list[_Piece]:
    """``text`` cut after every candidate boundary, whitespace normalised."""
    pieces: list[_Piece] = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        kind = _kind(text, match)
        if kind is None:
            continue
        chunk = " ".join(text[start : match.end()].split())
        start = match.end()
        if chunk:
            pieces.append(_Piece(chunk, kind))
        elif pieces and kind != "comma":
            pieces[-1].kind = "sentence"
    tail = " ".join(text[start:].split())
    if tail:
        pieces.append(_Piece(tail, "end"))
    elif pieces:
        pieces[-1].kind = "end"
    return pieces


def _kind(text: str, match: re.Match[str]) -> str | None:
    punct = match.group(1)
    if punct is None:
        return "sentence"  # line break
    if punct[0] == "." and not punct.startswith(".."):
        if _period_ends_sentence(text, match):
            return "sentence"
        punct = punct[1:]  # "z.B.," is a comma, "Nr." no boundary at all
        if not punct:
            return None
    if "..." in punct or "…" in punct:
        return "clause"
    if any(c in punct for c in ".!?"):
        return "sentence"
    if any(c in punct for c in ";:"):
        return "clause"
    return "comma"


def _period_ends_sentence(text: str, match: re.Match[str]) -> bool:
    before = text[: match.start()].split()
    if not before:
        return False
    word = before[-1].lstrip(_OPENERS)
    after = text[match.end() :].split(maxsplit=1)
    following = after[0].lstrip(_OPENERS) if after else ""
    if following[:1].islower():
        return False  # "ca. fünf", "p.m. tomorrow": a sentence would start with a capital
    if word.lower() in _ABBREVIATIONS or (len(word) == 1 and word.isalpha()):
        return False
    date = re.fullmatch(r"(\d{1,2})\.(\d{1,2})", word)
    if date and int(date[1]) <= 31 and int(date[2]) <= 12:
        return False  # "am 24.12. Abends"; "at 7.30. Then" still ends a sentence
    if re.fullmatch(r"\d{1,2}", word):
        previous = before[-2].lower() if len(before) > 1 else ""
        if previous in _ORDINAL_CONTEXT or following.lower().rstrip(".,!?;:") in _MONTHS:
            return False
    return True


def _rest_of_sentence(pieces: list[_Piece], start: int) -> int:
    """Length of the text from ``pieces[start]`` to the end of its sentence or clause."""
    total = 0
    for piece in pieces[start:]:
        total += len(piece.text) + 1
        if piece.kind != "comma":
            break
    return total


def _cut_at_conjunction(clause: str, min_chars: int) -> list[str]:
    """``clause`` cut before its first conjunction that leaves two reasonable halves."""
    words = clause.split(" ")
    for i in range(1, len(words)):
        if words[i].lower() not in _CONJUNCTIONS:
            continue
        head, tail = " ".join(words[:i]), " ".join(words[i:])
        if len(head) >= 2 * min_chars and len(tail) >= min_chars:
            return [head, tail]
    return [clause]


def _join(left: str, right: str) -> str:
    return f"{left} {right}" if left else right
