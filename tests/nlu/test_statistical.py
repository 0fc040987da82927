"""The statistical tier: trained from the templates, cached by content hash, calibrated,
and behind the tiered matcher (exact first, two close readings -> no match)."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from tests.support.paths import CORPUS, PIPELINES, RESTAURANT_INTENTS
from voicebot.config import load_pipeline
from voicebot.dialog.bot import load_bot
from voicebot.dialog.corpus import load_corpus
from voicebot.nlu import statistical
from voicebot.nlu.matcher import IntentMatcher, _Turn
from voicebot.nlu.normalize import normalize
from voicebot.nlu.samples import augment, generate
from voicebot.nlu.statistical import StatisticalModel, load_model, model_key, span_features
from voicebot.nlu.template_matcher import load_intents

TUESDAY = dt.date(2026, 12, 1)


def test_samples_come_from_the_templates_with_their_slots(restaurant) -> None:  # type: ignore
    samples = generate(restaurant, "en", seed=3)
    assert {s.intent for s in samples} >= set(restaurant.intents)
    booking = [s for s in samples if s.intent == "book_table" and s.slots]
    assert booking
    for sample in booking[:50]:
        for start, end, slot, _ in sample.slots:
            assert (
                restaurant.intents["book_table"]
                .slots[slot]
                .parse_normalized(" ".join(sample.words[start:end]), "en", TUESDAY)
                is not None
            )
    assert generate(restaurant, "en", seed=3)[:20] == samples[:20]  # deterministic
    bare = [s for s in augment(samples, restaurant, "en") if s.expect]
    assert {s.expect for s in bare} == {"party_size", "day", "time"}


def test_a_template_added_leaves_the_other_templates_sentences_as_they_were(
    restaurant, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    text = RESTAURANT_INTENTS.read_text(encoding="utf-8")
    marker = '        - "(tisch|reservierung) [<details>] [bitte]"\n'
    assert marker in text
    changed = tmp_path / "restaurant.yaml"
    changed.write_text(
        text.replace(marker, marker + '        - "ich bräuchte [<details>] einen platz"\n'),
        encoding="utf-8",
    )
    other, diags = load_intents([changed])
    assert [str(d) for d in diags] == []
    before = [s for s in generate(restaurant, "de", seed=0) if s.intent != "book_table"]
    after = [s for s in generate(other, "de", seed=0) if s.intent != "book_table"]
    assert before == after


def test_fast_path_agrees_with_scikit_learn(restaurant) -> None:  # type: ignore[no-untyped-def]
    model = load_model(restaurant, "en")
    fast = model._fast()
    for text in (
        "a table for four on friday at half past heaven",
        "yes please",
        "could we do sunday instead",
        "is there parking",
        "glorp",
    ):
        words = normalize(text, "en").split()
        spans = model.spotter.find(words, TUESDAY)
        joined = " ".join(model.tokens(words, spans))
        assert np.allclose(model.intent_model.predict_proba([joined])[0], fast.intent(joined))
        for (a, b), group in statistical._extents(spans).items():
            row = span_features(words, a, b, group)
            assert np.allclose(model.role_model.predict_proba([row])[0], fast.role(row))


def test_trained_once_per_content_then_read_from_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOICEBOT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(statistical, "_MODELS", {})
    text = RESTAURANT_INTENTS.read_text(encoding="utf-8")
    first = tmp_path / "a.yaml"
    first.write_text(text, encoding="utf-8")
    intents, _ = load_intents([first])
    trained = load_model(intents, "en")
    files = list((tmp_path / "cache" / "nlu").glob("*.pkl"))
    assert [f.stem for f in files] == [model_key(intents, "en")]

    monkeypatch.setattr(statistical, "_MODELS", {})
    monkeypatch.setattr(StatisticalModel, "fit", lambda *a, **k: pytest.fail("retrained"))
    again = load_model(intents, "en")  # from disk, not trained again
    assert again.classes == trained.classes and again is not trained

    moved = tmp_path / "elsewhere" / "b.yaml"  # the same content elsewhere: same model
    moved.parent.mkdir()
    moved.write_text(text, encoding="utf-8")
    assert model_key(load_intents([moved])[0], "en") == model_key(intents, "en")
    changed = tmp_path / "c.yaml"
    changed.write_text(
        text.replace("(hello|hi|hey|howdy", "(hello|hi|hey|hiya|howdy"), encoding="utf-8"
    )
    assert model_key(load_intents([changed])[0], "en") != model_key(intents, "en")


def test_tiers_in_order(restaurant) -> None:  # type: ignore[no-untyped-def]
    m = IntentMatcher(restaurant, "en", today=TUESDAY)
    allowed = {"book_table", "inform", "opening_hours", "goodbye", "human_agent", "repeat"}
    exact = m.match("a table for 4 on friday at 8 pm", allowed)
    assert exact is not None and exact.matcher == "exact" and exact.confidence == 1.0
    stat = m.match("hiya, any chance of squeezing four of us in on friday around eight?", allowed)
    assert stat is not None and stat.matcher == "statistical"
    assert stat.intent in ("book_table", "inform")  # both book here
    assert stat.slots == {"party_size": 4, "day": "friday", "time": "20:00"}
    assert 0.5 <= stat.confidence < 1
    spotted = m.match("right, I will think about it and call back, cheers, bye bye", allowed)
    assert spotted is not None and spotted.intent == "goodbye"
    assert m.match("purple elephants dance on the moon", allowed) is None
    assert m.match("do you have parking", allowed) is None  # none of the bot's intents
    # partial transcripts: only interim intents, exact tier only
    assert m.match("I'd fancy a table", allowed, interim=True) is None


def test_the_value_asked_for_fills_its_slot(restaurant) -> None:  # type: ignore
    m = IntentMatcher(restaurant, "en", today=TUESDAY)
    allowed = {"book_table", "inform", "goodbye", "human_agent", "repeat"}
    found = m.match("hmm let me check my calendar, thursday works", allowed, expect="day")
    assert found is not None and found.slots == {"day": "thursday"}
    found = m.match("eight", allowed, expect="party_size")
    assert found is not None and found.slots == {"party_size": 8}
    found = m.match("eight", allowed, expect="time")
    assert found is not None and found.slots == {"time": "20:00"}


def test_a_bare_hour_after_a_time_cue_is_a_time(restaurant) -> None:  # type: ignore
    m = IntentMatcher(restaurant, "en", today=TUESDAY)
    allowed = {"book_table", "inform", "affirm", "deny", "goodbye", "human_agent", "repeat"}
    found = m.match("three, and could we make it for about eight?", allowed, expect="party_size")
    assert found is not None and found.slots == {"party_size": 3, "time": "20:00"}
    found = m.match("can we push it to eight?", allowed)
    assert found is not None and found.intent == "inform" and found.slots == {"time": "20:00"}


def test_a_slot_said_twice_the_way_a_listener_resolves_it(restaurant) -> None:  # type: ignore
    m = IntentMatcher(restaurant, "en", today=TUESDAY)
    allowed = {"inform", "affirm", "deny", "goodbye", "repeat", "opening_hours"}
    # a named date beats the weekday it agrees with, wherever it stands
    found = m.match("for the sunday, please, the twentieth", allowed, expect="day")
    assert found is not None and found.slots["day"].date == dt.date(2026, 12, 20)
    # the first firm time, not the limit after it
    found = m.match("around seven, seven thirty at the latest", allowed, expect="time")
    assert found is not None and found.slots == {"time": "19:00"}
    # the hour made precise
    found = m.match("uh, seven, seven fifteen", allowed, expect="time")
    assert found is not None and found.slots == {"time": "19:15"}
    # an explicit total wins over the people listed before it
    found = m.match(
        "me, jim, our sandra and her two boys, so that's five", allowed, expect="party_size"
    )
    assert found is not None and found.slots == {"party_size": 5}
    # a value inside a rejected one is rejected too
    found = m.match("the time, nine instead of half seven", allowed, expect="time")
    assert found is not None and found.slots == {"time": "21:00"}
    # "2 more" changes the number, it is none
    found = m.match("no, it's fourteen now, two more people said they're coming", allowed)
    assert found is not None and {**found.slots, **found.mentioned} == {"party_size": 14}


def test_a_value_swallowing_the_start_of_the_next_one_is_cut(restaurant) -> None:  # type: ignore
    """ "on Thursday 3" is a date, but in "on Thursday, 3 of us" the 3 is the party: the
    spotter offers the day without it, and the statistical tier's tiling takes both."""
    m = IntentMatcher(restaurant, "en", today=TUESDAY)
    words = normalize("a table on thursday, three of us", "en").split()
    spans = m.model.spotter.find(words, TUESDAY)
    cut = [s for s in spans if s.cut]
    assert [(words[s.start : s.end], s.definition) for s in cut] == [(["on", "thursday"], "day")]
    allowed = {"book_table", "cancel_booking", "opening_hours", "inform", "greet"}
    found = m.match("we'd like a table on saturday, four of us, at half seven", allowed)
    assert found is not None and found.intent == "book_table"
    assert (str(found.slots["day"]), found.slots["party_size"], found.slots["time"]) == (
        "saturday",
        4,
        "19:30",
    )
    # a time that ends in a day word gives both: the time and the day
    found = m.match("could i book for quarter to nine tonight, three, sorry, four people", allowed)
    assert found is not None and (found.slots["time"], found.slots["party_size"]) == ("20:45", 4)
    assert found.slots["day"].date == TUESDAY


