"""Intent files and the template matcher: syntax, slots, tiers, restrictions, diagnostics."""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path

import pytest

from voicebot.bench.match import bench
from voicebot.nlu.slots import DaySlot, IntegerSlot, TimeSlot
from voicebot.nlu.template_matcher import IntentSet, TemplateMatcher, load_intents

WEDNESDAY = dt.date(2025, 6, 4)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def load_ok(*paths: Path) -> IntentSet:
    intents, diags = load_intents(list(paths))
    assert [str(d) for d in diags] == []
    return intents


@pytest.fixture(scope="module")
def en(restaurant: IntentSet) -> TemplateMatcher:
    return TemplateMatcher(restaurant, "en", today=WEDNESDAY)


@pytest.fixture(scope="module")
def de(restaurant: IntentSet) -> TemplateMatcher:
    return TemplateMatcher(restaurant, "de", today=WEDNESDAY)


SHOP = """
    languages: [en]
    slots:
      size: {type: list, values: {small: [little, tiny], large: {en: [big, huge]}}}
      count: {type: integer, min: 1, max: 9}
      order: {type: digits, min_len: 4, max_len: 6}
      note: {type: wildcard, max_words: 3}
      day: {type: day}
    rules:
      en:
        coffee: "(coffee|espresso|latte)"
    skip_words:
      en: [please, "thank you"]
    intents:
      order_coffee:
        templates:
          en:
            - "[i would like] [a|an] [{size}] <coffee> [(to go; with {note})]"
            - "{count} <coffee>"
      track:
        templates:
          en: ["where is [my] order [number] {order}", "track {order}"]
      stop:
        interim: true
        templates:
          en: ["stop [it|that]", "(cancel|enough)"]
      visit:
        templates:
          en: ["(come|visit) [on] {day:when}"]
"""


@pytest.fixture
def shop(tmp_path: Path) -> TemplateMatcher:
    return TemplateMatcher(load_ok(write(tmp_path, "shop.yaml", SHOP)), "en", today=WEDNESDAY)


@pytest.mark.parametrize(
    ("text", "intent", "slots"),
    [
        ("coffee", "order_coffee", {}),  # optional parts left out
        ("I would like a latte.", "order_coffee", {}),  # alternatives in a rule
        ("a tiny espresso", "order_coffee", {"size": "small"}),  # list synonym
        ("a big latte", "order_coffee", {"size": "large"}),
        ("a large latte", "order_coffee", {"size": "large"}),  # the value itself
        ("an espresso to go with oat milk", "order_coffee", {"note": "oat milk"}),
        ("an espresso with oat milk to go", "order_coffee", {"note": "oat milk"}),  # permutation
        ("a latte, please, thank you", "order_coffee", {}),  # skip words
        ("please a please latte", "order_coffee", {}),
        ("3 coffee", "order_coffee", {"count": 3}),
        ("three coffee", "order_coffee", {"count": 3}),
        ("Where is my order number four two one three?", "track", {"order": "4213"}),
        ("track 42 13 55", "track", {"order": "421355"}),
        ("come on Saturday", "visit", {"when": "saturday"}),  # {definition:slot}
        ("visit tomorrow", "visit", {"when": "thursday"}),
    ],
)
def test_template_syntax_and_slots(
    shop: TemplateMatcher, text: str, intent: str, slots: dict
) -> None:
    found = shop.match(text)
    assert found is not None
    assert (found.intent, found.slots, found.matcher, found.confidence) == (
        intent,
        slots,
        "exact",
        1.0,
    )


@pytest.mark.parametrize(
    "text",
    [
        "an espresso with a lot of oat milk to go",  # wildcard longer than max_words
        "12 coffee",  # integer out of range: the parse fails, it is not clamped
        "track 42",  # too few digits
        "coffee coffee tea",
    ],
)
def test_invalid_slot_values_do_not_match(shop: TemplateMatcher, text: str) -> None:
    assert shop.match(text) is None


def test_interim_only_matches_interim_intents(shop: TemplateMatcher) -> None:
    assert shop.match("stop", interim=True).intent == "stop"  # type: ignore[union-attr]
    assert shop.match("a latte", interim=True) is None
    assert shop.match("stop it now", interim=True) is None  # exact tier only on partials
    assert shop.match("a latte").intent == "order_coffee"  # type: ignore[union-attr]


