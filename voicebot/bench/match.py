"""``voicebot bench match``: per-utterance intent matching time with N intents in two languages.

The reference restaurant intents plus synthetic ones (FAQ-style questions with
alternatives, optional words, rules and a day slot) make up ``n_intents`` per
language. Every utterance is matched against all intents (the worst case: a
flow state narrows the candidates), in its language, after one warm-up pass.
The utterances are realistic ASR output: exact phrasings, misheard ones for the
fuzzy tier, and out-of-domain ones that must come back empty.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from voicebot.bench.stats import percentile
from voicebot.bundled import bundled
from voicebot.nlu.template_matcher import TemplateMatcher, load_intents

RESTAURANT = bundled("intents") / "restaurant.yaml"

_TOPICS = [  # (en, de) FAQ topics for synthetic intents
    ("parking", "parkplätze"),
    ("the menu", "die speisekarte"),
    ("vegan dishes", "vegane gerichte"),
    ("gift cards", "gutscheine"),
    ("allergies", "allergien"),
    ("the wine list", "die weinkarte"),
    ("a private room", "einen separaten raum"),
    ("birthday cakes", "geburtstagstorten"),
    ("delivery", "lieferung"),
    ("takeaway", "essen zum mitnehmen"),
    ("wheelchair access", "barrierefreiheit"),
    ("the dress code", "die kleiderordnung"),
    ("a kids menu", "eine kinderkarte"),
    ("card payment", "kartenzahlung"),
    ("wifi", "wlan"),
    ("dogs", "hunde"),
    ("the terrace", "die terrasse"),
    ("live music", "live musik"),
    ("gluten free food", "glutenfreies essen"),
    ("a lunch menu", "einen mittagstisch"),
    ("happy hour", "die happy hour"),
    ("catering", "catering"),
    ("high chairs", "kinderstühle"),
    ("the chef", "den koch"),
    ("daily specials", "tagesgerichte"),
    ("desserts", "nachspeisen"),
    ("cocktails", "cocktails"),
    ("a set menu", "ein menü"),
    ("reviews", "bewertungen"),
    ("jobs", "stellenangebote"),
    ("the address", "die adresse"),
    ("public transport", "öffentliche verkehrsmittel"),
    ("smoking", "rauchen"),
    ("breakfast", "frühstück"),
    ("large groups", "große gruppen"),
    ("corkage", "korkgeld"),
    ("student discounts", "studentenrabatt"),
    ("loyalty cards", "kundenkarten"),
    ("the toilets", "die toiletten"),
    ("christmas parties", "weihnachtsfeiern"),
    ("cooking classes", "kochkurse"),
    ("wine tastings", "weinproben"),
    ("outdoor seating", "plätze draußen"),
    ("halal food", "halal essen"),
    ("kosher food", "koscheres essen"),
]


def synthetic_intents(count: int, seed: int = 7) -> dict[str, Any]:
    """An intent file (as data) with ``count`` FAQ intents in en and de."""
    rng = random.Random(seed)
    topics = (_TOPICS * (count // len(_TOPICS) + 1))[:count]
    intents: dict[str, Any] = {}
    for k, (en, de) in enumerate(topics):
        suffix = "" if k < len(_TOPICS) else f" {k}"
        en_t, de_t = en + suffix, de + suffix
        ask = rng.choice(["(ask|know)", "(hear|learn)"])
        intents[f"faq_{k}"] = {
            "templates": {
                "en": [
                    f"[<want>] [to] {ask} about {en_t} [<on_day>]",
                    f"(do|does|can) (you|the restaurant) (have|offer|do) {en_t} [<on_day>]",
                    f"(what about|how about|tell me about|any info on) {en_t}",
                    f"is there {en_t} [<on_day>]",
                ],
                "de": [
                    f"(haben sie|habt ihr|gibt es) [auch] {de_t} [<on_day>]",
                    f"[<want>] [gerne] (etwas|mehr) über {de_t} wissen",
                    f"(wie ist es mit|was ist mit|wie sieht es aus mit) {de_t}",
                ],
            }
        }
    return {"languages": ["en", "de"], "intents": intents}


UTTERANCES: dict[str, list[str]] = {
    "en": [
        "I'd like to book a table for four people on Friday at half past seven.",
        "Hi, can I make a reservation for tomorrow at 8 p.m.?",
        "For 2 people.",
        "Four.",
        "On Saturday.",
        "At 7.30 pm.",
        "Yes.",
        "No, that's wrong.",
        "Sorry, can you repeat that?",
        "I want to speak to a human.",
        "I need to cancel my booking.",
        "When are you open on Sunday?",
        "when I open on sunday",
        "I like to book a table for four people",
        "could I make a reservations for tomorrow",
        "Do you have parking?",
        "Tell me about the wine list.",
        "I'd like to know about gift cards on Saturday.",
        "What's the weather like in Berlin?",
        "Play some music.",
        "Hello.",
        "Bye.",
        "Uh, we are, um, five people on Friday at 8 o'clock.",
        "What are your opening hours?",
        "Is there outdoor seating?",
        "Do you offer vegan dishes tomorrow?",
    ],
    "de": [
        "Ich möchte einen Tisch für vier Personen am Freitag um halb acht reservieren.",
        "Hallo, ich hätte gerne einen Tisch für morgen um 20 Uhr.",
        "Für zwei Personen.",
        "Vier.",
        "Am Samstag.",
        "Um acht Uhr abends.",
        "Ja, genau.",
        "Nein.",
        "Wie bitte?",
        "Ich möchte mit einem Mitarbeiter sprechen.",
        "Ich möchte meine Reservierung stornieren.",
        "Wann haben Sie am Sonntag geöffnet?",
        "Haben Sie Parkplätze?",
        "Was ist mit der Weinkarte?",
        "Wie wird das Wetter morgen?",
        "Tschüss.",
        "Ähm, wir sind zu fünft am Freitag um 19 Uhr.",
        "Gibt es auch vegane Gerichte?",
        "Ich möchte einen Tisch reservieren für Samstag.",
        "Wie sind Ihre Öffnungszeiten?",
    ],
}


def bench(
    n_intents: int = 50, utterances: dict[str, list[str]] | None = None, rounds: int = 5
) -> dict[str, Any]:
    """Per-utterance match time (ms): p50, p90, p99, max over ``rounds`` passes."""
    utterances = utterances or UTTERANCES
    base, _ = load_intents([RESTAURANT])
    extra = max(0, n_intents - len(base.intents))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "synthetic.yaml"
        path.write_text(
            yaml.safe_dump(synthetic_intents(extra), allow_unicode=True), encoding="utf-8"
        )
        started = time.perf_counter()
        intents, diags = load_intents([RESTAURANT, path])
        load_ms = (time.perf_counter() - started) * 1000
    errors = [str(d) for d in diags if d.severity == "error"]
    if errors:
        raise ValueError("benchmark intents do not load: " + "; ".join(errors))
    times: list[float] = []
    tiers: dict[str, int] = {"exact": 0, "fuzzy": 0, "llm": 0, "none": 0}
    for language, texts in utterances.items():
        matcher = TemplateMatcher(intents, language)
        for text in texts:  # warm-up, and the tier of each utterance
            found = matcher.match(text)
            tiers[found.matcher if found else "none"] += 1
        for _ in range(rounds):
            for text in texts:
                started = time.perf_counter()
                matcher.match(text)
                times.append((time.perf_counter() - started) * 1000)
    return {
        "intents_per_language": len(intents.intents),
        "languages": list(utterances),
        "utterances": sum(len(t) for t in utterances.values()),
        "samples": len(times),
        "p50_ms": round(percentile(times, 50), 3),
        "p90_ms": round(percentile(times, 90), 3),
        "p99_ms": round(percentile(times, 99), 3),
        "max_ms": round(max(times), 3),
        "mean_ms": round(statistics.fmean(times), 3),
        "load_ms": round(load_ms, 1),
        "tiers": tiers,
    }


def main(args: argparse.Namespace) -> int:
    """Run ``voicebot bench match``: print the figures, write JSON."""
    result = bench(n_intents=50, rounds=args.repeat)
    print(
        f"intent matching, 50 intents x 2 languages, {result.get('samples', '?')} samples: "
        f"p50 {result['p50_ms']:.3f} ms  p90 {result['p90_ms']:.3f} ms  "
        f"p99 {result['p99_ms']:.3f} ms  max {result['max_ms']:.3f} ms "
        f"(load {result['load_ms']:.0f} ms)"
    )
    path = Path(args.json_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2))
    print(f"JSON: {path}")
    return 0