def test_a_value_rejected_after_it_or_judged_as_a_time_is_no_count(restaurant) -> None:  # type: ignore
    m = IntentMatcher(restaurant, "en", today=TUESDAY)
    allowed = {"inform", "affirm", "deny", "goodbye", "repeat", "opening_hours"}
    # an echo of the read-back rejected right after it ("nine? no"), the time said again
    found = m.match("Nine? No, I said nineteen hundred. Seven in the evening.", allowed)
    assert found is None or {**found.slots, **found.mentioned} == {"time": "19:00"}
    # a lone number beside words that only judge a time is no party size
    found = m.match("six is too early, can we do seven?", allowed)
    assert found is None or "party_size" not in {**found.slots, **found.mentioned}


def test_a_value_beside_the_one_it_replaces_is_no_plain_no(restaurant) -> None:  # type: ignore
    m = IntentMatcher(restaurant, "en", today=TUESDAY)
    allowed = {"inform", "affirm", "deny", "goodbye", "repeat", "human_agent"}
    found = m.match("friday, not thursday", allowed)
    assert found is None or found.intent != "deny"  # asked again at worst, never a plain no
    found = m.match("no, five of us, not four", allowed)
    assert found is not None and {**found.slots, **found.mentioned} == {"party_size": 5}


def test_acknowledgements_and_farewells(restaurant) -> None:  # type: ignore
    m = IntentMatcher(restaurant, "en", today=TUESDAY)
    confirm = {"affirm": "booked", "deny": "change_booking", "goodbye": "goodbye"}
    for text in ("spot on", "bang on, cheers", "aye, go on then", "absolutely, thank you so much"):
        found = m.match(text, confirm)
        assert found is not None and found.intent == "affirm", text
    # "Anything else?": where a plain no ends the call too, a closing goodbye is one
    anything_else = {"affirm": "how_can_i_help", "deny": "goodbye", "goodbye": "goodbye"}
    found = m.match("alright, that's lovely. thank you, dear, goodbye", anything_else)
    assert found is not None and found.intent == "goodbye"
    # an unknown question is no goodbye; a call intent needs no values beside it
    assert m.match("is it byo?", {"inform", "goodbye", "repeat", "opening_hours"}) is None