def test_allowed_restricts_candidates(en: TemplateMatcher) -> None:
    assert en.match("four", allowed={"inform", "affirm"}).intent == "inform"  # type: ignore
    assert en.match("four", allowed={"book_table", "affirm"}) is None
    assert en.match("yes", allowed={"deny"}) is None
    assert en.match("yes", allowed={"affirm", "no_such_intent"}).intent == "affirm"  # type: ignore
    assert en.match("yes", allowed=set()) is None


# Realistic faster-whisper output (tiny.en / base) for every reference intent.
EN_CASES = [
    ("Hello.", "greet", {}),
    ("Hi there!", "greet", {}),
    ("Good evening.", "greet", {}),
    ("Bye.", "goodbye", {}),
    ("No, that's all. Thank you, bye.", "goodbye", {}),
    ("Have a nice evening.", "goodbye", {}),
    ("Yes.", "affirm", {}),
    ("Yeah, that's right.", "affirm", {}),
    ("Sure.", "affirm", {}),
    ("Mm-hmm.", "affirm", {}),
    ("No.", "deny", {}),
    ("No, that's wrong.", "deny", {}),
    ("Nope.", "deny", {}),
    ("Sorry, can you repeat that?", "repeat", {}),
    ("Pardon?", "repeat", {}),
    ("I didn't catch that.", "repeat", {}),
    ("I want to speak to a human.", "human_agent", {}),
    ("Agent.", "human_agent", {}),
    ("Can I talk to a real person, please?", "human_agent", {}),
    (
        "I'd like to book a table for four people on Friday at half past seven.",
        "book_table",
        {"party_size": 4, "day": "friday", "time": "19:30"},
    ),
    (
        "Hi, can I make a reservation for tomorrow at 8 p.m.?",
        "book_table",
        {"day": "thursday", "time": "20:00"},
    ),
    (
        "A table for two tonight at 7.30 pm, please.",
        "book_table",
        {"party_size": 2, "day": "wednesday", "time": "19:30"},
    ),
    (
        "I want to reserve a table for 6 on Saturday at 19:30.",
        "book_table",
        {"party_size": 6, "day": "saturday", "time": "19:30"},
    ),
    (
        "Do you have a table for 3 at 8 tomorrow?",
        "book_table",
        {"party_size": 3, "time": "20:00", "day": "thursday"},
    ),
    ("Book a table.", "book_table", {}),
    (
        "Uh, we'd like to book, um, on Sunday for five people.",
        "book_table",
        {"day": "sunday", "party_size": 5},
    ),
    (
        "for 4 people on Friday at half past 7.",
        "inform",
        {"party_size": 4, "day": "friday", "time": "19:30"},
    ),
    ("Three people.", "inform", {"party_size": 3}),
    ("On Saturday.", "inform", {"day": "saturday"}),
    ("At eight p.m.", "inform", {"time": "20:00"}),
    ("At 8 p.m.", "inform", {"time": "20:00"}),
    ("Four.", "inform", {"party_size": 4}),
    ("Friday.", "inform", {"day": "friday"}),
    ("Half past 7.", "inform", {"time": "19:30"}),
    ("7.30 pm", "inform", {"time": "19:30"}),
    ("Tomorrow at 8.", "inform", {"day": "thursday", "time": "20:00"}),
    ("We are 2.", "inform", {"party_size": 2}),
    ("When are you open on Sunday?", "opening_hours", {"day": "sunday"}),
    ("What are your opening hours?", "opening_hours", {}),
    ("Are you open tomorrow?", "opening_hours", {"day": "thursday"}),
    ("How late are you open on Fridays?", "opening_hours", {"day": "friday"}),
    ("I need to cancel my reservation.", "cancel_booking", {}),
    ("Cancel my booking for Friday, please.", "cancel_booking", {"day": "friday"}),
    ("I can't make it tomorrow.", "cancel_booking", {"day": "thursday"}),
]

