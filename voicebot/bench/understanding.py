"""``voicebot bench understanding``: does the bot understand callers, through real audio?

Every utterance of the restaurant corpora (``intents/corpus/``: English and
German, the helper-written held-out sets reported apart from the dev sets) is
spoken by a bundled voice (Piper en_US, espeak-ng en-us, en-gb-x-rp (British
RP), en-gb-scotland; espeak-ng de at two pitches) at one of two speaking rates
- rotated, so every voice and rate is heard; ``--full`` speaks every item with
every voice at both rates - and passed through the audio paths a call takes:

* ``16k``: the pipeline's own rate;
* ``opus``: 48 kHz Opus at aiortc's bit rate, encoded and decoded with av (WebRTC);
* ``ulaw``: 8 kHz G.711 μ-law (a phone line), resampled as the pipeline does;
* ``g722``: G.722 at 16 kHz (a wideband SIP phone line; not in the default set);
* each again ``+noise``: pink noise and reversed babble at 10 dB SNR.

Then Whisper (each ``--models``, with and without the dialog context,
``--contexts``: none, the question, the question and how callers answer it)
transcribes it, and the flow in the item's state hears the transcript
(``dialog/corpus.py``). Reported per language, path, model, context and split:
WER, intent and slot accuracy, turn success, no-match rate, wrong-action rate,
matching p50/p99 (warm), ASR decode p50/p95.

Audio and transcripts are cached under ``$VOICEBOT_CACHE/bench/understanding``
(keyed by text, voice, rate, path, model, context), so a rerun after a matcher
change only re-matches. ``--store-heard`` writes the transcripts of one
configuration next to each corpus (``*.heard.yaml``): the test suite runs the
matcher on them without audio.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import hashlib
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from voicebot.bench.stats import percentile
from voicebot.frames import SecondPass

PATHS = ("16k", "opus", "ulaw", "16k+noise", "opus+noise", "ulaw+noise")
EXTRA_PATHS = ("g722", "g722+noise")  # on request (--paths): the wideband phone line
VOICES = {
    "en": (
        ("piper", "en_US-joe-medium"),
        ("espeak", "en-us"),
        ("espeak", "en-gb-x-rp"),
        ("espeak", "en-gb-scotland"),
    ),
    "de": (("espeak", "de"), ("espeak", "de+m3")),
}
# A slower and a faster caller around each voice's own pace: Piper's speed factor; espeak-ng
# at 165 words per minute times it (149 and 182 wpm, the range of conversational speech).
RATES = (0.9, 1.1)
SNR_DB = 10.0
PIPELINES = {"en": "restaurant", "de": "restaurant_de"}
DEFAULT_MODELS = {"en": ("tiny.en", "base"), "de": ("base",)}
NOISE_SENTENCES = {
    "en": [
        "The weather was fine all week and the market stayed open late on Thursday.",
        "Could somebody pass the salt, and has anyone seen my blue umbrella?",
        "We drove along the coast road until the lighthouse came into view.",
    ],
    "de": [
        "Das Wetter war die ganze Woche schön und der Markt hatte lange offen.",
        "Kann mir jemand das Salz geben, und hat wer meinen blauen Schirm gesehen?",
        "Wir fuhren die Küstenstrasse entlang, bis der Leuchtturm auftauchte.",
    ],
}


def _cache() -> Path:
    from voicebot.cache_dir import cache_dir

    path = cache_dir() / "bench" / "understanding"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _key(*parts: Any) -> str:
    return hashlib.sha256("\0".join(map(str, parts)).encode()).hexdigest()[:32]


# --- speech ---------------------------------------------------------------------------


def speak(text: str, engine: str, voice: str, rate: float) -> np.ndarray:
    """16 kHz int16 speech of ``text`` (cached)."""
    path = _cache() / "audio" / f"{_key('speech', engine, voice, rate, text)}.npy"
    if path.is_file():
        cached: np.ndarray = np.load(path)
        return cached
    from scipy.signal import resample_poly

    if engine == "piper":
        from voicebot.tts.piper import PiperEngine

        tts: Any = PiperEngine(voice, speed=rate, deterministic=True)
    else:
        from voicebot.tts.espeak import EspeakEngine

        tts = EspeakEngine(voice=voice, rate_wpm=round(165 * rate))
    audio = tts.synthesize_sync(text)
    if tts.sample_rate != 16000:
        audio = resample_poly(audio.astype(np.float32), 16000, tts.sample_rate)
    pcm = np.clip(audio, -32768, 32767).astype(np.int16)
    pcm = np.concatenate([np.zeros(3200, np.int16), pcm, np.zeros(3200, np.int16)])
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, pcm)
    return pcm


def noise_bed(language: str) -> np.ndarray:
    """Pink noise plus babble (bundled voices, time-reversed: speech-like, no words)."""
    from voicebot.audio.channels import pink_noise

    voice = VOICES[language][0]
    babble = [speak(t, *voice, 1.0)[::-1] for t in NOISE_SENTENCES[language]]
    n = max(len(b) for b in babble)
    mix = np.zeros(n, np.float64)
    for i, b in enumerate(babble):
        mix += np.roll(np.pad(b.astype(np.float64), (0, n - len(b))), i * n // 3)
    mix /= np.abs(mix).max() or 1.0
    pink = pink_noise(n, seed=1).astype(np.float64) / 8000
    return ((0.6 * mix + 0.4 * pink) * 8000).astype(np.int16)


def through(pcm: np.ndarray, path: str, noise: np.ndarray) -> np.ndarray:
    from voicebot.audio.channels import (
        add_noise,
        g722_roundtrip,
        mulaw_roundtrip,
        opus_roundtrip,
    )

    channel, _, extra = path.partition("+")
    if extra == "noise":
        pcm = add_noise(pcm, noise, SNR_DB)
    if channel == "opus":
        return opus_roundtrip(pcm)
    if channel == "ulaw":
        return mulaw_roundtrip(pcm)
    if channel == "g722":
        return g722_roundtrip(pcm)
    return pcm


# --- recognition ----------------------------------------------------------------------


Heard = tuple[str, float, tuple[float, ...]]  # transcript, decode ms, word probabilities


class Transcripts:
    """A persistent cache of transcripts (JSON lines)."""

    def __init__(self) -> None:
        self.path = _cache() / "transcripts.jsonl"
        self.table: dict[str, Heard] = {}
        if self.path.is_file():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    row = json.loads(line)
                    self.table[row["k"]] = (row["t"], row["ms"], tuple(row.get("w", ())))
                except (ValueError, KeyError):
                    continue
        self._new: list[str] = []

    def get(self, key: str) -> Heard | None:
        return self.table.get(key)

    def put(self, key: str, text: str, ms: float, words: tuple[float, ...] = ()) -> None:
        self.table[key] = (text, ms, words)
        self._new.append(json.dumps({"k": key, "t": text, "ms": round(ms, 1), "w": words}))
        if len(self._new) >= 50:
            self.flush()

    def flush(self) -> None:
        if self._new:
            with self.path.open("a", encoding="utf-8") as f:
                f.write("\n".join(self._new) + "\n")
            self._new = []


def wer(reference: str, hypothesis: str, language: str) -> tuple[int, int]:
    """(word edits, reference words) after the matcher's normalisation ("8" = "eight")."""
    from rapidfuzz.distance import Levenshtein

    from voicebot.nlu.normalize import normalize

    ref = normalize(reference, language).split()
    hyp = normalize(hypothesis, language).split()
    return Levenshtein.distance(ref, hyp), len(ref)