def test_two_close_readings_ask_instead_of_guessing(restaurant) -> None:  # type: ignore
    m = IntentMatcher(restaurant, "en", today=TUESDAY)
    names = frozenset({"book_table", "inform", "cancel_booking"})
    same = lambda intent: "ask_party_size" if intent in ("book_table", "inform") else intent  # noqa: E731
    close = {"book_table": 0.45, "cancel_booking": 0.40, "": 0.15}
    assert m._choose(None, close, names, lambda i: i) is None  # 0.05 apart: ask
    clear = {"book_table": 0.70, "cancel_booking": 0.20, "": 0.10}
    assert m._choose(None, clear, names, lambda i: i) == ("book_table", 0.7, "statistical")
    # intents with the same action are one reading
    split = {"book_table": 0.40, "inform": 0.35, "cancel_booking": 0.15, "": 0.10}
    assert m._choose(None, split, names, lambda i: i) is None
    assert m._choose(None, split, names, same) == ("book_table", 0.75, "statistical")
    # an intent the state does not take counts against the others, like "none"
    assert m._choose(None, {"book_table": 0.5, "greet": 0.45, "": 0.05}, names, lambda i: i) is None
    weak = {"book_table": 0.45, "": 0.2, "cancel_booking": 0.2, "inform": 0.15}
    assert m._choose(None, weak, names, lambda i: i) is None  # below the acceptance level