DE_CASES = [
    ("Hallo.", "greet", {}),
    ("Guten Tag.", "greet", {}),
    ("Tschüss.", "goodbye", {}),
    ("Auf Wiederhören.", "goodbye", {}),
    ("Das wär's, danke.", "goodbye", {}),
    ("Ja.", "affirm", {}),
    ("Ja, genau.", "affirm", {}),
    ("Das stimmt.", "affirm", {}),
    ("Nein.", "deny", {}),
    ("Nein, das ist falsch.", "deny", {}),
    ("Wie bitte?", "repeat", {}),
    ("Können Sie das bitte wiederholen?", "repeat", {}),
    ("Ich möchte mit einem Mitarbeiter sprechen.", "human_agent", {}),
    ("Mitarbeiter.", "human_agent", {}),
    (
        "Ich möchte einen Tisch für vier Personen am Freitag um halb acht reservieren.",
        "book_table",
        {"party_size": 4, "day": "friday", "time": "19:30"},
    ),
    (
        "Hallo, ich hätte gerne einen Tisch für morgen um 20 Uhr.",
        "book_table",
        {"day": "thursday", "time": "20:00"},
    ),
    (
        "Ich möchte reservieren für Samstag, für zwei Personen.",
        "book_table",
        {"day": "saturday", "party_size": 2},
    ),
    ("Haben Sie heute Abend noch einen Tisch frei?", "book_table", {"day": "wednesday"}),
    ("Für zwei Personen, bitte.", "inform", {"party_size": 2}),
    ("Am Samstag.", "inform", {"day": "saturday"}),
    ("Um acht Uhr abends.", "inform", {"time": "20:00"}),
    ("Vier.", "inform", {"party_size": 4}),
    ("Wir sind zu fünft.", "inform", {"party_size": 5}),
    ("Morgen um halb acht.", "inform", {"day": "thursday", "time": "19:30"}),
    ("Um 19.30 Uhr.", "inform", {"time": "19:30"}),
    ("Wann haben Sie am Sonntag geöffnet?", "opening_hours", {"day": "sunday"}),
    ("Wie sind Ihre Öffnungszeiten?", "opening_hours", {}),
    ("Haben Sie morgen offen?", "opening_hours", {"day": "thursday"}),
    (
        "Haben Sie am Samstag um 22 Uhr noch auf?",
        "opening_hours",
        {"day": "saturday", "time": "22:00"},
    ),
    ("Ich möchte meine Reservierung stornieren.", "cancel_booking", {}),
    ("Ich möchte meine Reservierung für Freitag absagen.", "cancel_booking", {"day": "friday"}),
]


@pytest.mark.parametrize(("text", "intent", "slots"), EN_CASES)
def test_restaurant_en(en: TemplateMatcher, text: str, intent: str, slots: dict) -> None:
    found = en.match(text)
    assert found is not None, text
    assert (found.intent, found.slots) == (intent, slots)
    assert found.matcher == "exact"


@pytest.mark.parametrize(("text", "intent", "slots"), DE_CASES)
def test_restaurant_de(de: TemplateMatcher, text: str, intent: str, slots: dict) -> None:
    found = de.match(text)
    assert found is not None, text
    assert (found.intent, found.slots) == (intent, slots)
    assert found.matcher == "exact"


@pytest.mark.parametrize(
    ("lang", "text", "intent", "slots"),
    [
        ("en", "when I open on sunday", "opening_hours", {"day": "sunday"}),
        ("en", "when are you opened on sunday", "opening_hours", {"day": "sunday"}),
        ("en", "I like to book a table for four people", "book_table", {"party_size": 4}),
        ("en", "could I make a reservations for tomorrow", "book_table", {"day": "thursday"}),
        ("de", "Wann haben die am Sonntag geöffnet?", "opening_hours", {"day": "sunday"}),
        (
            "de",
            "Ich möchte einen Tisch für vier Personen am Freitag reservierten.",
            "book_table",
            {"party_size": 4, "day": "friday"},
        ),
    ],
)
def test_fuzzy_tier(
    en: TemplateMatcher, de: TemplateMatcher, lang: str, text: str, intent: str, slots: dict
) -> None:
    found = (en if lang == "en" else de).match(text)
    assert found is not None
    assert (found.intent, found.slots, found.matcher) == (intent, slots, "fuzzy")
    assert 0.5 < found.confidence < 1


@pytest.mark.parametrize(
    "text",
    [
        "What's the weather like in Berlin?",
        "Play some music.",
        "a table for 50 people",
        "I want",
        "uh",
        "",
        "...",
    ],
)
def test_no_wild_guesses(en: TemplateMatcher, text: str) -> None:
    assert en.match(text) is None


def test_fuzzy_can_be_switched_off(restaurant: IntentSet) -> None:
    exact_only = TemplateMatcher(restaurant, "en", fuzzy=False)
    assert exact_only.match("when I open on sunday") is None


AMBIGUOUS = """
    intents:
      check_balance:
        templates:
          en: ["what is my account balance today"]
      check_bill:
        templates:
          en: ["what is my phone bill today"]
      same_a:
        templates:
          en: ["open the door"]
      same_b:
        templates:
          en: ["open the (door|gate)"]
"""


