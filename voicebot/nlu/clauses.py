"""A turn's clauses: where a caller strings a question onto an answer.

"Eight, and can you also tell me if you open on Mondays?" is an answer and a
question; so is "Yes please. What time do you close?". ``clauses`` cuts a
transcript, as the recogniser wrote it (punctuation kept), into the stretches a
flow can take one by one: at every sentence end and dash, and where a question lead
("can you", "are you", "what", "wann", "haben Sie" ...) follows a comma or an
"and" ("und"). The joining words ("and", "oh and", "also") belong to neither
stretch. A stretch is a range of ``text.split()`` indexes, so words the
recogniser marked unsure map onto it.
"""

from __future__ import annotations

_LEADS = {
    "en": frozenset(
        "can could would will do does did are is what whats when how till until "
        "which where any".split()
    ),
    "de": frozenset(
        "können könnten kann könnt haben habt hat sind seid ist wann wie bis "
        "welche gibt gibts macht machen darf dürfen dürfte muss müssen soll sollte "
        "wo was warum hätten".split()
    ),
}
_JOINS = {
    "en": frozenset("and also plus oh".split()),
    "de": frozenset("und außerdem noch übrigens ach".split()),
}
_STRIP = ".,!?;:\"'()"
_DASHES = frozenset({"-", "–", "—", "--"})


def _bare(word: str) -> str:
    return word.strip(_STRIP).lower()


def clauses(text: str, language: str) -> list[tuple[int, int]]:
    """The stretches of ``text.split()`` (start, end) the caller said one after another;
    one stretch for a turn with a single request."""
    words = text.split()
    leads, joins = _LEADS.get(language, frozenset()), _JOINS.get(language, frozenset())
    out: list[tuple[int, int]] = []
    start = 0
    i = 1
    while i < len(words):
        before = words[i - 1]
        if before.endswith((".", "!", "?")):
            cut, resume = i, i
        elif words[i] in _DASHES:  # "Half seven - oh, and is there wheelchair access?"
            cut, resume = i, i + 1
        else:
            # a run of joining words, then a question lead: "..., and can you ...",
            # "... and also what time ...", "..., are you open ..."
            j = i
            while j < len(words) and _bare(words[j]) in joins and j - i < 3:
                j += 1
            opened = before.endswith(",") or (j > i and _bare(words[i]) in {"and", "und"})
            if not (opened and j < len(words) and _bare(words[j]) in leads):
                i += 1
                continue
            cut, resume = i, j
        if cut > start:
            out.append((start, cut))
        start = resume
        i = resume + 1
    if start < len(words):
        out.append((start, len(words)))
    return out or [(0, len(words))]


# A German verb of doing first, then "Sie", closed by a full stop, tells rather than asks:
# "Machen Sie das." (with a question mark it asks: "Machen Sie das auch?"; "Haben Sie
# einen Parkplatz." is a question the recogniser wrote without one)
_POLITE = {"de": "sie"}
_IMPERATIVES = {
    "de": frozenset("machen buchen reservieren nehmen notieren schreiben tragen stornieren".split())
}


def is_question(text: str, language: str) -> bool:
    """The stretch asks: it ends with a question mark or opens with a question lead."""
    words = [w for w in (_bare(w) for w in text.split()) if w]
    joins = _JOINS.get(language, frozenset())
    while words and words[0] in joins:
        words = words[1:]
    if text.rstrip().endswith("?"):
        return True
    if (
        len(words) > 1
        and words[0] in _IMPERATIVES.get(language, frozenset())
        and words[1] == _POLITE.get(language)
        and text.rstrip()[-1:] in ".!"
    ):
        return False  # an imperative: "Buchen Sie das."
    return bool(words and words[0] in _LEADS.get(language, ()))


def joined(words: list[str], stretches: list[tuple[int, int]]) -> tuple[str, list[int]]:
    """The text of ``stretches`` said together, and the original index of each word."""
    kept = [k for a, b in stretches for k in range(a, b)]
    return " ".join(words[k] for k in kept), kept
