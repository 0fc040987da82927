"""The bot's matcher: templates first, then the statistical tier, values found anywhere.

``IntentMatcher.match`` decides in this order:

1. **exact** - the templates over the whole utterance (``template_matcher``); a
   bare number a template took as another slot answers the slot asked for when
   that slot reads it too ("geht auch 10?" after "Für wie viele Personen?").
2. **fuzzy and statistical** - the bounded edit alignment on the templates and
   the classifiers trained from them (``statistical.py``) each propose a
   reading; readings leading to the same action (``allowed`` may map intents to
   what the bot does with them) agree, different ones must be ``margin``
   apart or the answer is no match: two close readings -> ask, never guess.
   The chosen intent keeps every slot that was understood; a value the caller
   gave that could not be read is left for the flow to ask for.
3. **spotted** - an intent marked ``spot: true`` (goodbye, human agent,
   repeat) matched by a stretch of a longer utterance ("thanks so much, bye
   bye").
4. **the value asked for** - in a state that collects a slot, a value of that
   slot among free words ("um, I guess around eight-ish", "Friday if that's
   okay") fills it, unless the utterance reads as something else entirely.
5. **the values given** - where still no reading was clear, values the caller
   clearly gave ("it was one o'clock I said, not half past twelve" at the
   read-back, "thursday would suit us better than friday") go to the state's
   intent carrying them all, when its action holds most of the probability of
   those intents, clearly beats "none", and the transcript is mostly words the
   bot knows. A bare number
   that reads as a count and as a time is only the slot asked for.
6. **the last sentence** - several sentences that read as nothing together
   ("Sorry, hang on. Josh, put that down! Hi, yes, I'd like to book a
   table."): the last one, matched alone, says what the caller wants, when a
   template reads it or the classifier is sure of it (a fragment like "It's a
   blue one." is no answer), never as a yes or a no; the values the whole
   turn gave for its intent are kept.
7. **the answering clause** - an answer with a question the bot cannot answer
   strung onto it ("Half seven - oh, and is there wheelchair access?"): the one
   clause (``clauses.py``) that reads as something and gives values, when
   every other clause reads as nothing; a yes or no only when a template reads
   it opening a turn that names no value ("Yes, book it. Is there a dress
   code?").
8. **a template inside** - a template's stretch with free words around it
   ("make it three people, my mum's coming too"): it gives values, every value
   of the turn lies in it, and the classifier reads nothing else clearly.

Confidence: 1.0 exact, the fuzzy tier's edit score, the classifier's
probability. Partial transcripts only ever use the exact tier.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any, NamedTuple

from voicebot.nlu.clauses import clauses, is_question
from voicebot.nlu.intent_file import IntentSet
from voicebot.nlu.match import AFFIRM, Match, Matcher, MatcherKind
from voicebot.nlu.normalize import normalize
from voicebot.nlu.spotting import Span
from voicebot.nlu.statistical import NONE, StatisticalModel, load_model, time_talk
from voicebot.nlu.template_matcher import TemplateMatcher

ACCEPT = 0.6  # a statistical reading needs at least this probability
MARGIN = 0.2  # ... and this lead over the next different reading (or over "none")
SLOT_ACCEPT = 0.5  # a spotted value fills a slot at this probability
EXPECTED_ACCEPT = 0.6  # the value asked for, among free words
VALUE_ACCEPT = 0.8  # values given where no reading was clear: the intent carrying them
VALUED_ACCEPT = 0.25  # ... if the intents carrying them have this probability together
VALUED_SHARE = 0.7  # ... and one action this share of it (a booking, not a cancellation)
VALUED_KNOWN = 0.7  # ... and only in a clear transcript: this share of words the bot knows
NONE_VETO = 0.9  # an utterance this likely to be off-topic fills no slot it was asked for
INSIDE_NONE_VETO = 0.9  # ... nor gives the values of a template inside it
OTHER_VETO = 0.5  # ... nor one this likely to be another intent, and clearly so
SPOT_CONFIDENCE = 0.8
EVIDENCE_MIN_LETTERS = 4  # a word that shows an intent is a content word
SPOT_AMONG_VALUES = 0.2  # a call intent spotted among values needs this probability
FUZZY_MAX_WORDS = 10
MAX_WORDS = 60  # a longer turn is a recogniser's loop ("19.19.19..."): the rest is not read
EXPECT_INTENT_ODDS = 3.0  # an utterance with a value of the slot asked for answers it
SURE = 0.9  # a classifier this sure needs no fuzzy alignment beside it
KNOWN_SHARE = 0.5  # fewer known words than this: a garbled transcript, no reading
LAST_SENTENCE_MAX_WORDS = 25  # a longer last sentence was read with the whole turn already
MAX_CLAUSES = 4  # a turn of more clauses is read whole (or by its last sentence) only


class IntentMatcher(Matcher):
    """Exact, fuzzy, statistical and spotting tiers over one intent set and language."""

    def __init__(
        self,
        intent_set: IntentSet,
        language: str,
        *,
        today: dt.date | Callable[[], dt.date] | None = None,
        fuzzy: bool = True,
        statistical: bool = True,
        margin: float = MARGIN,
        model: StatisticalModel | None = None,
    ) -> None:
        self.language = language
        self.intent_set = intent_set
        # The fuzzy tier aligns template-like utterances with a misheard word; longer
        # ones are the statistical tier's (and would cost the fuzzy DP milliseconds).
        self.templates = TemplateMatcher(
            intent_set,
            language,
            today=today,
            fuzzy=fuzzy,
            fuzzy_max_words=FUZZY_MAX_WORDS if statistical else None,
        )
        self.margin = margin
        self.model = (
            model if model is not None or not statistical else load_model(intent_set, language)
        )
        self._spot = frozenset(n for n, d in intent_set.intents.items() if d.spot == "anywhere")
        self._spot_start = frozenset(n for n, d in intent_set.intents.items() if d.spot == "start")
        self._slots_of = {n: frozenset(d.slots) for n, d in intent_set.intents.items()}

    def today(self) -> dt.date:
        return self.templates.today()

    def warm(self, allowed_sets: Iterable[Collection[str]]) -> None:
        """Build the per-state tables now (a flow's states), not in a call's first turn."""
        for allowed in allowed_sets:
            self.match("hello", allowed)

    def match(
        self,
        text: str,
        allowed: Collection[str] | None = None,
        *,
        interim: bool = False,
        expect: str | None = None,
    ) -> Match | None:
        names = frozenset(self.intent_set.intents if allowed is None else allowed)
        if interim or self.model is None:
            return self.templates.match(text, names, interim=interim, expect=expect)
        found = self._exact(text, names, expect)
        if found is not None:
            return found
        turn = self._analyse(text, names, allowed, expect)
        if turn is None:
            return None
        # the whole turn is analysed once; the later tiers read parts of it only where
        # the whole said nothing clear
        found = (
            self._read(text, turn)
            or self._last_sentence(text, turn)
            or self._answering_clause(text, turn)
            or self._template_inside(turn)
        )
        # the first tier that reads the turn decides; an answer it read without a value
        # is no reading - a later tier reading a part ("Can we do seven?" of "Nine's too
        # late for us. Can we do seven?") would miss what the whole said
        return None if found is None or self._no_value(found) else found

    def _no_value(self, found: Match) -> bool:
        """An answer that gives no value is no answer ("It's a blue one."): the intent's
        every template carries a value (``StatisticalModel.valued``) and none was read."""
        assert self.model is not None
        return found.intent in self.model.valued and not (
            found.slots or found.mentioned or found.unsure
        )

    def _template_inside(self, turn: _Turn) -> Match | None:
        """A template's stretch with free words around it: "make it three people, my
        mum's coming too" at the read-back. The stretch gives values, every value of the
        turn lies in it, the transcript is clear and the classifier reads nothing else
        clearly; one such stretch only (two intents' stretches: ask)."""
        words, spans, names, action, expect = (
            turn.words,
            turn.spans,
            turn.names,
            turn.action,
            turn.expect,
        )
        if len(words) < 2 or turn.known < VALUED_KNOWN:
            return None
        found = [
            m
            for m in self.templates.inside(words, names - self._spot_start - self._spot)
            if m.slots and (m.start, m.end) != (0, len(words))
        ]
        if not found:
            return None
        best = max(found, key=lambda m: (m.literals, m.end - m.start))
        if best.literals < 2 or any(
            action(m.intent) != action(best.intent) and m.literals >= best.literals for m in found
        ):
            return None
        # a value outside the stretch ("six, because the kids need to be in bed by
        # nine") is another answer: the turn said neither clearly
        if any(s.end <= best.start or s.start >= best.end for s in spans):
            return None
        # a bare number read as a count and as a time ("can we do eight?") is only the
        # slot asked for
        taken = {self._expect_type(slot) for slot, _ in best.slots}
        inside = [s for s in spans if best.start <= s.start and s.end <= best.end]
        for s in inside:
            if (
                s.definition not in taken
                and any(
                    (o.start, o.end) == (s.start, s.end) and o.definition in taken for o in inside
                )
                and not any(
                    o.start <= s.start and s.end <= o.end and o.end - o.start > s.end - s.start
                    for o in inside
                )
            ):
                if expect is None or self._expect_type(expect) not in taken:
                    return None
        probs = turn.classified
        if probs.get(NONE, 0.0) >= INSIDE_NONE_VETO:
            return None  # (the stretch's own words speak for it: "none" must be near sure)
        own = sum(p for c, p in probs.items() if c in names and action(c) == action(best.intent))
        other = max(
            (p for c, p in probs.items() if c in names and action(c) != action(best.intent)),
            default=0.0,
        )
        if other > OTHER_VETO and other - own >= self.margin:
            return None
        found_match = Match(
            best.intent, dict(best.slots), SPOT_CONFIDENCE, "spotted", " ".join(words)
        )
        return self._as_asked(found_match, expect)

    def _answering_clause(self, text: str, turn: _Turn) -> Match | None:
        """An answer with a question the bot cannot answer strung onto it ("Half seven -
        oh, and is there wheelchair access?", "On Thursday, please, and will you be doing
        a Christmas menu?"): the one clause (``clauses.py``) that reads as something,
        with values, when every other clause reads as nothing. A yes or no only opening
        the turn, as a template reads it, in a turn naming no value and asking for no
        change ("yes please, and could you put us near the window?" books; "Yes. Can we
        make it earlier?" does not)."""
        stretches = clauses(text, self.language)
        if len(stretches) < 2 or len(stretches) > MAX_CLAUSES:
            return None
        # only in a clear transcript: a garbled one reads as something somewhere (the
        # question may be all words the bot never learnt: "darf man einen Hund mitbringen?"
        # - then the answering clause must be clear on its own)
        if turn.known < KNOWN_SHARE:
            return None
        names, allowed, expect = turn.names, turn.allowed, turn.expect
        normalized, spans = turn.words, turn.spans
        words = text.split()
        found: Match | None = None
        asked = first_found = False
        clause = ""
        for k, (a, b) in enumerate(stretches):
            part = " ".join(words[a:b])
            reading = self._match(part, names, allowed, expect, fuzzy=False)
            if reading is None:
                asked = asked or is_question(part, self.language)
                continue
            if (
                found is not None
                and reading.intent == found.intent
                and not reading.slots
                and not found.slots
                and not is_question(part, self.language)
            ):
                continue  # the same said twice: "Jawoll, machen Sie das."
            if found is not None or is_question(part, self.language):
                # two clauses say something, or the one that does asks ("six is too
                # early, can we do seven?"): the turn as a whole said neither
                return None
            found, first_found, clause = reading, k == 0, part
        if not asked or found is None:
            return None
        if turn.known < VALUED_KNOWN and self._known(clause) < VALUED_KNOWN:
            return None
        if found.intent in self._spot_start or not found.slots:
            # a yes or no with a question the bot cannot answer after it ("Yes, book it.
            # Is there a dress code?"): the answer, when it opens the turn as a template
            # reads it and the turn names no value (a value would be a change to ask about)
            # ... and the question asks for no change ("Yes. Can we make it earlier?")
            if not (
                found.intent in self._spot_start
                # (the classifier's sure yes of a few words, "Yep, that's it."; never of
                # a lone word, "Oh, and is there parking?")
                and (
                    found.matcher == "exact"
                    or (found.confidence >= SURE and len(clause.split()) > 1)
                )
                and first_found
                and not spans
                and not set(normalized) & _CHANGE_WORDS.get(self.language, frozenset())
            ):
                return None
        if found.matcher == "statistical" and found.confidence < SURE:
            return None  # as for the last sentence: a fragment the classifier half reads
        return dataclasses.replace(
            found, confidence=min(found.confidence, SURE), text=" ".join(normalized)
        )

    def _known(self, text: str) -> float:
        """The share of ``text``'s words this bot's sentences have."""
        assert self.model is not None
        words = normalize(text, self.language).split()
        return self.model.known_share(
            self.model.tokens(words, self.model.spotter.find(words, self.today()))
        )

    def _last_sentence(self, text: str, turn: _Turn) -> Match | None:
        """Several sentences that read as nothing together: the last one says what the
        caller wants ("Sorry, hang on. Josh, put that down! Hi, yes, I'd like to book a
        table."), with the values the whole turn gave for its intent.

        Never a yes or a no (``spot: start``): "I said Friday, not Thursday. Sorry. Yes."
        answers no read-back. The reading is the classifier's kind, however it was found.
        """
        assert self.model is not None
        names, allowed, expect = turn.names, turn.allowed, turn.expect
        sentences = [
            s for s in _SENTENCE_END.split(text.strip()) if normalize(s, self.language).strip()
        ]
        if len(sentences) < 2 or len(sentences[-1].split()) > LAST_SENTENCE_MAX_WORDS:
            return None
        # (no edit alignment: a template reads the last sentence as said, or the classifier)
        last = self._match(sentences[-1], names, allowed, expect, fuzzy=False)
        if last is None or last.intent in self._spot_start:
            return None
        if last.matcher == "statistical" and last.confidence < SURE:
            return None  # a fragment read by the classifier alone ("It's a blue one.")
        slots = dict(last.slots)
        mentioned = dict(last.mentioned)
        wanted = self._slots_of.get(last.intent, frozenset())
        words = turn.words
        whole = self.model.slots(words, turn.spans, expect, None, VALUE_ACCEPT)
        for guess in whole:  # the whole turn read a value of the last sentence otherwise:
            for slot, value in guess.readings:  # "Nine's too late. Can we do seven?" is
                if guess.slot in wanted and slots.get(slot) == value and slot != guess.slot:
                    del slots[slot]  # a time, as the whole said, not seven people
                    slots[guess.slot] = guess.span.value
        if wanted - set(slots):  # values said before the last sentence
            for guess in whole:
                if guess.slot in wanted:
                    slots.setdefault(guess.slot, guess.span.value)
                else:
                    mentioned.setdefault(guess.slot, guess.span.value)
        return dataclasses.replace(
            last,
            slots=slots,
            mentioned=mentioned,
            confidence=min(last.confidence, SURE),
            matcher="statistical",
            text=" ".join(words),
        )

    def _match(
        self,
        text: str,
        names: frozenset[str],
        allowed: Collection[str] | None,
        expect: str | None,
        *,
        fuzzy: bool = True,
    ) -> Match | None:
        """The tiers over the whole of ``text`` (``fuzzy``: with the edit alignment): a
        part of a turn, read as if said alone."""
        found = self._exact(text, names, expect)
        if found is not None:
            return found
        turn = self._analyse(text, names, allowed, expect)
        return self._read(text, turn, fuzzy=fuzzy) if turn is not None else None

    def _exact(self, text: str, names: frozenset[str], expect: str | None) -> Match | None:
        """A template reads the whole of ``text`` as said."""
        found = self.templates.match(text, names, expect=expect, fuzzy=False)
        return self._as_asked(found, expect) if found is not None else None

    def _analyse(
        self,
        text: str,
        names: frozenset[str],
        allowed: Collection[str] | None,
        expect: str | None,
    ) -> _Turn | None:
        """``text`` as every tier after the exact one reads it (None: no words)."""
        assert self.model is not None
        words = normalize(text, self.language).split()[:MAX_WORDS]
        if not words:
            return None
        action = _actions(allowed)
        spans = self.model.spotter.find(words, self.today())
        tokens = self.model.tokens(words, spans)
        classified = self.model.intents(tokens)
        probs = classified
        if expect is not None and any(s.definition == self._expect_type(expect) for s in spans):
            probs = self._with_expect(probs, names, action, expect)
        return _Turn(
            words,
            spans,
            self.model.known_share(tokens),
            classified,
            probs,
            names,
            allowed,
            action,
            expect,
            " ".join(words),
        )

    def _read(self, text: str, turn: _Turn, *, fuzzy: bool = True) -> Match | None:
        """Tiers 2-5 over the analysed ``turn`` (``text`` as heard, for the alignment)."""
        assert self.model is not None
        words, spans, probs, names, action, expect, norm = (
            turn.words,
            turn.spans,
            turn.probs,
            turn.names,
            turn.action,
            turn.expect,
            turn.norm,
        )
        # mostly words no sentence of this bot has: a garbled transcript - only a clear
        # stretch of it may still be taken ("... bye bye")
        known = turn.known
        garbled = known < KNOWN_SHARE
        found: Match | None = None
        # the fuzzy tier only where the classifier is unsure (its DP costs milliseconds)
        unsure = max((p for c, p in probs.items() if c in names), default=0.0) < SURE
        if fuzzy and not garbled and unsure:
            found = self.templates.match_fuzzy(text, names)
        chosen = None if garbled else self._choose(found, probs, names, action)
        # an opening yes or no decides before a goodbye at the end ("yes great, bye"),
        # except where a plain no does what the goodbye does: "Anything else?" - "alright,
        # lovely, thank you, goodbye" closes the call, it asks for nothing more
        yes_no = chosen is None or chosen[0] in self._spot_start
        # ... and a template's call intent closing the utterance beats the classifier's
        # guess of another one: "ach, ich ruf später nochmal an. tschüss" is a goodbye
        guessed_call = chosen is not None and chosen[2] == "statistical" and chosen[0] in self._spot
        # ... as it beats a guess the classifier is unsure of in a turn naming no value
        # ("ach, wissen Sie was, ich ruf später noch mal an, tschüss")
        unsure_guess = (
            chosen is not None
            and chosen[2] == "statistical"
            and chosen[1] < SURE
            and chosen[0] not in self._spot_start
            and not spans
        )
        closing = (
            self._spotted(words, names, closing=True)
            if yes_no or guessed_call or unsure_guess
            else None
        )
        if closing is not None:
            if yes_no and any(
                action(n) == action(closing.intent) for n in self._spot_start & names
            ):
                return closing
            if (
                (guessed_call or unsure_guess)
                and chosen is not None
                and closing.intent != chosen[0]
            ):
                return closing
        if (
            chosen is not None
            and chosen[2] == "statistical"
            and expect is not None
            and self._without_evidence(chosen[0], words, spans, names, action, expect)
        ):
            chosen = None  # "Übermorgen, also am Donnerstag" answers "An welchem Tag?"
        if chosen is not None and chosen[2] == "statistical" and chosen[0] in self._spot:
            if chosen[1] < SURE:
                # a call intent (goodbye, agent, repeat) has phrases of its own that the
                # templates and spotting read; the classifier alone must be sure of it:
                # "it actually can people now" hangs up on nobody
                chosen = None
        if chosen is not None:
            intent, confidence, kind = chosen
            half_sure = kind == "statistical" and confidence < SPOT_CONFIDENCE
            if half_sure and intent in self._spot_start:
                # the classifier half sure of a yes the turn opens with as a template
                # says it ("Yeah, go on then. Sorry for the hassle."): the template's word
                opening = self._opening(words, spans, names, expect, probs)
                if opening is not None and opening.intent == intent:
                    return opening
            slots = dict(found.slots) if found is not None and kind == "fuzzy" else {}
            if kind == "fuzzy":  # "sorry no 8 not 7" aligned to "{party_size} ...": a
                # bare number that reads as a count and as a time is only the slot asked for
                kept = {
                    k: v
                    for k, v in slots.items()
                    if k == expect or not _two_readings(spans, self._expect_type(k), v)
                }
                if slots and not kept:
                    chosen = None  # the alignment's reading rested on that value
                slots = kept
            wanted = self._slots_of.get(intent, frozenset())
            mentioned: dict[str, Any] = {}
            for guess in self.model.slots(words, spans, expect, None, SLOT_ACCEPT):
                if kind == "fuzzy" and guess.readings and guess.slot != expect:
                    continue
                if guess.slot in wanted:
                    slots.setdefault(guess.slot, guess.span.value)
                else:
                    mentioned[guess.slot] = guess.span.value
            # the classifier's guess of a slotless call intent (repeat, goodbye) in an
            # utterance that gives values is no reading: "not 12, 14, 2 more are coming"
            if chosen is not None and not (
                kind == "statistical" and intent in self._spot and mentioned
            ):
                return Match(intent, slots, confidence, kind, norm, mentioned)
        spotted = self._opening(words, spans, names, expect, probs) or self._spotted(
            words, names, action=action
        )
        if spotted is not None and not self._spot_among_values(spotted, words, spans, probs, names):
            return spotted
        if garbled or probs.get(NONE, 0.0) >= NONE_VETO:
            return None
        found = self._expected(turn) if expect is not None else None
        if found is not None or known < VALUED_KNOWN:
            return found
        return self._valued(turn)

    def _without_evidence(
        self,
        intent: str,
        words: list[str],
        spans: list[Span],
        names: frozenset[str],
        action: Callable[[str], str],
        expect: str,
    ) -> bool:
        """The classifier reads another intent than the answer to the question just
        asked, and the turn has no word of that intent's templates that the answer's
        templates lack: no reading of its own (an opening-hours question names "offen",
        "open", "hours" ...; "Übermorgen, also am Donnerstag" answers "An welchem Tag?",
        "I told you, on friday" asks nothing)."""
        carriers = self._own_carriers(names, action, expect)
        if intent in carriers or is_question(" ".join(words), self.language):
            return False  # (a question is the classifier's to read: "ist am Montag zu?")
        inside = {i for s in spans for i in range(s.start, s.end)}
        vocab = self.templates.vocabulary()
        own = set().union(*(vocab.get(c, frozenset()) for c in carriers))
        evidence = vocab.get(intent, frozenset()) - own
        # (a content word: "die" of "die Öffnungszeiten" is no question about them)
        return not any(
            w in evidence and len(w) >= EVIDENCE_MIN_LETTERS
            for i, w in enumerate(words)
            if i not in inside
        )

    def _spot_among_values(
        self,
        spotted: Match,
        words: list[str],
        spans: list[Span],
        probs: Mapping[str, float],
        names: frozenset[str],
    ) -> bool:
        """A call intent's phrase inside a turn that gives values the intent does not
        carry, which the classifier does not read as that intent: "oh no, that's all
        wrong, it's Saturday at eight, for three" is no goodbye (one closing the turn
        is: "... wenn ich mit meinem Mann gesprochen hab. Tschüss.")."""
        if spotted.matcher != "spotted" or spotted.intent not in self._spot or self.model is None:
            return False
        if probs.get(spotted.intent, 0.0) >= SPOT_AMONG_VALUES:
            return False
        closing = self._spotted(words, names, closing=True)
        if closing is not None and closing.intent == spotted.intent:
            return False
        carried = self._slots_of.get(spotted.intent, frozenset())
        guesses = self.model.slots(words, spans, None, None, VALUE_ACCEPT)
        return any(g.slot not in carried for g in guesses)

    def _as_asked(self, found: Match, expect: str | None) -> Match:
        """A bare number a template took as another slot answers the question just asked
        when that slot reads it too, no cue word before it makes it the other, and no
        longer value takes it in: "geht auch 10?" after "Für wie viele Personen?" is ten
        people ("um 10", "8 pm", "2 people" stay what they are)."""
        if expect is None or expect in found.slots or self.model is None:
            return found
        want = self._expect_type(expect)
        if want is None or expect not in self._slots_of.get(found.intent, frozenset()):
            return found
        words = found.text.split()
        if not any(w.isdigit() for w in words):
            return found
        spans = self.model.spotter.find(words, self.today())
        for slot, value in found.slots.items():
            have = self._expect_type(slot)
            cues = self.model.cues.get(have or "", frozenset())
            for span in spans:
                if not (
                    span.definition == have
                    and span.end - span.start == 1
                    and words[span.start].isdigit()
                    and str(span.value) == str(value)
                    and not (span.start > 0 and words[span.start - 1] in cues)
                ):
                    continue
                if any(o.start <= span.start < o.end and o.end - o.start > 1 for o in spans):
                    continue  # "8 pm", "2 people": the number is part of a longer value
                asked = next(
                    (
                        o
                        for o in spans
                        if (o.start, o.end, o.definition) == (span.start, span.end, want)
                    ),
                    None,
                )
                if asked is None:
                    continue
                slots = {k: v for k, v in found.slots.items() if k != slot}
                slots[expect] = asked.value
                return dataclasses.replace(found, slots=slots)
        return found

    def _is_time(self, slot: str) -> bool:
        assert self.model is not None
        slot_type = self.model.spotter.types.get(self._expect_type(slot) or "")
        return slot_type is not None and slot_type.kind == "time"

    def _expect_type(self, slot: str) -> str | None:
        return self.model.slot_definitions.get(slot) if self.model is not None else None

    def _own_carriers(
        self, names: frozenset[str], action: Callable[[str], str], expect: str
    ) -> list[str]:
        """The state's own way of taking the slot it asked for: the intents carrying it
        that share the action most of its carriers share (collecting it), not a question
        that happens to carry the slot too."""
        groups: dict[str, list[str]] = {}
        for name in sorted(names):
            if expect in self._slots_of.get(name, ()):
                groups.setdefault(action(name), []).append(name)
        return max(groups.values(), key=len) if groups else []

    def _with_expect(
        self,
        probs: Mapping[str, float],
        names: frozenset[str],
        action: Callable[[str], str],
        expect: str,
    ) -> dict[str, float]:
        """The flow knows what it just asked: an utterance holding a value of that slot is
        ``EXPECT_INTENT_ODDS`` times likelier to be its answer ("an Silvester" answers "On
        which day?", it asks no opening hours)."""
        own = set(self._own_carriers(names, action, expect))
        boosted = {c: p * (EXPECT_INTENT_ODDS if c in own else 1.0) for c, p in probs.items()}
        total = sum(boosted.values()) or 1.0
        return {c: p / total for c, p in boosted.items()}

    def _choose(
        self,
        fuzzy: Match | None,
        probs: Mapping[str, float],
        names: frozenset[str],
        action: Callable[[str], str],
    ) -> tuple[str, float, MatcherKind] | None:
        """The reading to act on: (intent, confidence, tier), or None (no clear reading)."""
        # Intents with the same action add up; "none" and intents this state cannot
        # take add up against them.
        total: dict[str, float] = {}
        best: dict[str, tuple[float, str]] = {}
        for intent, p in probs.items():
            key = NONE if intent == NONE or intent not in names else action(intent)
            total[key] = total.get(key, 0.0) + p
            if key != NONE and (key not in best or p > best[key][0]):
                best[key] = (p, intent)
        readings: dict[str, tuple[float, str, MatcherKind]] = {
            key: (p, best[key][1] if key in best else NONE, "statistical")
            for key, p in total.items()
        }
        if fuzzy is not None and fuzzy.intent in names:
            key = action(fuzzy.intent)
            old = readings.get(key)
            if old is None or fuzzy.confidence >= old[0]:
                readings[key] = (fuzzy.confidence, fuzzy.intent, "fuzzy")
        ranked = sorted(readings.items(), key=lambda kv: -kv[1][0])
        if not ranked or ranked[0][0] == NONE:
            return None
        key, (p, intent, tier) = ranked[0]
        runner_up = ranked[1][1][0] if len(ranked) > 1 else 0.0
        if tier == "statistical" and p < ACCEPT:
            return None
        if p - runner_up < self.margin:
            return None
        return intent, round(p, 3), tier

    def _spotted(
        self,
        words: list[str],
        names: frozenset[str],
        *,
        closing: bool = False,
        action: Callable[[str], str] | None = None,
    ) -> Match | None:
        """A ``spot: true`` intent inside the utterance (``closing``: ending it)."""
        spot = self._spot & names
        if not spot:
            return None
        distinctive = self.templates.distinctive()
        found = []
        for inside in self.templates.inside(words, spot):
            if closing and inside.end != len(words):
                continue
            stretch = words[inside.start : inside.end]
            if inside.literals >= 2 or any(distinctive.get(w) == inside.intent for w in stretch):
                found.append(inside)
        if not found:
            return None
        found.sort(key=lambda m: (m.literals, m.end), reverse=True)
        if len(found) > 1 and (found[0].literals, found[0].end) == (
            found[1].literals,
            found[1].end,
        ):
            return None
        best = found[0]
        if (
            not closing
            and action is not None
            and self._yes_no_before(words, names, (best.start, best.end), best.intent, action)
        ):
            return None
        return Match(best.intent, dict(best.slots), SPOT_CONFIDENCE, "spotted", " ".join(words))

    def _yes_no_before(
        self,
        words: list[str],
        names: frozenset[str],
        stretch: tuple[int, int],
        intent: str,
        action: Callable[[str], str],
    ) -> bool:
        """The turn opens with a yes or no that ends where ``intent`` is spotted (``stretch``),
        and the two lead elsewhere: "Yep, that's it. Oh, do you have parking?" at the
        read-back confirms, it does not hang up (where a yes or no does what the goodbye
        does - "Nope, that's it", "Yes, that is it, cheers" at "Anything else?" - the
        goodbye stands)."""
        at, end = stretch
        if at == 0:
            return False
        asks_on = is_question(" ".join(words[end:]), self.language)
        if not asks_on and any(action(n) == action(intent) for n in self._spot_start & names):
            return False  # "Anything else?" - "Yes, that is it, cheers.": done
        return any(
            m.start == 0 and m.end == at and action(m.intent) != action(intent)
            for m in self.templates.inside(words, self._spot_start & names)
        )

    def _opening(
        self,
        words: list[str],
        spans: list[Any],
        names: frozenset[str],
        expect: str | None,
        probs: Mapping[str, float] | None = None,
    ) -> Match | None:
        """ "yes, please cancel it", "absolutely, thank you so much": an intent marked
        ``spot: start`` opening the utterance, when the rest asks nothing and hedges
        nothing ("okay, but is there parking?" is no yes)."""
        spot = self._spot_start & names
        if not spot or self.model is None:
            return None
        found = [m for m in self.templates.inside(words, spot) if m.start == 0]
        if not found:
            return None
        best = max(found, key=lambda m: (m.literals, m.end))
        if any(m.intent != best.intent and m.end >= best.end for m in found):
            return None
        if probs is not None and best.intent == AFFIRM:
            # "ja, die Reservierung am Freitag bitte stornieren ...": the rest is a request
            # of its own, the "ja" only its start (a "no" before values is a correction)
            other = max(
                (
                    p
                    for c, p in probs.items()
                    if c in names and c not in self._spot_start and c not in self._spot
                ),
                default=0.0,
            )
            if other > OTHER_VETO and other - probs.get(best.intent, 0.0) >= self.margin:
                return None
        vetoes = _HEDGES.get(self.language, frozenset())
        # "not" before a value rejects that value ("no, five of us, not four"): no hedge
        values_at = {s.start for s in spans}
        if any(
            words[k] in vetoes
            and not (words[k] in _REJECTING and (k + 1 in values_at or k + 2 in values_at))
            for k in range(best.end, len(words))
        ):
            return None
        mentioned = {
            g.slot: g.span.value
            for g in self.model.slots(words, spans, expect, None, SLOT_ACCEPT)
            if g.span.start >= best.end
        }
        return Match(
            best.intent, dict(best.slots), SPOT_CONFIDENCE, "spotted", " ".join(words), mentioned
        )

    def _expected(self, turn: _Turn) -> Match | None:
        """The value asked for, among free words (``turn.expect`` is set)."""
        words, spans, probs, names, action, expect, norm = (
            turn.words,
            turn.spans,
            turn.probs,
            turn.names,
            turn.action,
            turn.expect,
            turn.norm,
        )
        assert expect is not None
        carriers = self._own_carriers(names, action, expect)
        if not carriers:
            return None
        # a clearly different reading ("haben Sie am Freitag bis 11 offen?" while the bot
        # waits for a time) is no answer, even where it fell short of being taken
        own = max(probs.get(n, 0.0) for n in carriers)
        others = {
            c: p
            for c, p in probs.items()
            if c in names
            and c not in carriers
            and not self._without_evidence(c, words, spans, names, action, expect)
        }
        other = max(others.values(), default=0.0)
        if other > OTHER_VETO and other - own >= self.margin:
            return None
        guesses = (
            self.model.slots(words, spans, expect, None, EXPECTED_ACCEPT) if self.model else []
        )
        value = next((g for g in guesses if g.slot == expect), None)
        if value is None:
            return None
        intent = max(carriers, key=lambda n: probs.get(n, 0.0))
        slots = {g.slot: g.span.value for g in guesses if g.slot in self._slots_of[intent]}
        return Match(intent, slots, round(value.probability, 3), "statistical", norm)

    def _valued(self, turn: _Turn) -> Match | None:
        """Values the caller clearly gave, where no reading was clear: "it was one
        o'clock I said, not half past twelve" at the read-back - the state's intent that
        carries them takes them (a correction, a booking)."""
        words, spans, probs, names, action, expect, norm = (
            turn.words,
            turn.spans,
            turn.probs,
            turn.names,
            turn.action,
            turn.expect,
            turn.norm,
        )
        assert self.model is not None
        guesses = self.model.slots(words, spans, expect, None, VALUE_ACCEPT)
        # a bare number that reads as a count and as a time ("no, eight, not seven") is
        # only the slot asked for; else the bot asks
        # ... or, in a turn that judges a time, the time ("that's a bit late, can we do
        # eight?" at the read-back)
        timed = time_talk(words, self.language)
        guesses = [
            g
            for g in guesses
            if g.slot == expect or not g.readings or (timed and self._is_time(g.slot))
        ]
        given = {g.slot for g in guesses}
        if not given:
            return None
        # the intents of this state carrying every value given, by what the bot does
        # (another than the answer asked for only with a word of its own)
        carriers = [
            n
            for n in names
            if given <= self._slots_of.get(n, frozenset())
            and not (
                expect is not None
                and self._without_evidence(n, words, spans, names, action, expect)
            )
        ]
        if not carriers:
            return None
        # what the bot would do with them, its readings adding up (like ``_choose``)
        by_action: dict[str, float] = {}
        for name in carriers:
            by_action[action(name)] = by_action.get(action(name), 0.0) + probs.get(name, 0.0)
        mass = sum(by_action.values())
        if mass < VALUED_ACCEPT or max(by_action.values()) < VALUED_SHARE * mass:
            return None  # no reading of these values, or a booking vs a cancellation: ask
        chosen = max(by_action, key=lambda k: by_action[k])
        if by_action[chosen] - probs.get(NONE, 0.0) < self.margin:
            return None  # not clearly more than off-topic: "I told you, on Friday"
        carriers = [n for n in carriers if action(n) == chosen]
        intent = max(carriers, key=lambda n: probs.get(n, 0.0))
        # a clearly different reading is no answer ("that's a week today, yeah? then yes"
        # is a yes); a call intent beside values is: "not 12, 14, 2 more are coming"
        own = probs.get(intent, 0.0)
        other = max(
            (
                p
                for c, p in probs.items()
                if c in names and c not in self._spot and action(c) != chosen
            ),
            default=0.0,
        )
        if other > OTHER_VETO and other - own >= self.margin:
            return None
        confidence = min(g.probability for g in guesses)
        slots = {g.slot: g.span.value for g in guesses}
        return Match(intent, slots, round(confidence, 3), "statistical", norm)


class _Turn(NamedTuple):
    """One utterance as the tiers after the exact one read it, analysed once: its words,
    the values spotted in them, the share of words the bot knows, the classifier's
    reading (``classified``; ``probs``: weighed by the slot asked for), the state's
    intents and what the bot does with them."""

    words: list[str]
    spans: list[Span]
    known: float
    classified: Mapping[str, float]
    probs: Mapping[str, float]
    names: frozenset[str]
    allowed: Collection[str] | None
    action: Callable[[str], str]
    expect: str | None
    norm: str


# Words after an opening yes/no that make it no plain answer: a question, a hedge, a "but".
_HEDGES = {
    "en": frozenset(
        "what when where how why which who is are do does can could would will "
        "should but wait hold hang question actually not sure maybe perhaps "
        "dont know think unless except only".split()
    ),
    "de": frozenset(
        "was wann wo wie warum welche welcher wer ist sind haben hat können kann "
        "könnten gibt aber moment warten frage eigentlich nicht doch vielleicht "
        "weiss ausser nur".split()
    ),
}


_REJECTING = frozenset({"not", "nicht", "statt", "anstatt"})
# Words that ask for a change: a yes before them is no plain yes.
_CHANGE_WORDS = {
    "en": frozenset(
        "earlier later sooner change instead move different another push bring swap".split()
    ),
    "de": frozenset(
        "früher später eher ändern stattdessen verschieben anders anderen andere lieber".split()
    ),
}
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _two_readings(spans: list[Span], definition: str | None, value: Any) -> bool:
    """``value`` was read from a bare number that also reads as another type."""
    for span in spans:
        if span.definition != definition or str(span.value) != str(value):
            continue
        if any(
            (o.start, o.end) == (span.start, span.end) and o.definition != definition for o in spans
        ):
            return True
    return False


def _actions(allowed: Collection[str] | None) -> Callable[[str], str]:
    """Intent -> what the bot does with it; intents with the same action are one reading."""
    if isinstance(allowed, Mapping):
        return lambda intent: str(allowed.get(intent, intent))
    return lambda intent: intent