def test_ambiguity_returns_none(tmp_path: Path) -> None:
    m = TemplateMatcher(load_ok(write(tmp_path, "amb.yaml", AMBIGUOUS)), "en")
    # One substitution away from both intents: too close to call.
    assert m.match("what is my account bill today") is None
    # Exactly the same fit for two intents.
    assert m.match("open the door") is None
    assert m.match("open the gate").intent == "same_b"  # type: ignore[union-attr]
    # With only one of them allowed, there is nothing to disambiguate.
    assert m.match("what is my account bill today", allowed={"check_bill"}) is not None
    assert m.match("open the door", allowed={"same_a"}).intent == "same_a"  # type: ignore


def test_intent_set_api(restaurant: IntentSet) -> None:
    assert restaurant.languages == ("en", "de")
    book = restaurant.intents["book_table"]
    assert set(book.slots) == {"party_size", "day", "time"}
    assert isinstance(book.slots["party_size"], IntegerSlot)
    assert (book.slots["party_size"].min, book.slots["party_size"].max) == (1, 20)
    assert isinstance(book.slots["day"], DaySlot)
    assert isinstance(book.slots["time"], TimeSlot) and book.slots["time"].prefer == "evening"
    assert restaurant.intents["human_agent"].interim is True
    assert restaurant.intents["greet"].interim is False
    assert set(restaurant.intents) == {
        "greet",
        "goodbye",
        "affirm",
        "deny",
        "repeat",
        "human_agent",
        "book_table",
        "inform",
        "opening_hours",
        "cancel_booking",
    }
    assert all(i.languages == ("en", "de") for i in restaurant.intents.values())
    assert restaurant.intents["inform"].slots.keys() == {"party_size", "day", "time"}
    assert book.line > 0 and book.file.endswith("restaurant.yaml")


def test_unknown_language_is_an_error(restaurant: IntentSet) -> None:
    with pytest.raises(ValueError, match="no 'fr' templates"):
        TemplateMatcher(restaurant, "fr")


def test_today_can_be_a_callable(restaurant: IntentSet) -> None:
    m = TemplateMatcher(restaurant, "en", today=lambda: dt.date(2025, 6, 8))
    assert m.match("tomorrow").slots == {"day": "monday"}  # type: ignore[union-attr]


def test_the_spans_of_one_turn_are_parsed_once_and_follow_the_day(restaurant: IntentSet) -> None:
    """The tiers ask about one turn's words several times: its slot spans are kept for
    the same words on the same day, and read again when either changes."""
    day = [dt.date(2025, 6, 8)]
    m = TemplateMatcher(restaurant, "en", today=lambda: day[0])
    words = "tomorrow at 8".split()
    before = m._spans(words)
    assert m._spans(list(words)) is before
    assert m._spans("tomorrow at 9".split()) is not before
    assert m.match("tomorrow").slots == {"day": "monday"}  # type: ignore[union-attr]
    day[0] = dt.date(2025, 6, 9)
    assert m._spans(words) is not before
    assert m.match("tomorrow").slots == {"day": "tuesday"}  # type: ignore[union-attr]


BAD = """
    languages: [en, de]
    slots:
      size: {type: integr}
      n: {type: integer, min: 5, max: 1}
      day: {type: day, prefer: evening}
      when: {type: time, prefer: noon}
    rules:
      en:
        loop: "<loop> again"
        ok: "(fine|good)"
    intents:
      a:
        templates:
          en: ["book (a|the table"]
          de: ["buchen"]
      b:
        interim: "yes"
        templates:
          en: ["on {dya}"]
      c:
        templates:
          en: ["use <nope> [now]"]
          de: ["x <ok>"]
          fr: ["y"]
      d:
        templates:
          en: ["at {when:t}", "by {day:t}"]
          de: ["um {when:t}"]
      e:
        templatez: {en: ["x"]}
"""