def test_values_alone_carry_a_reading_only_where_one_is_clear(restaurant) -> None:  # type: ignore
    """Where no reading was clear, values the caller gave go to the state's intent that
    carries them - unless intents of other actions carry them about as likely, the
    utterance is likelier off-topic, or the transcript is mostly words the bot never
    uses."""
    m = IntentMatcher(restaurant, "en", today=TUESDAY)
    words = normalize("half past eight is what i said", "en").split()
    spans = m.model.spotter.find(words, TUESDAY)
    names = frozenset({"book_table", "inform", "cancel_booking", "opening_hours", "repeat"})
    act = {"book_table": "check", "inform": "check"}
    action = lambda intent: act.get(intent, intent)  # noqa: E731

    turn = m._analyse("half past eight is what i said", names, None, None)
    assert turn is not None and turn.words == words and turn.spans == spans

    def valued(probs: dict[str, float]) -> object:
        return m._valued(turn._replace(probs=probs, action=action))

    found = valued({"inform": 0.3, "book_table": 0.1, "repeat": 0.4, "": 0.2})
    assert found is not None and (found.intent, found.slots) == ("inform", {"time": "20:30"})
    # a booking or a cancellation, 0.3 against 0.25 of the values' carriers: ask
    assert valued({"inform": 0.3, "cancel_booking": 0.25, "": 0.45}) is None
    assert valued({"inform": 0.1, "book_table": 0.1, "": 0.8}) is None  # too little
    assert valued({"inform": 0.3, "": 0.35, "repeat": 0.35}) is None  # off-topic likelier
    # through the whole matcher: a clear transcript is read, a garbled one is not
    allowed = {n: action(n) for n in names}
    found = m.match("oh dear, it was half past eight I said, not nine", allowed)
    assert found is not None and found.slots == {"time": "20:30"}
    # (known words 0.57: past the garbled-transcript bar of the tiers before, not this one)
    assert m.match("so it was half past eight grobble flam snork", allowed) is None


def test_the_last_sentence_answers_only_where_the_whole_reads_as_nothing(restaurant) -> None:  # type: ignore
    m = IntentMatcher(restaurant, "en", today=TUESDAY)
    allowed = {"affirm", "deny", "inform", "opening_hours", "goodbye", "repeat"}
    welcome = {"book_table", "inform", "cancel_booking", "opening_hours", "greet", "goodbye"}
    found = m.match("Hang on. Sorry, the dog! Right. I'd like to book a table for Friday.", welcome)
    assert found is not None and found.intent == "book_table" and found.matcher == "statistical"
    # never a yes or a no: "I said Friday, not Thursday. Sorry. Yes." answers no read-back
    found = m.match("Hmm, I said Friday not Thursday. Sorry. Yes.", allowed)
    assert found is None or found.intent != "affirm"
    assert m.match("Is the garden open then? Never mind. Yes, that's fine. ...", allowed) is None
    # a fragment that only the classifier reads is no answer
    assert m.match("I think I left my umbrella there yesterday. It's a black one.", welcome) is None
    # one sentence: nothing to split
    one = "is the garden open then"
    assert m._last_sentence(one, _analysed(m, one, allowed)) is None


def test_a_template_inside_free_words_is_read_when_it_holds_every_value(restaurant) -> None:  # type: ignore
    m = IntentMatcher(restaurant, "en", today=TUESDAY)
    confirm = {"affirm", "deny", "inform", "book_table", "opening_hours", "goodbye", "repeat"}
    found = m.match("could you make it five people, my wife is coming too", confirm)
    assert found is not None and (found.intent, found.slots) == ("inform", {"party_size": 5})
    assert found.matcher == "spotted"
    # a value outside the stretch is another answer: neither is taken from the stretch
    outside = "make it 6 people the kids need to be home by 9"
    assert m._template_inside(_analysed(m, outside, confirm)) is None
    # a bare number read as a count and as a time is only the slot asked for
    assert m._template_inside(_analysed(m, "hmm thats a bit late can we do 8", confirm)) is None


