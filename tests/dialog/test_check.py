"""``voicebot check``: pipelines, flows and intents together, every problem as file:line:col."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.paths import (
    PIPELINES,
    RESTAURANT_FLOW,
    RESTAURANT_INTENTS,
    RESTAURANT_PIPELINE,
    ROOT,
)


def check(*paths: Path) -> tuple[int, list[str], str]:
    proc = subprocess.run(
        [sys.executable, "-m", "voicebot", "check", *map(str, paths)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    return proc.returncode, proc.stderr.splitlines(), proc.stdout


def rel(lines: list[str], path: Path) -> list[str]:
    return [line.replace(f"{path}:", "") for line in lines if line.startswith(str(path))]


def test_reference_bots_are_clean():
    """No errors; no warnings about the flow or pipelines (the intent files have their own)."""
    code, errs, out = check(RESTAURANT_PIPELINE, PIPELINES / "restaurant_de.yaml")
    assert code == 0 and not [e for e in errs if not e.startswith(str(RESTAURANT_INTENTS))], errs
    assert "restaurant.yaml: ok" in out and "restaurant_de.yaml: ok" in out
    # the files directly, checked as one bot
    code, errs, out = check(RESTAURANT_FLOW, RESTAURANT_INTENTS)
    assert code == 0 and not [e for e in errs if not e.startswith(str(RESTAURANT_INTENTS))], errs
    assert f"{RESTAURANT_FLOW}: ok" in out


BAD_FLOW = """\
flow: bad
languages: [en, de]
start: welcome
states:
  welcome:
    say: {en: "Hi {name", de: "Hallo"}
    ask:
      en: "How can I help?"
    on:
      book: booking
      bye: "@repeat"
    nxt: booked
  booked:
    say: {en: "Done.", de: "Fertig."}
    end: true
    next: welcome
  lonely:
    say: {en: "x", de: "y", fr: "z"}
  confirming:
    ask: {en: "Sure?", de: "Sicher?"}
    confirm: {affirm: booked}
    next: booked
  hours:
    branch:
      - if: {open: null}
        goto: booked
    call: {function: "nowhere.module:fn"}
"""


def test_flow_errors_and_warnings_with_positions(tmp_path):
    path = tmp_path / "bad_flow.yaml"
    path.write_text(BAD_FLOW)
    code, errs, out = check(path)
    assert code == 1 and "ok" not in out
    assert rel(errs, path) == [
        "1:1: W404 warning: no intent files given: intents and slots were not checked "
        "(pass them too, or the pipeline)",
        "6:19: E409 template syntax: unclosed '{' (write '{{' for a literal brace)",
        "8:7: E408 missing language variant de",
        "10:13: E404 unknown state 'booking' (did you mean 'booked'?)",
        "12:5: E401 unknown key 'nxt' in state 'welcome' (did you mean 'next'?)",
        "13:3: W401 warning: state 'booked' is unreachable from 'welcome'",
        "16:5: E412 state 'booked' has both 'end' and 'next': a state either waits (ask), "
        "moves on (next, branch) or finishes (end, transfer)",
        "17:3: W401 warning: state 'lonely' is unreachable from 'welcome'",
        "17:3: W402 warning: dead end: state 'lonely' neither asks nor moves on "
        "(add ask, next, end or transfer)",
        "18:29: W403 warning: variant 'fr' is not one of the flow's languages (en, de)",
        "19:3: W401 warning: state 'confirming' is unreachable from 'welcome'",
        "20:5: E412 state 'confirming' has both 'next' and 'ask': a state either waits (ask), "
        "moves on (next, branch) or finishes (end, transfer)",
        "21:14: E410 'confirm' needs both 'affirm' and 'deny' targets (missing deny)",
        "23:3: W401 warning: state 'hours' is unreachable from 'welcome'",
        "25:9: E414 the last branch rule needs no 'if': it is the default when nothing else "
        "applies",
        "27:22: E411 cannot import 'nowhere.module': No module named 'nowhere'",
    ]


CROSS_FLOW = """\
flow: cross
languages: [en, de]
start: welcome
global:
  goodby: bye