def test_diagnostics(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.yaml", BAD)
    _, diags = load_intents([path])
    f = str(path)
    assert [str(d) for d in diags] == [
        f"{f}:3:16: I140 unknown slot type 'integr' (did you mean 'integer'?); use one of "
        "integer, count, digits, day, time, list, wildcard",
        f"{f}:4:3: I141 slot 'n': min (5) is greater than max (1)",
        f"{f}:5:20: I101 unknown day slot key 'prefer'",
        f"{f}:6:30: I141 prefer must be evening, morning or null, got 'noon'",
        f"{f}:9:12: I113 rule <loop> refers to itself through <loop>",
        f"{f}:14:18: I110 intent 'a': unclosed '(' (expected ')')",
        f"{f}:16:3: I120 intent 'b' has no 'de' templates (the file declares languages [en, de])",
        f"{f}:17:14: I102 'interim' must be true or false, got str 'yes'",
        f"{f}:19:16: I111 undeclared slot {{dya}}: add it under 'slots' (did you mean {{day}}?)",
        f"{f}:22:17: I112 unknown rule <nope> for language 'en'",
        f"{f}:23:15: I112 unknown rule <ok> for language 'de'",
        f"{f}:24:7: I121 intent 'c': language 'fr' is not in this file's languages [en, de]",
        f"{f}:27:31: I114 slot 't' of intent 'd' is filled from 'when' elsewhere, here from 'day'",
        f"{f}:29:3: I103 intent 'e' has no 'templates'",
        f"{f}:30:5: I101 unknown intent key 'templatez' (did you mean 'templates'?)",
    ]


def test_diagnostics_across_files(tmp_path: Path) -> None:
    one = write(
        tmp_path,
        "one.yaml",
        """
        slots:
          n: {type: integer, max: 5}
        intents:
          hello:
            templates:
              en: ["hello"]
    """,
    )
    two = write(
        tmp_path,
        "two.yaml",
        """
        slots:
          n: {type: integer, max: 9}
        intents:
          hello:
            templates:
              en: ["hi"]
          hello:
            templates:
              en: ["hey"]
          count:
            templates:
              en: ["{n} times"]
              de: ["{n} mal"]
          slots_differ:
            templates:
              en: ["at {n}"]
              de: ["um"]
    """,
    )
    intents, diags = load_intents([one, two])
    assert [str(d) for d in diags] == [
        f"{two}:2:3: I131 slot definition 'n' already defined at {one}:2:3",
        f"{two}:4:3: I130 intent 'hello' already defined at {one}:4:3",
        f"{two}:7:3: E005 duplicate key 'hello' (first defined at line 4)",
        f"{two}:14:3: I122 warning: intent 'slots_differ': slot 'n' appears in en templates "
        "but in no de template",
    ]
    assert intents.intents["hello"].templates == {"en": ["hello"]}
    assert intents.slot_types["n"].max == 5  # type: ignore[attr-defined]
    assert intents.languages == ("en", "de")


def test_template_error_points_into_the_template(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "e.yaml",
        """
        intents:
          x:
            templates:
              en:
                - "ok [then"
                - plain ) text
                - 'a {b:c:d}'
                - "<>"
    """,
    )
    _, diags = load_intents([path])
    assert [str(d) for d in diags] == [
        f"{path}:5:15: I110 intent 'x': unclosed '[' (expected ']')",
        f"{path}:6:17: I110 intent 'x': unmatched ')'",
        f"{path}:7:14: I110 intent 'x': bad slot reference {{b:c:d}}: use {{slot}} or "
        "{type_name:slot}",
        f"{path}:8:12: I110 intent 'x': bad rule name <>",
    ]


def test_yaml_errors_and_non_mapping(tmp_path: Path) -> None:
    broken = write(tmp_path, "broken.yaml", "intents: [\n")
    listing = write(tmp_path, "list.yaml", "- a\n- b\n")
    missing = tmp_path / "missing.yaml"
    _, diags = load_intents([broken, listing, missing])
    codes = [(Path(d.file).name, d.code) for d in diags]
    assert codes == [("broken.yaml", "E002"), ("list.yaml", "I100"), ("missing.yaml", "E001")]


def test_bench_reports_percentiles() -> None:
    result = bench(n_intents=20, utterances={"en": ["Yes.", "when I open on sunday"]}, rounds=2)
    assert result["intents_per_language"] == 20
    assert result["samples"] == 4
    assert 0 < result["p50_ms"] <= result["p99_ms"] <= result["max_ms"]
    assert result["tiers"] == {"exact": 1, "fuzzy": 1, "llm": 0, "none": 0}


@pytest.mark.parametrize(
    ("lang", "text", "expect", "slots"),
    [
        ("en", "eight", None, {"party_size": 8}),
        ("en", "eight", "time", {"time": "20:00"}),
        ("en", "eight", "party_size", {"party_size": 8}),
        ("de", "acht", "time", {"time": "20:00"}),
        ("de", "acht", None, {"party_size": 8}),
    ],
)
def test_expected_slot_wins_ambiguous_readings(
    en: TemplateMatcher, de: TemplateMatcher, lang: str, text: str, expect: str | None, slots: dict
) -> None:
    """A bare number after "At what time?" is a time, after "How many?" a party size."""
    match = (en if lang == "en" else de).match(text, {"inform"}, expect=expect)
    assert match is not None and match.intent == "inform" and match.slots == slots