def test_a_yes_opening_a_turn_with_a_question_the_bot_cannot_answer(restaurant) -> None:  # type: ignore
    m = IntentMatcher(restaurant, "en", today=TUESDAY)
    confirm = {"affirm", "deny", "inform", "book_table", "opening_hours", "goodbye", "repeat"}
    found = m.match("Yes, go ahead. Do you have a kids menu, by the way?", confirm)
    assert found is not None and found.intent == "affirm"
    # a hedge is no yes, and a value beside the yes is a change to ask about
    assert m.match("Yes, but is there parking?", confirm) is None
    found = m.match("Yes. Can we make it a bit earlier?", confirm)
    assert found is None or found.intent != "affirm"  # a change asked for, no plain yes
    asks = "Yes, go ahead. Is that the Saturday?"
    assert m._answering_clause(asks, _analysed(m, asks, confirm)) is None


def test_a_call_phrase_among_values_is_no_call_intent(restaurant) -> None:  # type: ignore
    m = IntentMatcher(restaurant, "en", today=TUESDAY)
    confirm = {"affirm", "deny", "inform", "book_table", "opening_hours", "goodbye", "repeat"}
    found = m.match("oh no no, that's all wrong, it's sunday at seven, for five", confirm)
    assert found is None or found.intent != "goodbye"
    found = m.match("thanks, that's all, bye", confirm)
    assert found is not None and found.intent == "goodbye"


def test_a_number_the_recogniser_repeats_at_the_end_is_no_second_value(restaurant) -> None:  # type: ignore
    m = IntentMatcher(restaurant, "en", today=TUESDAY)
    asking = {"inform", "book_table", "opening_hours", "goodbye", "repeat", "human_agent"}
    found = m.match("three adults and one child. 3", asking, expect="party_size")
    assert found is not None and found.slots == {"party_size": 4}
    # a new value said alone after a sum is not an echo of one of its words
    found = m.match("three adults and one child. 5", asking, expect="party_size")
    assert found is None or found.slots.get("party_size") != 4


def test_a_yes_opening_a_request_of_its_own_is_no_yes(restaurant) -> None:  # type: ignore
    m = IntentMatcher(restaurant, "de", today=TUESDAY)
    anything = {"affirm", "deny", "book_table", "inform", "opening_hours", "cancel_booking"}
    found = m.match(
        "ja, die Reservierung am Freitag bitte stornieren und dafür am Samstag neu buchen",
        anything,
    )
    assert found is None or found.intent != "affirm"
    assert m.match("ja gerne, danke", anything).intent == "affirm"  # type: ignore[union-attr]


def test_a_number_counting_hours_is_no_count_and_no_time(restaurant) -> None:  # type: ignore
    m = IntentMatcher(restaurant, "de", today=TUESDAY)
    asking = {"inform", "book_table", "opening_hours", "goodbye", "repeat", "human_agent"}
    found = m.match("um halb eins, wir haben nur eine Stunde Pause", asking, expect="time")
    assert found is not None and found.slots == {"time": "12:30"}
    en = IntentMatcher(restaurant, "en", today=TUESDAY)
    found = en.match("at seven, we only have two hours", asking, expect="time")
    assert found is not None and found.slots == {"time": "19:00"}


def test_another_intent_than_the_answer_needs_a_word_of_its_own(restaurant) -> None:  # type: ignore
    m = IntentMatcher(restaurant, "de", today=TUESDAY)
    asking = {"inform", "book_table", "opening_hours", "goodbye", "repeat", "human_agent"}
    found = m.match("übermorgen, also am Donnerstag", asking, expect="day")
    assert found is not None and found.intent in ("inform", "book_table")
    assert found.slots == {"day": "thursday"}
    found = m.match("wann macht ihr am Donnerstag auf?", asking, expect="day")
    assert found is not None and found.intent == "opening_hours"
    en = IntentMatcher(restaurant, "en", today=TUESDAY)
    found = en.match("I told you, on friday", asking, expect="party_size")
    assert found is None or found.intent != "opening_hours"


def test_a_closing_goodbye_beats_an_unsure_guess(restaurant) -> None:  # type: ignore
    m = IntentMatcher(restaurant, "de", today=TUESDAY)
    asking = {"inform", "book_table", "opening_hours", "goodbye", "repeat", "human_agent"}
    found = m.match("ach wissen Sie, ich melde mich später nochmal, tschüss", asking)
    assert found is not None and found.intent == "goodbye"


