"""Every diagnostic code with its meaning; ``Diagnostic`` and ``ConfigError``.

A diagnostic is one mistake in a file, ``file:line:col: CODE message``. Its
code must be in ``CODES`` (constructing one with another code raises), and
``docs/diagnostics.md`` is generated from the table: ``python -m
voicebot.diagnostics > docs/diagnostics.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

from voicebot.errors import VoicebotError

# (heading, {code: one-line meaning}) in the order the docs list them
SECTIONS: tuple[tuple[str, dict[str, str]], ...] = (
    (
        "Any YAML file",
        {
            "E001": "the file cannot be read",
            "E002": "YAML syntax error",
            "E003": "merge keys (`<<`) are unsupported",
            "E004": "a mapping key is not a string",
            "E005": "a key is defined twice in one mapping",
        },
    ),
    (
        "Pipelines (`pipelines/*.yaml`)",
        {
            "E101": "a section that must be a mapping is not one",
            "E102": "unknown key (with a suggestion when one is close)",
            "E103": "a required key is missing (or empty where the configuration needs it)",
            "E104": "the values of a section do not fit together",
            "E105": "a value is not one of the allowed choices",
            "E106": "a value has the wrong type",
            "E107": "a number is out of its range",
            "E201": "unknown ASR model (neither a known name nor a model directory)",
            "E202": "the ASR model does not speak the pipeline's language",
            "E203": "the TTS voice is unknown or not installed",
            "E204": "a flow or intent file named by the pipeline is not found",
        },
    ),
    (
        "Intents (`intents/*.yaml`)",
        {
            "I100": "an intent file is not a mapping",
            "I101": "unknown key",
            "I102": "a value has the wrong type",
            "I103": "a required key is missing",
            "I110": "template syntax error",
            "I111": "a template uses an undeclared slot",
            "I112": "a template uses an unknown rule",
            "I113": "a rule refers to itself",
            "I114": "a slot is filled from two different definitions",
            "I120": "an intent has no templates for one of the file's languages",
            "I121": "templates for a language the file does not declare",
            "I122": "warning: a slot appears in the templates of one language only",
            "I130": "an intent is defined twice (across files)",
            "I131": "a slot definition is defined twice, differently",
            "I132": "a rule is defined twice, differently",
            "I140": "unknown slot type",
            "I141": "a slot option is invalid",
        },
    ),
    (
        "Flows (`intents/*_flow.yaml`), alone and against the intents",
        {
            "E401": "unknown key",
            "E402": "a value has the wrong type or is not allowed",
            "E403": "a required key is missing (or a key lacks the key it needs)",
            "E404": "unknown state (in flows and dialog tests)",
            "E405": "unknown intent (in flows and dialog tests)",
            "E406": "undeclared slot or value, or unknown slot type of a hook value",
            "E407": "a state is defined twice",
            "E408": "a prompt lacks a variant for one of the flow's languages",
            "E409": "prompt template syntax error",
            "E410": "`confirm` lacks its `affirm`/`deny` targets or intents",
            "E411": "a hook function or hook module is not found",
            "E412": "conflicting keys (waits and moves on; a digit menu key in digit entry)",
            "E413": "`collect` of a slot that no intent has",
            "E414": "branch rules: the default (no `if`) is not the last rule",
            "E415": "a language is not covered by the flow or the intents",
            "E416": "a top-level key or entry is defined in two flow files",
            "E417": "states loop without waiting for the caller",
            "E418": "a `dtmf` key is not one keypad key (0-9, `*`, `#`, A-D)",
            "E419": "a `transfer` target that is a URI (`sip:`, `sips:`, `tel:`) is malformed",
            "E420": "`transfer_failed` (what the bot says when a transfer fails) in a state "
            "without `transfer`",
            "W401": "warning: a state is unreachable from `start`",
            "W402": "warning: a dead end (a state that neither asks nor moves on)",
            "W403": "warning: a prompt variant for a language the flow does not speak",
            "W404": "warning: flow files checked without intent files",
            "W405": "warning: a `dtmf` key stands for an intent its state does not handle",
        },
    ),
    (
        "Dialog tests (`voicebot test-dialog`, `intents/tests/*.yaml`)",
        {
            "E501": "unknown key",
            "E502": "a value has the wrong type or is not allowed",
            "E503": "missing or conflicting keys (the bot, a step's input)",
        },
    ),
    (
        "Understanding corpora (`intents/corpus/*.yaml`)",
        {
            "E601": "not a corpus file, or an item that is not a mapping",
            "E602": "unknown key",
            "E603": "unknown state",
            "E604": "unknown intent",
            "E605": "unknown slot",
            "E606": "a value has the wrong type or is missing",
        },
    ),
    (
        "Server config (`voicebot serve --config server.yaml`)",
        {
            "E701": "the file or a section is not a mapping",
            "E702": "unknown key (with a suggestion when one is close)",
            "E703": "a value has the wrong type",
            "E704": "a value is out of its range (a port, a positive number, a SIP URI)",
            "E705": "a secret (a password, a token) in the file: it belongs in the environment",
            "E706": "`rtp_ports` is not a usable port range (LOW-HIGH within 1024-65535, "
            "at least an even port and the next)",
        },
    ),
)

CODES: dict[str, str] = {code: meaning for _, table in SECTIONS for code, meaning in table.items()}


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem at ``file:line:col`` (1-based); ``code`` is a key of ``CODES``."""

    file: str
    line: int
    col: int
    code: str
    message: str
    severity: str = "error"

    def __post_init__(self) -> None:
        if self.code not in CODES:
            raise ValueError(f"diagnostic code {self.code!r} is not in voicebot.diagnostics.CODES")

    def __str__(self) -> str:
        level = "" if self.severity == "error" else f"{self.severity}: "
        return f"{self.file}:{self.line}:{self.col}: {self.code} {level}{self.message}"


class ConfigError(VoicebotError):
    """One or more diagnostics; ``str()`` lists them one per line."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = diagnostics
        super().__init__("\n".join(str(d) for d in diagnostics))


def markdown() -> str:
    """The text of ``docs/diagnostics.md``."""
    out = [
        "# Diagnostics",
        "",
        "`voicebot check`, `voicebot test-dialog`, `voicebot serve` and every other command",
        "that reads YAML report each mistake as `file:line:col: CODE message`; warnings say",
        "`warning:` after the code and do not fail `voicebot check`. Codes starting with `E`",
        "are errors, `W` warnings; the intent codes (`I`) are errors except I122.",
        "",
        "Generated from `voicebot/diagnostics.py` (`python -m voicebot.diagnostics >",
        "docs/diagnostics.md`); a test checks that both agree and that every code the",
        "code can emit is listed.",
    ]
    for heading, table in SECTIONS:
        out += ["", f"## {heading}", "", "| Code | Meaning |", "| --- | --- |"]
        out += [f"| {code} | {meaning} |" for code, meaning in table.items()]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