states:
  welcome:
    ask: {en: "How can I help?", de: "Wie kann ich helfen?"}
    on:
      book_tabel: ask_size
      opening_hours: hours
  ask_size:
    collect: party
    ask: {en: "How many for {dya}?", de: "Wie viele?"}
    next: sure
  sure:
    ask: {en: "A table for {party_size}?", de: "Ein Tisch für {party_size}?"}
    confirm: {affirm: bye, deny: welcome}
  hours:
    call: {function: lookup, args: {table: hours, key: day}, returns: {open: clock}}
    say: {en: "Open at {open}, closes at {close}.", de: "Ab {open}."}
    next: welcome
  bye:
    say: {en: "Bye.", de: "Tschüss."}
    end: true
"""


def test_flow_against_intents_did_you_mean(tmp_path):
    flow = tmp_path / "cross_flow.yaml"
    flow.write_text(CROSS_FLOW)
    code, errs, _ = check(flow, RESTAURANT_INTENTS)
    assert code == 1
    assert rel(errs, flow) == [
        "5:3: E405 unknown intent 'goodby' (did you mean 'goodbye'?)",
        "10:7: E405 unknown intent 'book_tabel' (did you mean 'book_table'?)",
        "13:14: E413 no intent has a slot 'party' (did you mean 'party_size'?)",
        "14:29: E406 undeclared slot 'dya' (did you mean 'day'?) (slots come from the intent "
        "files, values from a hook's 'returns')",
        "20:78: E406 unknown slot type 'clock' (a slot name, a slot type, or 'text')",
        "21:42: E406 undeclared slot 'close' (slots come from the intent files, values from a "
        "hook's 'returns')",
    ]


def test_pipeline_references_and_language(tmp_path):
    shutil.copy(RESTAURANT_FLOW, tmp_path / "flow.yaml")
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(
        "language: de\ndialog:\n  type: flow\n  flow: flow.yaml\n  intents: [intentz.yaml]\n"
    )
    code, errs, _ = check(pipeline)
    assert code == 1
    assert rel(errs, pipeline) == [
        f"5:13: E204 intents file 'intentz.yaml' not found (looked in {tmp_path})",
    ]
    pipeline.write_text("language: en\ndialog:\n  type: flow\n  flow: flow.yaml\n")
    assert rel(check(pipeline)[1], pipeline) == [
        "3:3: E103 missing required key 'intents' (dialog type 'flow')",
    ]


def test_missing_language_variant_for_the_pipeline(tmp_path):
    flow = tmp_path / "en_flow.yaml"
    flow.write_text(
        "flow: x\nlanguages: [en]\nstart: a\nstates:\n  a:\n    say: Hi.\n    end: true\n"
    )
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(
        f"language: de\ndialog:\n  type: flow\n  flow: {flow.name}\n"
        f"  intents: [{RESTAURANT_INTENTS}]\n"
    )
    code, errs, _ = check(pipeline)
    assert code == 1
    assert rel(errs, pipeline) == ["1:11: E415 the flow has no 'de' prompts (it speaks en)"]


def test_duplicate_states_across_flow_files(tmp_path):
    one = tmp_path / "one.yaml"
    one.write_text(
        "flow: x\nlanguages: [en]\nstart: a\nstates:\n  a:\n    say: Hi.\n"
        "    next: b\n  b:\n    say: Bye.\n    end: true\n"
    )
    two = tmp_path / "two.yaml"
    two.write_text("states:\n  b:\n    say: Ciao.\n    end: true\n")
    code, errs, _ = check(one, two, RESTAURANT_INTENTS)
    assert code == 1
    assert rel(errs, two) == [f"2:3: E407 state 'b' is already defined at {one}:8"]