def test_a_bare_number_a_template_took_as_another_slot_answers_the_question(restaurant) -> None:  # type: ignore
    m = IntentMatcher(restaurant, "de", today=TUESDAY)
    allowed = {"book_table", "inform", "opening_hours", "goodbye", "repeat"}
    found = m.match("geht auch zehn?", allowed, expect="party_size")
    assert found is not None and found.slots == {"party_size": 10}
    # a time cue keeps it a time; asked for the time, it is one
    found = m.match("geht auch um zehn?", allowed, expect="party_size")
    assert found is not None and found.slots == {"time": "22:00"}
    found = m.match("geht auch zehn?", allowed, expect="time")
    assert found is not None and found.slots == {"time": "22:00"}
    # a number inside a longer value stays that value
    assert m.match("20 Uhr", allowed, expect="party_size").slots == {"time": "20:00"}  # type: ignore[union-attr]
    assert m.match("4 Personen", allowed, expect="time").slots == {"party_size": 4}  # type: ignore[union-attr]


def test_confidence_is_calibrated_on_the_dev_corpora() -> None:
    """Expected calibration error of the statistical tier's intents, on sentences nobody
    wrote templates for: ~0.07 (en) and ~0.11 (de) when measured; must stay below 0.15."""
    for pipeline, corpus in (
        ("restaurant.yaml", "restaurant_en_dev.yaml"),
        ("restaurant_de.yaml", "restaurant_de_dev.yaml"),
    ):
        loaded = load_bot(load_pipeline(PIPELINES / pipeline))
        items = load_corpus(CORPUS / corpus, loaded)
        matcher = loaded.matcher(items.language, items.today)
        points = []
        for item in items.items:
            state = loaded.bot.flow.states[item.state]
            found = matcher.match(item.say, loaded.bot.actions(state), expect=state.collect)
            if found is not None and found.matcher == "statistical":
                points.append((found.confidence, found.intent == item.intent))
        assert len(points) >= 40
        bins: dict[int, list[tuple[float, bool]]] = {}
        for confidence, ok in points:
            bins.setdefault(min(4, int((confidence - 0.5) / 0.1)), []).append((confidence, ok))
        ece = sum(
            abs(sum(ok for _, ok in b) / len(b) - sum(c for c, _ in b) / len(b)) * len(b)
            for b in bins.values()
        ) / len(points)
        assert ece < 0.15, (corpus, ece)


def test_matching_stays_off_the_loop_budget(restaurant) -> None:  # type: ignore
    """Not a timing target (that is `voicebot bench understanding`), a guard against a tier
    that went quadratic: 200 long utterances in well under a second each."""
    m = IntentMatcher(restaurant, "en", today=TUESDAY)
    allowed = {"book_table", "inform", "opening_hours", "goodbye", "human_agent", "repeat"}
    text = (
        "hello yes um I was wondering if I could maybe reserve a table for friday evening "
        "for four of us at around half past seven if that's okay with you thanks"
    )

    async def many() -> None:
        for _ in range(200):
            m.match(text, allowed)

    asyncio.run(asyncio.wait_for(many(), timeout=60))


def _analysed(m: IntentMatcher, text: str, allowed: set[str]) -> _Turn:
    """``text`` as the tiers after the exact one read it in a state taking ``allowed``."""
    turn = m._analyse(text, frozenset(allowed), allowed, None)
    assert turn is not None
    return turn


def test_a_bare_number_answers_the_slot_asked_for_unless_a_cue_says_otherwise(restaurant) -> None:  # type: ignore
    """The slot filler never learnt a bare number as a time (``_asked_only``): its
    certainty that "go with 7" is a count gives way to the question asked; a cue word
    ("at 7") and a longer value ("7 people") still decide."""
    m = IntentMatcher(restaurant, "en", today=TUESDAY)
    time = {"inform", "opening_hours", "repeat", "goodbye", "human_agent"}
    for said in ("Let's go with seven.", "Early evening, maybe six?"):
        found = m.match(said, time, expect="time")
        assert found is not None and set(found.slots) == {"time"}, (said, found)
    found = m.match("Eight, and it would be Saturday at seven.", time, expect="party_size")
    assert found is not None and (found.slots["party_size"], found.slots["time"]) == (8, "19:00")
    found = m.match("Let's go with seven people.", time, expect="time")
    assert found is not None and found.slots == {"party_size": 7}