# --- the run ---------------------------------------------------------------------------


@dataclass
class Cell:
    """One (language, path, model, context, split) row of the report."""

    edits: int = 0
    words: int = 0
    asr_ms: list[float] = field(default_factory=list)
    second_ms: list[float] = field(default_factory=list)  # second-pass decodes
    scores: list[Any] = field(default_factory=list)

    def row(self) -> dict[str, Any]:
        from voicebot.dialog.corpus import Summary

        summary = Summary()
        for score in self.scores:
            summary.add(score)
        rates = summary.rates()
        ms = summary.match_ms or [0.0]
        asr = self.asr_ms or [0.0]
        return {
            **rates,
            "wer": self.edits / max(self.words, 1),
            "match_p50_ms": round(percentile(ms, 50), 3),
            "match_p99_ms": round(percentile(ms, 99), 3),
            "asr_p50_ms": round(percentile(asr, 50), 1),
            "asr_p95_ms": round(percentile(asr, 95), 1),
            "second_pass_turns": len(self.second_ms),
            "second_pass_p50_ms": round(percentile(self.second_ms or [0.0], 50), 1),
            "second_pass_p95_ms": round(percentile(self.second_ms or [0.0], 95), 1),
        }


def _context(conv: Any, mode: str) -> str | None:
    """What the recogniser reads before the answer, as ``asr.context: MODE`` gives it."""
    question = conv.asr_context() if mode in ("prompt", "hints") else None
    hint = conv.asr_hint() if mode == "hints" else None
    return f"{question} {hint}" if question and hint else question


