"""Intent YAML: the format, loading with positions, and validation diagnostics.

Format (one or more files; names are global across them)::

    languages: [en, de]          # optional; every intent must then have each language
    slots:                       # slot definitions (hassil "lists"), referenced as {name}
      party_size: {type: integer, min: 1, max: 20}
      day: {type: day}
      time: {type: time, prefer: evening}   # prefer: evening | morning | null
      order_number: {type: digits, min_len: 4, max_len: 10}
      size: {type: list, values: {small: {en: [little], de: [klein]}, large: null}}
      note: {type: wildcard, max_words: 6}
    rules:                       # reusable fragments per language, used as <name>
      en: {table: "(table|reservation)"}
    skip_words:                  # ignored words per language
      en: [please, "thank you"]
    intents:
      book_table:
        description: Caller wants to reserve a table   # optional, shown to the LLM
        interim: false           # true: may fire on partial transcripts (barge-in)
        templates:
          en: ["book [a] <table> [for {party_size} people]", "..."]
          de: ["..."]

``{type_name:slot}`` fills slot ``slot`` from definition ``type_name``.
Diagnostic codes: I1xx, listed with their meanings in ``voicebot.diagnostics``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hassil import Sentence

from voicebot.diagnostics import Diagnostic
from voicebot.nlu.slots import SLOT_KINDS, ListSlot, SlotType
from voicebot.nlu.templates import IntentTemplateError, compile_template, rule_refs
from voicebot.nlu.wordgraph import WordGraph
from voicebot.yamlsrc import NodePath, Reader, YamlFile, did_you_mean, load

TOP_KEYS = ("languages", "slots", "rules", "skip_words", "none_examples", "intents")
INTENT_KEYS = ("description", "interim", "spot", "templates", "examples")
SLOT_OPTIONS: dict[str, tuple[str, ...]] = {
    "integer": ("min", "max"),
    "count": ("min", "max"),
    "digits": ("min_len", "max_len"),
    "day": (),
    "time": ("prefer",),
    "list": ("values",),
    "wildcard": ("max_words",),
}


@dataclass
class IntentDef:
    name: str
    slots: dict[str, SlotType] = field(default_factory=dict)  # slot name -> type
    interim: bool = False
    # "anywhere": recognised inside a longer utterance ("..., bye bye"); "start": opening
    # one ("yes, please cancel it"); "": only as the whole utterance
    spot: str = ""
    languages: tuple[str, ...] = ()
    description: str = ""
    templates: dict[str, list[str]] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)  # lang -> sentences
    file: str = ""
    line: int = 0


@dataclass
class LanguageData:
    """Everything the matcher needs for one language, compiled at load."""

    sentences: dict[str, list[Sentence]] = field(default_factory=dict)  # intent -> templates
    rules: dict[str, Sentence] = field(default_factory=dict)
    skip_words: list[str] = field(default_factory=list)
    graph: WordGraph = field(default_factory=WordGraph)  # every template, compiled


@dataclass
class IntentSet:
    intents: dict[str, IntentDef] = field(default_factory=dict)
    slot_types: dict[str, SlotType] = field(default_factory=dict)  # definition name -> type
    languages: tuple[str, ...] = ()
    compiled: dict[str, LanguageData] = field(default_factory=dict)
    none_examples: dict[str, list[str]] = field(default_factory=dict)  # no intent of the bot
    digest: str = ""  # sha256 of everything read: keys the trained statistical tier

    def slot_definitions(self, intent: str | None = None) -> dict[str, str]:
        """Slot name -> the definition (type) that fills it, for ``intent`` or over every
        intent (the first binding wins)."""
        out: dict[str, str] = {}
        intents = self.intents.values() if intent is None else [self.intents[intent]]
        for definition_of in intents:
            for slot, slot_type in definition_of.slots.items():
                name = next((n for n, t in self.slot_types.items() if t is slot_type), None)
                if name is not None:
                    out.setdefault(slot, name)
        return out


@dataclass
class _Def:
    """A raw definition and where it was written."""

    src: YamlFile
    path: NodePath
    data: Any


class IntentReader(Reader):
    """Reads intent files (pass 1); ``intent_compile`` compiles what was read (pass 2)."""

    def __init__(self) -> None:
        super().__init__()
        self.files: dict[str, YamlFile] = {}  # every file read, in reading order
        self.slots: dict[str, _Def] = {}
        self.rules: dict[str, dict[str, _Def]] = {}
        self.skip: dict[str, list[str]] = {}
        self.none_examples: dict[str, list[str]] = {}
        self.intents: dict[str, _Def] = {}
        self.file_languages: dict[str, list[str]] = {}
        self.languages: list[str] = []

    def expect(
        self,
        src: YamlFile,
        path: NodePath,
        value: Any,
        kind: type,
        what: str,
        *,
        code: str = "I102",
    ) -> bool:
        return super().expect(src, path, value, kind, what, code=code)

    def keys(
        self,
        src: YamlFile,
        path: NodePath,
        data: dict[str, Any],
        allowed: tuple[str, ...],
        what: str,
    ) -> None:
        self.unknown_keys(src, data, path, allowed, "I101", noun=f"{what} key")

    def digest(self) -> str:
        """sha256 over the text of every file read (in reading order; paths not included)."""
        h = hashlib.sha256()
        for src in self.files.values():
            h.update("\n".join(src.lines).encode() + b"\0")
        return h.hexdigest()

    # --- pass 1: read files --------------------------------------------------------

    def read(self, path: str | Path) -> None:
        src, diags = load(path)
        self.diags.extend(diags)
        if any(d.code == "E001" for d in diags):  # not read
            return
        self.files[src.file] = src
        data = src.data
        if data is None and diags:
            return
        if not isinstance(data, dict):
            self.err(src, (), "I100", "an intent file must be a mapping with 'intents'")
            return
        self.keys(src, (), data, TOP_KEYS, "top-level")
        if "intents" not in data:
            self.err(src, (), "I103", "missing key 'intents'")
        langs = data.get("languages")
        if langs is not None and self.expect(src, ("languages",), langs, list, "'languages'"):
            good = [
                lang
                for i, lang in enumerate(langs)
                if self.expect(src, ("languages", i), lang, str, "a language")
            ]
            self.file_languages[src.file] = good
            self.languages += [lang for lang in good if lang not in self.languages]
        self.read_named(src, data, "slots", self.slots, "I131", "slot definition")
        for section in ("rules", "skip_words", "none_examples"):
            value = data.get(section)
            if value is not None and self.expect(src, (section,), value, dict, f"'{section}'"):
                for lang, entries in value.items():
                    self.read_language_section(src, section, lang, entries)
        self.read_named(src, data, "intents", self.intents, "I130", "intent")

    def read_named(
        self,
        src: YamlFile,
        data: dict[str, Any],
        section: str,
        table: dict[str, _Def],
        code: str,
        what: str,
    ) -> None:
        value = data.get(section)
        if value is None or not self.expect(src, (section,), value, dict, f"'{section}'"):
            return
        for name, body in value.items():
            first = table.get(name)
            if first is not None and (code == "I130" or first.data != body):
                line, col = first.src.at(first.path, key=True)
                self.err(
                    src,
                    (section, name),
                    code,
                    f"{what} {name!r} already defined at {first.src.file}:{line}:{col}",
                    key=True,
                )
                continue
            table.setdefault(name, _Def(src, (section, name), body))

    def read_language_section(self, src: YamlFile, section: str, lang: str, entries: Any) -> None:
        path: NodePath = (section, lang)
        if section in ("skip_words", "none_examples"):
            what = "a skip word" if section == "skip_words" else "an example sentence"
            target = self.skip if section == "skip_words" else self.none_examples
            if self.expect(src, path, entries, list, f"{section}.{lang}"):
                words = [
                    w for i, w in enumerate(entries) if self.expect(src, (*path, i), w, str, what)
                ]
                target.setdefault(lang, []).extend(words)
            return
        if not self.expect(src, path, entries, dict, f"rules.{lang}"):
            return
        table = self.rules.setdefault(lang, {})
        for name, body in entries.items():
            if not self.expect(src, (*path, name), body, str, f"rule <{name}>"):
                continue
            first = table.get(name)
            if first is not None and first.data != body:
                line, col = first.src.at(first.path, key=True)
                self.err(
                    src,
                    (*path, name),
                    "I132",
                    f"rule <{name}> ({lang}) already defined at {first.src.file}:{line}:{col}",
                    key=True,
                )
                continue
            table.setdefault(name, _Def(src, (*path, name), body))

    # --- pass 2: slot types, rules, templates ------------------------------------------

    def slot_type(self, name: str, d: _Def) -> SlotType | None:
        src, path, body = d.src, d.path, d.data
        if not self.expect(src, path, body, dict, f"slot definition {name!r}"):
            return None
        kind = body.get("type")
        if kind is None:
            self.err(
                src,
                path,
                "I103",
                f"slot definition {name!r} needs a 'type' ({', '.join(SLOT_KINDS)})",
                key=True,
            )
            return None
        if kind not in SLOT_KINDS:
            hint = did_you_mean(kind, SLOT_KINDS)
            self.err(
                src,
                (*path, "type"),
                "I140",
                f"unknown slot type {kind!r}{hint}; use one of {', '.join(SLOT_KINDS)}",
            )
            return None
        options = SLOT_OPTIONS[kind]
        self.keys(src, path, body, ("type", *options), f"{kind} slot")
        args: dict[str, Any] = {}
        for opt in options:
            if opt not in body:
                continue
            value = body[opt]
            if opt == "prefer":
                if value not in ("evening", "morning", None):
                    self.err(
                        src,
                        (*path, opt),
                        "I141",
                        f"prefer must be evening, morning or null, got {value!r}",
                    )
                    continue
            elif opt == "values":
                value = self.list_values(src, (*path, opt), value)
            elif not self.expect(src, (*path, opt), value, int, f"{opt!r}"):
                continue
            args[opt] = value
        slot = SLOT_KINDS[kind](**args)
        problem = _option_problem(slot)
        if problem:
            self.err(src, path, "I141", f"slot {name!r}: {problem}", key=True)
            return None
        return slot

    def list_values(
        self, src: YamlFile, path: NodePath, value: Any
    ) -> dict[str, dict[str, list[str]]]:
        out: dict[str, dict[str, list[str]]] = {}
        if isinstance(value, list):
            value = {v: None for v in value if self.expect(src, path, v, str, "a list value")}
        if not self.expect(src, path, value, dict, "'values'"):
            return out
        for canon, syn in value.items():
            at = (*path, canon)
            if syn is None:
                out[canon] = {}
            elif isinstance(syn, list):
                words = [
                    s for i, s in enumerate(syn) if self.expect(src, (*at, i), s, str, "a synonym")
                ]
                out[canon] = {"*": words}  # the same synonyms in every language
            elif self.expect(src, at, syn, dict, f"synonyms of {canon!r}"):
                out[canon] = {}
                for lang, words in syn.items():
                    words = [words] if isinstance(words, str) else words
                    if self.expect(src, (*at, lang), words, list, f"{lang} synonyms"):
                        out[canon][lang] = [
                            w
                            for i, w in enumerate(words)
                            if self.expect(src, (*at, lang, i), w, str, "a synonym")
                        ]
        return out

    def template_diag(self, d: _Def, code: str, msg: str, offset: int | None = None) -> None:
        """Report at the template string, at ``offset`` inside it when it can be located."""
        line, col = d.src.at(d.path)
        text = d.data if isinstance(d.data, str) else ""
        raw = d.src.lines
        if offset is not None and 0 < line <= len(raw):
            src_line = raw[line - 1][col - 1 :]
            if src_line[:1] in "\"'" and src_line[1 : 1 + len(text)] == text:
                col += 1 + offset
            elif src_line[: len(text)] == text:
                col += offset
        self.diags.append(Diagnostic(d.src.file, line, col, code, msg))

    def compile(self, d: _Def, lang: str, what: str) -> Sentence | None:
        try:
            return compile_template(d.data, lang)
        except IntentTemplateError as exc:
            self.template_diag(d, "I110", f"{what}: {exc}", exc.offset)
            return None

    def rules_for(self, lang: str) -> dict[str, Sentence]:
        compiled: dict[str, Sentence] = {}
        defs = self.rules.get(lang, {})
        for name, d in defs.items():
            sentence = self.compile(d, lang, f"rule <{name}>")
            if sentence is not None:
                compiled[name] = sentence
        for name, sentence in compiled.items():
            for ref in rule_refs(sentence.expression):
                if ref not in defs:
                    self.unknown_rule(defs[name], ref, lang)
            cycle = _cycle(name, compiled)
            if cycle:
                self.template_diag(
                    defs[name],
                    "I113",
                    f"rule <{name}> refers to itself "
                    f"through {' -> '.join(f'<{c}>' for c in cycle)}",
                    _find(defs[name].data, f"<{cycle[0]}>"),
                )
        for name in [n for n in compiled if _cycle(n, compiled)]:
            del compiled[name]
        return compiled

    def unknown_rule(self, d: _Def, ref: str, lang: str) -> None:
        hint = did_you_mean(ref, self.rules.get(lang, {}), show=lambda rule: f"<{rule}>")
        self.template_diag(
            d,
            "I112",
            f"unknown rule <{ref}> for language {lang!r}{hint}",
            _find(d.data, f"<{ref}>"),
        )


def _option_problem(slot: SlotType) -> str | None:
    for lo, hi in (("min", "max"), ("min_len", "max_len")):
        a, b = getattr(slot, lo, None), getattr(slot, hi, None)
        if a is not None and b is not None and a > b:
            return f"{lo} ({a}) is greater than {hi} ({b})"
    if getattr(slot, "min_len", 1) < 1:
        return "min_len must be at least 1"
    if slot.max_words < 1:
        return "max_words must be at least 1"
    if isinstance(slot, ListSlot) and not slot.values:
        return "a list needs at least one value"
    return None


def _find(text: Any, needle: str) -> int | None:
    if not isinstance(text, str):
        return None
    i = text.find(needle)
    return i if i >= 0 else None


def _cycle(name: str, rules: dict[str, Sentence]) -> list[str]:
    """The path back to ``name`` through rule references, or [] if there is none."""
    stack = [(ref, [ref]) for ref in rule_refs(rules[name].expression)]
    seen: set[str] = set()
    while stack:
        current, path = stack.pop()
        if current == name:
            return path
        if current in seen or current not in rules:
            continue
        seen.add(current)
        stack.extend((ref, [*path, ref]) for ref in rule_refs(rules[current].expression))
    return []


__all__ = ["SLOT_OPTIONS", "IntentDef", "IntentReader", "IntentSet", "LanguageData"]