def test_sagen_wir_opens_no_count(restaurant) -> None:  # type: ignore
    """ "sagen wir acht" is "let's say eight": the answer to the question asked, not
    "wir 8" (we are eight) - "wir sind acht" still is."""
    m = IntentMatcher(restaurant, "de", today=TUESDAY)
    asking = {"inform", "opening_hours", "repeat", "goodbye", "human_agent"}
    found = m.match("So gegen acht, halb neun... sagen wir acht.", asking, expect="time")
    assert found is not None and found.slots == {"time": "20:00"}
    found = m.match("Hm, sagen wir acht, wir sind acht.", asking)
    assert found is not None and found.slots.get("party_size") == 8


def test_two_values_joined_by_or_are_not_decided(restaurant) -> None:  # type: ignore
    """ "Friday or Saturday" names no day (the bot asks); a value said after the
    choice decides it ("Freitag oder Samstag ... ach, machen wir Samstag")."""
    en = IntentMatcher(restaurant, "en", today=TUESDAY)
    de = IntentMatcher(restaurant, "de", today=TUESDAY)
    asking = {"inform", "opening_hours", "repeat", "goodbye", "human_agent"}
    for m, said in (
        (en, "Could be Friday or Saturday, which one's quieter?"),
        (en, "six or seven, not sure yet"),
        (de, "Freitag oder Samstag"),
    ):
        found = m.match(said, asking, expect="day")
        assert found is None or not found.slots, (said, found)
    found = de.match("Hm, Freitag oder Samstag... ach, machen wir Samstag.", asking, expect="day")
    assert found is not None and found.slots == {"day": "saturday"}
    found = en.match("Friday or Saturday, let's say Saturday", asking, expect="day")
    assert found is not None and found.slots == {"day": "saturday"}
    # one of the two said again settles it
    for said in ("Friday or Saturday. Hmm, Saturday I think.", "Friday or Saturday, Saturday."):
        found = en.match(said, asking, expect="day")
        assert found is not None and found.slots == {"day": "saturday"}, (said, found)
    # a third value after the choice, with no word that settles it, settles nothing
    for said in (
        "Either Friday or Saturday, Sunday is out",
        "Friday or Saturday, Sunday maybe",
        "Friday or Saturday, we can't do Sunday.",
    ):
        found = en.match(said, asking, expect="day")
        assert found is None or not found.slots, (said, found)


def test_a_yes_before_a_closing_phrase_confirms_it_does_not_hang_up(restaurant) -> None:  # type: ignore
    """ "Yep, that's it" at the read-back is a yes; "Nope, that's it" at "Anything else?"
    the goodbye it does the same as."""
    m = IntentMatcher(restaurant, "en", today=TUESDAY)
    confirm = {"affirm", "deny", "inform", "book_table", "goodbye", "repeat", "human_agent"}
    found = m.match("Yep, that's it. Oh, do you have parking, by the way?", confirm)
    assert found is not None and found.intent == "affirm"
    more = {"affirm", "deny", "goodbye", "opening_hours"}
    found = m.match("Nope, that's it.", more)
    assert found is not None and found.intent in ("goodbye", "deny")
    actions = {"affirm": "go:how_can_i_help", "deny": "go:goodbye", "goodbye": "go:goodbye"}
    found = m.match("Yes, that is it, cheers.", actions)  # a no would close the call too
    assert found is not None and found.intent == "goodbye"
    confirm_actions = {"affirm": "confirm:booked", "deny": "confirm:change", "goodbye": "go:bye"}
    found = m.match("Yes, that's it. Tell me, is there parking?", confirm_actions)
    assert found is None or found.intent == "affirm"


def test_an_answer_with_a_question_of_unknown_words_keeps_the_answer(restaurant) -> None:  # type: ignore
    de = IntentMatcher(restaurant, "de", today=TUESDAY)
    en = IntentMatcher(restaurant, "en", today=TUESDAY)
    asking = {"inform", "opening_hours", "repeat", "goodbye", "human_agent"}
    found = de.match("Zwölf Personen, und darf man eigentlich einen Hund mitbringen?", asking)
    assert found is not None and found.slots == {"party_size": 12}
    confirm = {"affirm", "deny", "inform", "goodbye", "repeat", "human_agent"}
    found = de.match("Jawoll, machen Sie das. Ach, und gibt's bei Ihnen Parkplätze?", confirm)
    assert found is not None and found.intent == "affirm"
    # a lone "oh" opening a question is no yes
    found = en.match("Oh, and is there anywhere to park nearby?", {"affirm", "deny", "goodbye"})
    assert found is None