def _assignments(n: int, language: str, full: bool) -> list[list[tuple[str, str, float]]]:
    """Per item, the (engine, voice, rate) renditions to speak."""
    voices = VOICES[language]
    combos = [(e, v, r) for e, v in voices for r in RATES]
    if full:
        return [combos for _ in range(n)]
    return [[(*voices[i % len(voices)], RATES[(i // len(voices)) % len(RATES)])] for i in range(n)]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from voicebot.asr.whisper import WhisperEngine
    from voicebot.bundled import bundled, pipeline
    from voicebot.config import load_pipeline
    from voicebot.dialog.bot import load_bot
    from voicebot.dialog.corpus import Item, gold_values, load_corpus, score_turn
    from voicebot.dialog.flow import Conversation
    from voicebot.dialog.outcomes import MemoryOutcomeStore

    corpus_dir = Path(args.corpus_dir) if args.corpus_dir else bundled("intents") / "corpus"
    cache = Transcripts()
    report: dict[str, Any] = {
        "rows": [],
        "config": {
            "paths": args.paths,
            "contexts": args.contexts,
            "full": args.full,
            "snr_db": SNR_DB,
        },
    }
    heard_out: dict[Path, dict[int, dict[str, str]]] = {}
    for language in args.languages:
        config = load_pipeline(pipeline(PIPELINES[language]))
        unsure_levels = args.unsure_below or [config.asr.unsure_below]
        second_model = config.asr.second_pass if args.second_pass is None else args.second_pass
        second = WhisperEngine(second_model) if second_model else None
        loaded = load_bot(config)
        models = args.models or DEFAULT_MODELS[language]
        noise = noise_bed(language)
        corpora = sorted(corpus_dir.glob(f"restaurant_{language}_*.yaml"))
        corpora = [c for c in corpora if not c.name.endswith(".heard.yaml")]
        for corpus_path in corpora:
            corpus = load_corpus(corpus_path, loaded)
            split = corpus_path.stem.rsplit("_", 1)[-1]  # dev, heldout, heldout2: reported apart
            matcher = loaded.matcher(language, corpus.today)
            for item in corpus.items[:5]:  # warm the matcher's per-state tables
                await score_turn(loaded, matcher, item, language)
            items = corpus.items[: args.limit] if args.limit else corpus.items
            plan = _assignments(len(items), language, args.full)
            started = time.perf_counter()
            for model in models:
                engine = WhisperEngine(model)
                for context_mode in args.contexts:
                    cells = {(path, u): Cell() for path in args.paths for u in unsure_levels}
                    by_voice: dict[tuple[str, float, str], Cell] = {}
                    for i, item in enumerate(items):
                        conv = Conversation(
                            loaded.bot,
                            matcher,
                            MemoryOutcomeStore(),
                            call_id="bench",
                            language=language,
                        )
                        conv.place(
                            item.state,
                            gold_values(Item(item.state, "", "none", item.context), corpus.today),
                        )
                        context = _context(conv, context_mode)
                        for engine_name, voice, rate in plan[i]:
                            speech = speak(item.say, engine_name, voice, rate)
                            for path in args.paths:
                                key = _key(
                                    "asr+words", item.say, engine_name, voice, rate, path, model,
                                    context,
                                )  # fmt: skip
                                found = cache.get(key)
                                if found is None:
                                    audio = through(speech, path, noise)
                                    result = await engine.transcribe(
                                        audio.astype(np.float32) / 32768, language, context=context
                                    )
                                    probs = tuple(w.probability for w in result.words)
                                    found = (result.text, result.decode_ms, probs)
                                    cache.put(key, *found)
                                text, ms, probs = found
                                second_key = functools.partial(
                                    _key, "asr+words", item.say, engine_name, voice, rate, path
                                )
                                edits, words = wer(item.say, text, language)
                                for below in unsure_levels:
                                    unsure = _unsure(text, probs, below)
                                    took: list[float] = []
                                    again = None
                                    if second is not None:
                                        again = _second_pass(
                                            second,
                                            cache,
                                            second_key(second.model_name, context),
                                            functools.partial(through, speech, path, noise),
                                            (language, context, below),
                                            took,
                                        )
                                    score = await score_turn(
                                        loaded, matcher, item, language, text, unsure, again
                                    )
                                    for cell in (
                                        cells[path, below],
                                        by_voice.setdefault(
                                            (path, below, f"{voice}@{rate}"), Cell()
                                        ),
                                    ):
                                        cell.edits += edits
                                        cell.words += words
                                        cell.asr_ms.append(ms)
                                        cell.second_ms.extend(took)
                                        cell.scores.append(score)
                                if (
                                    args.store_heard
                                    and model == models[0]
                                    and context_mode == args.contexts[-1]
                                ):
                                    heard_out.setdefault(corpus_path, {}).setdefault(i, {})[
                                        f"{path}/{voice}@{rate}"
                                    ] = text
                    for (path, below), cell in cells.items():
                        row = {
                            "language": language,
                            "split": split,
                            "corpus": corpus.name,
                            "path": path,
                            "model": model,
                            "context": context_mode,
                            "unsure_below": below,
                            "second_pass": second_model,
                            **cell.row(),
                        }
                        report["rows"].append(row)
                        _print_row(row)
                    for (path, below, voice), cell in sorted(by_voice.items()):
                        report.setdefault("voices", []).append(
                            {
                                "language": language,
                                "split": split,
                                "corpus": corpus.name,
                                "path": path,
                                "voice": voice,
                                "model": model,
                                "context": context_mode,
                                "unsure_below": below,
                                **cell.row(),
                            }
                        )
                    cache.flush()
            print(f"  ({corpus.name}: {time.perf_counter() - started:.0f} s)", file=sys.stderr)
    cache.flush()
    if args.store_heard:
        for corpus_path, by_item in heard_out.items():
            _write_heard(corpus_path, by_item)
    return report


def _print_row(row: dict[str, Any]) -> None:
    print(
        f"{row['language']} {row['split']:8} {row['path']:11} {row['model']:7} "
        f"{row['context']:6} u<{row['unsure_below']:.2f} n={row['turns']:4}  WER {row['wer']:.3f}  "
        f"intent {row['intent_accuracy']:.3f}  slots {row['slot_accuracy']:.3f}  "
        f"turn {row['turn_success']:.3f}  no-match {row['no_match_rate']:.3f}  "
        f"wrong {row['wrong_action_rate']:.3f}  match p50/p99 {row['match_p50_ms']:.2f}/"
        f"{row['match_p99_ms']:.2f} ms  asr p50 {row['asr_p50_ms']:.0f} ms"
        + (
            f"  second pass {row['second_pass']} on {row['second_pass_turns']} turns, "
            f"p50/p95 {row['second_pass_p50_ms']:.0f}/{row['second_pass_p95_ms']:.0f} ms"
            if row["second_pass"]
            else ""
        ),
        flush=True,
    )


def _second_pass(
    engine: Any,
    cache: Transcripts,
    key: str,
    audio: Callable[[], np.ndarray],
    heard_as: tuple[str, str | None, float],
    took: list[float],
) -> SecondPass:
    """The bench's second pass: ``engine``'s transcript of the item (cached), its decode
    time noted in ``took`` when the flow asks for it. ``heard_as``: (language, context,
    unsure_below)."""
    language, context, below = heard_as

    async def again() -> tuple[str, tuple[int, ...]]:
        found = cache.get(key)
        if found is None:
            result = await engine.transcribe(
                audio().astype(np.float32) / 32768, language, context=context
            )
            found = (result.text, result.decode_ms, tuple(w.probability for w in result.words))
            cache.put(key, *found)
        took.append(found[1])
        return found[0], _unsure(found[0], found[2], below)

    return again


def _unsure(text: str, probabilities: tuple[float, ...], below: float) -> tuple[int, ...]:
    """The words of a cached transcript heard with a probability under ``below``."""
    from voicebot.asr.base import AsrResult
    from voicebot.asr.stage import unsure_words
    from voicebot.frames import HeardWord

    words = tuple(HeardWord(w, p) for w, p in zip(text.split(), probabilities, strict=False))
    return unsure_words(AsrResult(text, words=words), below)


def _write_heard(corpus_path: Path, by_item: dict[int, dict[str, str]]) -> None:
    import yaml

    from voicebot.dialog.corpus import load_corpus

    corpus = load_corpus(corpus_path)
    items = [{"say": corpus.items[i].say, "heard": heard} for i, heard in sorted(by_item.items())]
    out = corpus_path.with_suffix(".heard.yaml")
    header = (
        "# What Whisper heard of each item of " + corpus_path.name + ", spoken by the "
        "bundled voices\n# through each audio path (written by `voicebot bench "
        "understanding --store-heard`).\n"
    )
    out.write_text(
        header
        + yaml.safe_dump(
            {"corpus": corpus_path.name, "items": items},
            allow_unicode=True,
            sort_keys=False,
            width=100,
        ),
        encoding="utf-8",
    )
    print(f"transcripts: {out}")


def add_arguments(bench: argparse.ArgumentParser) -> None:
    group = bench.add_argument_group("understanding")
    group.add_argument(
        "--languages",
        type=lambda s: s.split(","),
        default=["en", "de"],
        help="understanding: en,de",
    )
    group.add_argument(
        "--paths",
        type=lambda s: s.split(","),
        default=list(PATHS),
        help=f"understanding: audio paths ({','.join(PATHS)})",
    )
    group.add_argument(
        "--models",
        type=lambda s: s.split(","),
        default=None,
        help="understanding: Whisper models (default: tiny.en,base for en; base for de)",
    )
    group.add_argument(
        "--contexts",
        type=lambda s: s.split(","),
        default=["none", "prompt"],
        help="understanding: recogniser context modes (none,prompt,hints)",
    )
    group.add_argument(
        "--full",
        action="store_true",
        help="understanding: every voice at every rate for every item",
    )
    group.add_argument(
        "--unsure-below",
        type=lambda s: [float(x) for x in s.split(",")],
        default=None,
        help="understanding: word probabilities under which a word is unsure, each measured "
        "(default: the pipeline's asr.unsure_below)",
    )
    group.add_argument(
        "--second-pass",
        default=None,
        help="understanding: the model that recognises a turn again where it matched "
        "nothing; '' = none (default: the pipeline's asr.second_pass)",
    )
    group.add_argument("--limit", type=int, default=0, help="understanding: first N items")
    group.add_argument("--corpus-dir", default=None, help="understanding: corpus folder")
    group.add_argument(
        "--store-heard",
        action="store_true",
        help="understanding: write *.heard.yaml transcripts for the tests",
    )


def main(args: argparse.Namespace) -> int:
    report = asyncio.run(run(args))
    path = Path(args.json_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2))
    print(f"JSON: {path}")
    return 0
