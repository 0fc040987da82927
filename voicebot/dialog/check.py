"""``voicebot check``: pipelines with everything they reference, or flow/intent files directly.

Each diagnostic is printed once as ``file:line:col: CODE message`` (warnings
say so), sorted by file and position; the exit status is 1 when any is an error.
Flow and intent files given directly are checked together, as one bot.
"""

from __future__ import annotations

import sys
from pathlib import Path

from voicebot.diagnostics import ConfigError, Diagnostic
from voicebot.yamlsrc import load

FLOW_KEYS = {"states", "start"}
INTENT_KEYS = {"intents", "slots"}


def classify(path: str | Path) -> str:
    """``pipeline``, ``flow`` or ``intents`` by the file's top-level keys."""
    src, _ = load(path)
    keys = set(src.data) if isinstance(src.data, dict) else set()
    if keys & FLOW_KEYS:
        return "flow"
    if keys & INTENT_KEYS and not keys & {"dialog", "asr", "tts", "vad"}:
        return "intents"
    return "pipeline"


def check_pipeline(path: str) -> list[Diagnostic]:
    from voicebot.config import load_pipeline
    from voicebot.dialog.bot import check_pipeline_dialog

    try:
        config = load_pipeline(path)
    except ConfigError as exc:
        return exc.diagnostics
    return check_pipeline_dialog(config)[1]


def check_direct(flows: list[str], intents: list[str]) -> list[Diagnostic]:
    from voicebot.dialog.bot import check_files
    from voicebot.dialog.flow_file import read_flow

    if flows and intents:
        return check_files(flows, intents)[2]
    if flows:
        diags = read_flow(list(flows))[1]
        return [
            *diags,
            Diagnostic(
                flows[0],
                1,
                1,
                "W404",
                "no intent files given: intents and "
                "slots were not checked (pass them too, or the pipeline)",
                "warning",
            ),
        ]
    from voicebot.nlu.template_matcher import load_intents

    return load_intents(intents)[1]


def check_paths(paths: list[str]) -> int:
    kinds = {p: classify(p) for p in paths}
    diags: list[Diagnostic] = []
    by_file: dict[str, list[Diagnostic]] = {}
    for path in paths:
        if kinds[path] == "pipeline":
            by_file[path] = check_pipeline(path)
            diags += by_file[path]
    flows = [p for p in paths if kinds[p] == "flow"]
    intents = [p for p in paths if kinds[p] == "intents"]
    if flows or intents:
        direct = check_direct(flows, intents)
        diags += direct
        for p in flows + intents:
            by_file[p] = direct
    unique = sorted(set(diags), key=lambda d: (d.file, d.line, d.col, d.code, d.message))
    for diag in unique:
        print(diag, file=sys.stderr)
    for path in paths:
        found = by_file.get(path, [])
        n_err = sum(d.severity == "error" for d in found)
        n_warn = len(found) - n_err
        if not n_err:
            extra = f" ({n_warn} warning{'s' * (n_warn != 1)})" if n_warn else ""
            print(f"{path}: ok{extra}")
    return 1 if any(d.severity == "error" for d in unique) else 0