def test_the_value_set_against_a_rejected_one_takes_its_slot(restaurant) -> None:  # type: ignore
    m = IntentMatcher(restaurant, "en", today=TUESDAY)
    confirm = {"affirm", "deny", "inform", "book_table", "goodbye", "repeat", "human_agent"}
    for said in ("Wednesday's right, but seven, not half six.", "not half six but seven"):
        found = m.match(said, confirm)
        assert found is not None and found.slots.get("time") == "19:00", (said, found)
        assert "party_size" not in found.slots


def test_people_who_drop_out_are_no_party_size(restaurant) -> None:  # type: ignore
    m = IntentMatcher(restaurant, "en", today=TUESDAY)
    confirm = {"affirm", "deny", "inform", "book_table", "goodbye", "repeat", "human_agent"}
    found = m.match("make it 8 people? A couple have dropped out.", confirm)
    assert found is None or found.slots.get("party_size") == 8
    # the number before those who leave is the old one: no value, the bot asks
    found = m.match("We were eight, but two have dropped out.", confirm)
    assert found is None or "party_size" not in found.slots


def test_an_answer_that_names_no_value_is_no_reading(restaurant) -> None:  # type: ignore
    """Every template of "inform" carries a value: read with none, it is nothing."""
    m = IntentMatcher(restaurant, "en", today=TUESDAY)
    assert m.model is not None and "inform" in m.model.valued
    assert "affirm" not in m.model.valued
    welcome = {"book_table", "inform", "opening_hours", "cancel_booking", "greet", "goodbye"}
    found = m.match("I'm ringing about a jacket I left. It was the green one.", welcome)
    assert found is None or found.intent != "inform" or found.slots


def test_no_value_inside_a_phrase_that_names_none(restaurant) -> None:  # type: ignore
    m = IntentMatcher(restaurant, "en", today=TUESDAY)
    asking = {"inform", "opening_hours", "repeat", "goodbye", "human_agent"}
    found = m.match("Fifteen of us, it's the office Christmas do.", asking, expect="party_size")
    assert found is not None and found.slots == {"party_size": 15}
    found = m.match("Not sure, sometime in the evening, it's the only one under Patel.", asking)
    assert found is None or "party_size" not in found.slots
    found = m.match("We'll take the one o'clock.", asking, expect="time")
    assert found is not None and found.slots == {"time": "13:00"}
    found = m.match("Christmas, do you have anything?", asking, expect="day")
    assert found is not None and str(found.slots.get("day")) == "friday"  # the 25th


def test_a_turn_that_judges_a_time_makes_a_lone_number_a_time(restaurant) -> None:  # type: ignore
    en = IntentMatcher(restaurant, "en", today=TUESDAY)
    de = IntentMatcher(restaurant, "de", today=TUESDAY)
    confirm = {"affirm", "deny", "inform", "book_table", "goodbye", "repeat", "human_agent"}
    for said, time in (
        ("Nine's too late for us. Can we do seven?", "19:00"),
        ("Would earlier work? Like seven?", "19:00"),
    ):
        found = en.match(said, confirm)
        assert found is not None and found.slots == {"time": time}, (said, found)
    # a value asked about is offered, not rejected
    asking = {"inform", "opening_hours", "repeat", "goodbye", "human_agent"}
    found = en.match("Is nine too late?", asking, expect="time")
    assert found is not None and found.slots == {"time": "21:00"}
    found = de.match("Ist neun zu spät?", asking, expect="time")
    assert found is not None and found.slots == {"time": "21:00"}
    found = en.match("nine is too late", asking, expect="time")
    assert found is None or not found.slots
    # people: a count lead, or the question asked, keeps a number a count
    for said in ("That's a bit late. We are 6 then.", "Nine's too late. Hmm, sorry. We are six."):
        found = en.match(said, confirm)
        assert found is not None and found.slots == {"party_size": 6}, (said, found)
    found = en.match("6, we might be a bit late", asking, expect="party_size")
    assert found is not None and found.slots == {"party_size": 6}


def test_one_of_two_said_again_in_doubt_settles_nothing(restaurant) -> None:  # type: ignore
    m = IntentMatcher(restaurant, "en", today=TUESDAY)
    asking = {"inform", "opening_hours", "repeat", "goodbye", "human_agent"}
    for said, expect in (
        ("Friday or Saturday, I'm not sure about Friday", "day"),
        ("six or seven, not sure if seven will make it", "party_size"),
    ):
        found = m.match(said, asking, expect=expect)
        assert found is None or not found.slots, (said, found)
