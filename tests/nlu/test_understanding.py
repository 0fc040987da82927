"""The understanding corpora at text level: what callers say, and what Whisper made of it.

The corpora (``intents/corpus/``) were written by helpers who saw only the bot's prompts
and the restaurant's facts; the ``heldout`` ones are never used to tune anything. The
``*.heard.yaml`` files hold what Whisper transcribed of each item spoken by the bundled
voices through each audio path (``voicebot bench understanding --store-heard``), so the
matcher is checked on real recognition errors without running any audio here.

The bounds are regression guards a little below the figures measured when they were set
(the README states the figures); the targets themselves live in the benchmark.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml

from tests.support.paths import CORPUS, PIPELINES
from voicebot.config import load_pipeline
from voicebot.diagnostics import ConfigError
from voicebot.dialog.bot import LoadedBot, load_bot
from voicebot.dialog.corpus import Summary, load_corpus, score_turn

PIPELINE_FILES = {"en": "restaurant.yaml", "de": "restaurant_de.yaml"}

# corpus -> (turn success at least, wrong-action rate at most) on the written text
TEXT_BOUNDS = {
    "restaurant_en_dev": (0.94, 0.02),
    "restaurant_en_heldout": (0.95, 0.02),
    "restaurant_de_dev": (0.95, 0.01),
    "restaurant_de_heldout": (0.95, 0.01),
    # a second held-out round, written after the first had been looked at
    "restaurant_en_heldout2": (0.91, 0.03),
    "restaurant_de_heldout2": (0.93, 0.03),
    # a third round of fresh phrasings, learnt from (dev)
    "restaurant_en_dev2": (0.91, 0.02),
    "restaurant_de_dev2": (0.94, 0.02),
    # a fourth round: repairs, railway times, ordinals, relative days, arithmetic counts
    "restaurant_en_dev3": (0.9, 0.02),
    "restaurant_de_dev3": (0.88, 0.02),
    # a third held-out round, never tuned on (measured 0.955 / 0.020 en, 0.973 / 0 de)
    "restaurant_en_heldout3": (0.94, 0.03),
    "restaurant_de_heldout3": (0.93, 0.02),
    # the fourth dev and held-out rounds (answers with a question strung on, dialect; one
    # brief): dev learnt from, held-out never tuned on (measured en / de: dev4 0.900 /
    # 0.025, 0.910 / 0; held-out 4 0.919 / 0.037, 0.878 / 0.011)
    "restaurant_en_dev4": (0.88, 0.04),
    "restaurant_de_dev4": (0.88, 0.02),
    "restaurant_en_heldout4": (0.90, 0.05),
    "restaurant_de_heldout4": (0.85, 0.03),
    # the fifth held-out round (a fresh brief: relative changes, regional callers), never
    # tuned on (measured en / de 0.912 / 0.025, 0.889 / 0.022)
    "restaurant_en_heldout5": (0.89, 0.04),
    "restaurant_de_heldout5": (0.86, 0.04),
    # the fifth dev round (same brief, learnt from; measured 0.981 / 0, 0.933 / 0.011)
    "restaurant_en_dev5": (0.95, 0.02),
    "restaurant_de_dev5": (0.90, 0.03),
    # the sixth held-out round, written at the end and scored once on the final code
    # (measured 0.933 / 0.027 en, 0.878 / 0.044 de)
    "restaurant_en_heldout6": (0.91, 0.04),
    "restaurant_de_heldout6": (0.85, 0.06),
    # the sixth dev round (everything at once, dates and counts said loosely; learnt
    # from; measured 0.920 / 0.053 en, 0.956 / 0.022 de)
    "restaurant_en_dev6": (0.90, 0.07),
    "restaurant_de_dev6": (0.93, 0.04),
    # the seventh held-out round (bad lines, elderly and non-native callers, regional
    # wording), scored once on the final code (measured 0.933 / 0.020 en, 0.900 / 0.022 de)
    "restaurant_en_heldout7": (0.91, 0.04),
    "restaurant_de_heldout7": (0.88, 0.03),
    # the eighth held-out round (all at once then corrected, answers as questions, bad
    # lines, regional and non-native callers, numbers said oddly), scored once when
    # written (0.900 / 0.060 en, 0.811 / 0.056 de), then never looked at; after dev
    # round 7 (the same brief) and the reviews 0.927 / 0.040, 0.856 / 0.044
    "restaurant_en_heldout8": (0.89, 0.07),
    "restaurant_de_heldout8": (0.82, 0.07),
    # the seventh dev round (round 8's brief, learnt from; measured 0.907 / 0.033 en,
    # 0.800 / 0.056 de before, 0.927 / 0.013, 0.878 / 0.022 after)
    "restaurant_en_dev7": (0.90, 0.03),
    "restaurant_de_dev7": (0.85, 0.04),
    # the ninth held-out round (a new brief: more than was asked, self-corrections, loose
    # numbers, answers with a request or a question strung on), scored once when written
    # (0.920 / 0.020 en, 0.833 / 0.011 de), then never looked at
    "restaurant_en_heldout9": (0.89, 0.04),
    "restaurant_de_heldout9": (0.80, 0.03),
    # the eighth dev round (round 9's brief, learnt from; measured 0.927 / 0.020 en,
    # 0.800 / 0.044 de before)
    "restaurant_en_dev8": (0.90, 0.04),
    "restaurant_de_dev8": (0.77, 0.06),
}
# (corpus, path) -> (turn success at least, wrong-action rate at most) on what Whisper heard
HEARD_BOUNDS = {
    # English: tiny.en with the question and its hint (asr.context: hints), as the
    # reference pipeline runs; measured when set (turn success / wrong action):
    # dev 0.750 / 0.045, 0.625 / 0.055; held-out 1-4 at 16 kHz 0.759 / 0.071,
    # 0.705 / 0.080, 0.735 / 0.080, 0.706 / 0.062; μ-law 0.606, 0.560, 0.580, 0.588
    ("restaurant_en_dev", "16k"): (0.72, 0.08),
    ("restaurant_en_dev", "ulaw"): (0.59, 0.09),
    ("restaurant_en_heldout", "16k"): (0.72, 0.10),
    ("restaurant_en_heldout", "ulaw"): (0.57, 0.11),
    ("restaurant_en_heldout2", "16k"): (0.67, 0.11),
    ("restaurant_en_heldout2", "ulaw"): (0.52, 0.11),
    ("restaurant_en_heldout3", "16k"): (0.70, 0.11),
    ("restaurant_en_heldout3", "ulaw"): (0.55, 0.12),
    ("restaurant_en_heldout4", "16k"): (0.67, 0.09),
    ("restaurant_en_heldout4", "ulaw"): (0.55, 0.08),
    # held-out 5: measured 0.750 / 0.081 at 16 kHz, 0.581 / 0.119 at μ-law
    ("restaurant_en_heldout5", "16k"): (0.72, 0.10),
    ("restaurant_en_heldout5", "ulaw"): (0.55, 0.14),
    ("restaurant_en_dev5", "16k"): (0.74, 0.07),
    ("restaurant_en_dev5", "ulaw"): (0.55, 0.10),
    # held-out 6: measured 0.713 / 0.047 at 16 kHz, 0.627 / 0.073 at μ-law
    ("restaurant_en_heldout6", "16k"): (0.69, 0.07),
    ("restaurant_en_heldout6", "ulaw"): (0.59, 0.10),
    # dev 6 and held-out 7: measured 0.720 / 0.073, 0.720 / 0.067 at 16 kHz; 0.547 /
    # 0.113, 0.580 / 0.087 at μ-law
    ("restaurant_en_dev6", "16k"): (0.69, 0.10),
    ("restaurant_en_dev6", "ulaw"): (0.52, 0.14),
    ("restaurant_en_heldout7", "16k"): (0.69, 0.09),
    ("restaurant_en_heldout7", "ulaw"): (0.55, 0.11),
    # German: espeak-ng through Whisper base with the question alone (asr.context:
    # prompt; hints add wrong actions here) is hard to recognise (WER ~0.6): the
    # recogniser, not the matcher, is the limit (measured 0.360, 0.353, 0.273, 0.336,
    # 0.244 at 16 kHz)
    ("restaurant_de_dev", "16k"): (0.33, 0.14),
    ("restaurant_de_heldout", "16k"): (0.32, 0.13),
    ("restaurant_de_heldout2", "16k"): (0.24, 0.15),
    ("restaurant_de_heldout3", "16k"): (0.30, 0.11),
    ("restaurant_de_heldout4", "16k"): (0.21, 0.13),
    ("restaurant_de_heldout5", "16k"): (0.31, 0.11),
    ("restaurant_de_dev5", "16k"): (0.28, 0.14),
    ("restaurant_de_heldout6", "16k"): (0.32, 0.14),
    # dev 6 and held-out 7: measured 0.333 / 0.100, 0.389 / 0.111
    ("restaurant_de_dev6", "16k"): (0.30, 0.13),
    ("restaurant_de_heldout7", "16k"): (0.35, 0.14),
}


def _bot(language: str) -> LoadedBot:
    return load_bot(load_pipeline(PIPELINES / PIPELINE_FILES[language]))


def _score(name: str, heard_path: str | None = None) -> dict[str, float]:
    corpus = load_corpus(CORPUS / f"{name}.yaml")
    loaded = _bot(corpus.language)
    corpus = load_corpus(CORPUS / f"{name}.yaml", loaded)
    matcher = loaded.matcher(corpus.language, corpus.today)
    texts: list[tuple[int, str]] = [(i, item.say) for i, item in enumerate(corpus.items)]
    if heard_path is not None:
        heard = yaml.safe_load((CORPUS / f"{name}.heard.yaml").read_text(encoding="utf-8"))
        texts = []
        for i, row in enumerate(heard["items"]):
            assert row["say"] == corpus.items[i].say, "the heard file is stale: rerun the bench"
            texts += [
                (i, text) for key, text in row["heard"].items() if key.split("/")[0] == heard_path
            ]
    summary = Summary()

    async def run() -> None:
        for i, text in texts:
            summary.add(await score_turn(loaded, matcher, corpus.items[i], corpus.language, text))

    asyncio.run(run())
    return summary.rates()


@pytest.mark.parametrize("name", sorted(TEXT_BOUNDS))
def test_corpus_text(name: str) -> None:
    success, wrong = TEXT_BOUNDS[name]
    rates = _score(name)
    assert rates["turns"] >= (100 if "_en_" in name else 80)
    assert rates["turn_success"] >= success, rates
    assert rates["wrong_action_rate"] <= wrong, rates


@pytest.mark.parametrize(("name", "path"), sorted(HEARD_BOUNDS))
def test_corpus_as_recognised(name: str, path: str) -> None:
    success, wrong = HEARD_BOUNDS[(name, path)]
    rates = _score(name, path)
    assert rates["turns"] >= (100 if "_en_" in name else 80)
    assert rates["turn_success"] >= success, rates
    assert rates["wrong_action_rate"] <= wrong, rates


def test_corpora_are_big_enough_and_held_out_sets_are_a_third() -> None:
    sizes: dict[str, dict[str, int]] = {}
    for path in CORPUS.glob("restaurant_*.yaml"):
        if path.name.endswith(".heard.yaml"):
            continue
        corpus = load_corpus(path, _bot("en" if "_en_" in path.name else "de"))
        split = "heldout" if "heldout" in path.stem else "dev"
        counts = sizes.setdefault(corpus.language, {})
        counts[split] = counts.get(split, 0) + len(corpus.items)
        assert corpus.written_by, path
    for language, least in (("en", 300), ("de", 150)):
        total = sum(sizes[language].values())
        assert total >= least and sizes[language]["heldout"] >= total / 3, sizes


def test_a_corpus_mistake_is_reported_at_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "language: en\ntoday: 2026-12-01\nitems:\n"
        "  - state: ask_tme\n    say: eight\n    intent: inform\n"
        "    slots: {tiem: '20:00'}\n    extra: 1\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as info:
        load_corpus(bad, _bot("en"))
    lines = [str(d) for d in info.value.diagnostics]
    assert any(
        f"{bad}:4:12: E603 unknown state 'ask_tme' (did you mean 'ask_time'?)" in line
        for line in lines
    ), lines
    assert any(
        ":7:13: E605 unknown slot 'tiem' (did you mean 'time'?)" in line for line in lines
    ), lines
    assert any(":8:5: E602 unknown key 'extra'" in line for line in lines), lines
