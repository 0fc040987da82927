"""Second pass over intent files: slot types, rules and templates compiled per language.

Everything that can be wrong about a template is found here, once, at load:
syntax (I110), undeclared slots (I111), unknown rules (I112), a slot name bound
to two definitions (I114), missing or undeclared languages (I120, I121), slots
present in one language only (I122, warning). A template with an error is left
out, so the rest of the set stays usable for tooling.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from hassil import Sentence

from voicebot.diagnostics import Diagnostic
from voicebot.nlu.intent_file import (
    INTENT_KEYS,
    IntentDef,
    IntentReader,
    IntentSet,
    LanguageData,
    _Def,
    _find,
)
from voicebot.nlu.normalize import normalize
from voicebot.nlu.slots import SlotType
from voicebot.nlu.templates import rule_refs, slot_refs
from voicebot.yamlsrc import did_you_mean


def load_intents(paths: Iterable[str | Path]) -> tuple[IntentSet, list[Diagnostic]]:
    """Load, validate and compile intent files; the set holds every valid part."""
    reader = IntentReader()
    for path in paths:
        reader.read(path)
    intent_set = compile_intents(reader)
    diags = sorted(set(reader.diags), key=lambda d: (d.file, d.line, d.col, d.code))
    return intent_set, diags


def compile_intents(r: IntentReader) -> IntentSet:
    """Build the ``IntentSet`` from what ``r`` read; problems go to ``r.diags``."""
    types: dict[str, SlotType] = {}
    for name, d in r.slots.items():
        slot = r.slot_type(name, d)
        if slot is not None:
            types[name] = slot
    defs: dict[str, tuple[IntentDef, dict[str, list[_Def]]]] = {}
    for name, d in r.intents.items():
        parsed = _intent(r, name, d)
        if parsed is not None:
            defs[name] = parsed
    languages = list(r.languages)
    for _, templates in defs.values():
        languages += [lang for lang in templates if lang not in languages]
    out = IntentSet(
        slot_types=types,
        languages=tuple(languages),
        none_examples={k: list(v) for k, v in r.none_examples.items()},
        digest=r.digest(),
    )
    bindings: dict[str, dict[str, dict[str, str]]] = {}  # intent -> lang -> slot -> definition
    for lang in languages:
        data = LanguageData(rules=r.rules_for(lang))
        for name, rule in data.rules.items():
            for ref in slot_refs(rule.expression):
                if ref.list_name not in r.slots:
                    _undeclared(r, r.rules[lang][name], ref.list_name)
        data.skip_words = sorted({normalize(w, lang) for w in r.skip.get(lang, [])} - {""})
        for name, (intent, templates) in defs.items():
            sentences: list[Sentence] = []
            bound = bindings.setdefault(name, {}).setdefault(lang, {})
            for d in templates.get(lang, []):
                sentence = _template(r, d, lang, data.rules, types, bound, intent)
                if sentence is not None:
                    sentences.append(sentence)
            if sentences:
                data.sentences[name] = sentences
                for sentence in sentences:
                    data.graph.add(name, sentence, data.rules)
        data.graph.finish()
        out.compiled[lang] = data
    for name, (intent, _) in defs.items():
        per_lang = bindings.get(name, {})
        for by_lang in per_lang.values():
            for slot_name, definition in by_lang.items():
                if definition in types:
                    intent.slots.setdefault(slot_name, types[definition])
        _check_slot_languages(r, r.intents[name], name, per_lang, intent.languages)
        out.intents[name] = intent
    return out


def _intent(r: IntentReader, name: str, d: _Def) -> tuple[IntentDef, dict[str, list[_Def]]] | None:
    src, path, body = d.src, d.path, d.data
    if not r.expect(src, path, body, dict, f"intent {name!r}"):
        return None
    r.keys(src, path, body, INTENT_KEYS, "intent")
    line, _ = src.at(path, key=True)
    intent = IntentDef(name=name, file=src.file, line=line)
    interim = body.get("interim", False)
    if r.expect(src, (*path, "interim"), interim, bool, "'interim'"):
        intent.interim = interim
    spot = body.get("spot", False)
    if spot not in (True, False, "start"):
        r.err(
            src,
            (*path, "spot"),
            "I102",
            "'spot' must be true (anywhere in a longer "
            f"utterance), start (opening one) or false, got {spot!r}",
        )
    else:
        intent.spot = "anywhere" if spot is True else (spot or "")
    examples = body.get("examples", {})
    if r.expect(src, (*path, "examples"), examples, dict, "'examples'"):
        for lang, items in examples.items():
            items = [items] if isinstance(items, str) else items
            if r.expect(src, (*path, "examples", lang), items, list, f"{lang} examples"):
                intent.examples[str(lang)] = [
                    t
                    for i, t in enumerate(items)
                    if r.expect(src, (*path, "examples", lang, i), t, str, "an example")
                ]
    description = body.get("description", "")
    if r.expect(src, (*path, "description"), description, str, "'description'"):
        intent.description = description
    raw = body.get("templates")
    templates: dict[str, list[_Def]] = {}
    if raw is None:
        r.err(src, path, "I103", f"intent {name!r} has no 'templates'", key=True)
        return intent, templates
    if not r.expect(src, (*path, "templates"), raw, dict, "'templates'"):
        return intent, templates
    declared = r.file_languages.get(src.file)
    for lang, items in raw.items():
        at = (*path, "templates", lang)
        if declared is not None and lang not in declared:
            r.err(
                src,
                at,
                "I121",
                f"intent {name!r}: language {lang!r} is not in this "
                f"file's languages [{', '.join(declared)}]",
                key=True,
            )
            continue
        items = [items] if isinstance(items, str) else items
        if not r.expect(src, at, items, list, f"{lang} templates"):
            continue
        templates[lang] = [
            _Def(src, (*at, i), t)
            for i, t in enumerate(items)
            if r.expect(src, (*at, i), t, str, "a template")
        ]
        intent.templates[lang] = [t.data for t in templates[lang]]
        if not templates[lang]:
            r.err(src, at, "I103", f"intent {name!r}: no {lang} templates")
    if declared is not None:
        for lang in declared:
            if lang not in raw:
                r.err(
                    src,
                    path,
                    "I120",
                    f"intent {name!r} has no {lang!r} templates (the file "
                    f"declares languages [{', '.join(declared)}])",
                    key=True,
                )
    intent.languages = tuple(lang for lang in templates if templates[lang])
    return intent, templates


def _template(
    r: IntentReader,
    d: _Def,
    lang: str,
    rules: dict[str, Sentence],
    types: dict[str, SlotType],
    bound: dict[str, str],
    intent: IntentDef,
) -> Sentence | None:
    sentence = r.compile(d, lang, f"intent {intent.name!r}")
    if sentence is None:
        return None
    ok = True
    for rule_name in rule_refs(sentence.expression):
        if rule_name not in rules:
            if rule_name not in r.rules.get(lang, {}):
                r.unknown_rule(d, rule_name, lang)
            ok = False
    for ref in slot_refs(sentence.expression):
        if ref.list_name not in r.slots:
            _undeclared(r, d, ref.list_name)
            ok = False
    for ref in slot_refs(sentence.expression, rules):
        if ref.list_name not in types:
            ok = False  # reported here, at its rule, or at its definition
            continue
        first = bound.setdefault(ref.slot_name, ref.list_name)
        if first != ref.list_name:
            r.template_diag(
                d,
                "I114",
                f"slot {ref.slot_name!r} of intent {intent.name!r} is "
                f"filled from {first!r} elsewhere, here from {ref.list_name!r}",
                _find(d.data, "{" + ref.list_name),
            )
            ok = False
    return sentence if ok else None


def _undeclared(r: IntentReader, d: _Def, name: str) -> None:
    hint = did_you_mean(name, r.slots, show=lambda slot: f"{{{slot}}}")
    r.template_diag(
        d,
        "I111",
        f"undeclared slot {{{name}}}: add it under 'slots'{hint}",
        _find(d.data, "{" + name),
    )


def _check_slot_languages(
    r: IntentReader,
    d: _Def,
    name: str,
    per_lang: dict[str, dict[str, str]],
    languages: tuple[str, ...],
) -> None:
    langs = [lang for lang in per_lang if lang in languages]
    if len(langs) < 2:
        return
    every = set().union(*(set(per_lang[lang]) for lang in langs))
    for lang in langs:
        for slot in sorted(every - set(per_lang[lang])):
            others = [x for x in langs if slot in per_lang[x]]
            r.err(
                d.src,
                d.path,
                "I122",
                f"intent {name!r}: slot {slot!r} appears in "
                f"{', '.join(others)} templates but in no {lang} template",
                key=True,
                severity="warning",
            )
