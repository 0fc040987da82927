"""The diagnostic table: every code the source can emit is in it and in docs/diagnostics.md."""

from __future__ import annotations

import re

import pytest

from tests.support.paths import DOCS, ROOT
from voicebot.diagnostics import CODES, SECTIONS, Diagnostic, markdown

DOC = DOCS / "diagnostics.md"
CODE = re.compile(r"""["']([EWI]\d{3})["']""")  # a code as a string literal


def emitted() -> dict[str, list[str]]:
    """Code -> the source files that write it as a literal (the table itself excluded)."""
    found: dict[str, list[str]] = {}
    for path in sorted((ROOT / "voicebot").rglob("*.py")):
        if path.name == "diagnostics.py" and path.parent.name == "voicebot":
            continue
        for code in CODE.findall(path.read_text(encoding="utf-8")):
            found.setdefault(code, []).append(str(path.relative_to(ROOT)))
    return found


def test_the_scan_finds_codes_of_every_reader() -> None:
    files = {f for paths in emitted().values() for f in paths}
    for reader in (
        "voicebot/yamlsrc.py",
        "voicebot/config.py",
        "voicebot/nlu/intent_file.py",
        "voicebot/dialog/flow_file.py",
        "voicebot/dialog/testing.py",
        "voicebot/dialog/corpus.py",
        "voicebot/dialog/check.py",
        "voicebot/server/server_config.py",
    ):
        assert reader in files


def test_every_emitted_code_is_in_the_table() -> None:
    missing = {code: files for code, files in emitted().items() if code not in CODES}
    assert not missing, f"codes emitted but not in voicebot.diagnostics.CODES: {missing}"


def test_the_table_has_no_dead_codes() -> None:
    dead = sorted(set(CODES) - set(emitted()))
    assert not dead, f"codes in the table that nothing emits: {dead}"


def test_every_code_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| ([EWI]\d{3}) \| .+ \|$", text, flags=re.M))
    assert set(emitted()) <= documented
    assert documented == set(CODES)


def test_the_committed_doc_is_the_generated_one() -> None:
    assert DOC.read_text(encoding="utf-8") == markdown(), (
        "docs/diagnostics.md is stale: python -m voicebot.diagnostics > docs/diagnostics.md"
    )


def test_codes_are_unique_across_sections_and_have_a_meaning() -> None:
    listed = [code for _, table in SECTIONS for code in table]
    assert len(listed) == len(set(listed)) == len(CODES)
    assert all(re.fullmatch(r"[EWI]\d{3}", code) and CODES[code] for code in CODES)


def test_codes_named_in_the_other_docs_exist() -> None:
    for doc in [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]:
        named = set(re.findall(r"\b([EWI]\d{3})\b", doc.read_text(encoding="utf-8")))
        assert named <= set(CODES), f"{doc.name} names unknown codes {sorted(named - set(CODES))}"


def test_a_diagnostic_with_an_unknown_code_cannot_be_made() -> None:
    with pytest.raises(ValueError, match="E999"):
        Diagnostic("f.yaml", 1, 1, "E999", "no such code")
    assert str(Diagnostic("f.yaml", 2, 3, "W401", "x", "warning")) == "f.yaml:2:3: W401 warning: x"
