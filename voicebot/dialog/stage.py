"""The flow dialog stage: transcripts in, replies out; silence timeouts and hang-up.

* Final transcripts go to the ``Conversation``; its answer is pushed as one
  ``ReplyText`` carrying the prompt's ``barge_in`` flag.
* Partial transcripts are checked for ``interim`` intents ("agent", "stop")
  while the bot is speaking: a hit interrupts the bot at once (an ``Interrupt``
  sent downstream, as the VAD does for barge-in) and is acted on; that turn's
  final transcript is then ignored.
* Key presses (``Dtmf`` frames from any transport) go to ``Conversation.press``;
  the transport has already interrupted the bot (a key barges in like speech)
  and dropped keys pressed over a ``barge_in: false`` prompt. While digits are
  being keyed in, the silence timer waits the inter-digit timeout instead.
* Caller speech that starts while a ``barge_in: false`` prompt plays is ignored
  (the prompt must be heard), except for interim intents.
* Silence is timed on the call clock from the end of the bot's prompt playback
  (the ``playback_stopped`` event), or from the end of the caller's turn when
  nothing was said back; caller speech cancels the timer.
* ``end`` / ``transfer``: the goodbye is pushed like any reply; once playback
  reports it finished (or cut short), the stage calls the ``hang_up(reason)``
  it was built with (``Pipeline.hang_up``, given by ``call.py``) with
  ``bot_hangup`` or ``transfer``, which ends the call with that reason.

Bookkeeping of what is still to be played comes from the event bus (playback
emits ``playback_stopped`` / ``interrupted``), so the stages stay decoupled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from voicebot.dialog.flow import Bot, Conversation, Step
from voicebot.dialog.outcomes import OutcomeStore
from voicebot.events import EventRecord, ReplyEvent
from voicebot.frames import Dtmf, Frame, Interrupt, ReplyText, Transcript
from voicebot.graph import Stage
from voicebot.nlu.match import Matcher


class FlowDialog(Stage):
    """Runs one ``Conversation`` per call over the shared bot, matcher and outcome store."""

    name = "dialog"

    def __init__(
        self,
        bot: Bot,
        matcher: Matcher,
        store: OutcomeStore,
        language: str | None = None,
        *,
        hang_up: Callable[[str], None] | None = None,
    ) -> None:
        """``hang_up(reason)`` ends the call after ``end`` / ``transfer`` (``Pipeline.hang_up``);
        without it the conversation ends but the call runs on until its input does."""
        super().__init__()
        self.bot = bot
        self.matcher = matcher
        self.store = store
        self.language = language or matcher.language
        self._hang_up = hang_up
        self.conv: Conversation | None = None
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._watchdog: asyncio.Task[None] | None = None
        self._event_turn = 0
        self._pending = 0  # replies pushed but not yet played out
        self._caller_speaking = False
        self._deadline: float | None = None
        self._hangup: str | None = None
        self._acted: set[int] = set()  # turns answered on an interim intent
        self._speech_start: dict[int, float] = {}  # turn -> when the caller began
        # the latest reply's playback: (start, end, share heard), end None while playing
        self._played: tuple[float | None, float | None, float] = (None, None, 1.0)
        self._ignored: set[int] = set()  # turns spoken over a barge_in: false prompt
        self._closed = False

    # --- lifecycle -------------------------------------------------------------
    async def setup(self) -> None:
        self.conv = Conversation(
            self.bot,
            self.matcher,
            self.store,
            call_id=self.ctx.call_id,
            emit=self.ctx.bus.emit,
            language=self.language,
        )
        self.ctx.bus.subscribe(self._on_event)

    async def run(self) -> None:
        self._watchdog = asyncio.get_running_loop().create_task(
            self._watch(), name=f"{self.ctx.call_id}:dialog-timer"
        )
        turn = self.ctx.state.turn
        step = await self._step(turn, self._conv.start())
        await self._reply(step, turn, answers_turn=False)
        await super().run()

    async def on_end_of_stream(self) -> None:
        await self._stop_watchdog()  # the caller is gone: no more re-prompts

    async def teardown(self) -> None:
        self._closed = True
        await self._stop_watchdog()

    async def _stop_watchdog(self) -> None:
        task, self._watchdog = self._watchdog, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    @property
    def _conv(self) -> Conversation:
        assert self.conv is not None, "setup() has not run"
        return self.conv

    # --- caller input ----------------------------------------------------------
    async def process(self, frame: Frame) -> None:
        if isinstance(frame, Dtmf) and not self._conv.ended:
            step = await self._step(frame.turn, self._conv.press(frame.digit))
            await self._reply(step, frame.turn)
            return
        if not isinstance(frame, Transcript) or self._conv.ended:
            return  # turn boundaries arrive through the bus; nothing else is for us
        if frame.final:
            await self._final(frame)
        else:
            await self._partial(frame)

    async def _final(self, frame: Transcript) -> None:
        text = frame.text.strip()
        if frame.turn in self._acted or frame.turn in self._ignored or not text:
            if self._pending == 0:
                self._arm(self.ctx.now())  # nothing new was said to the caller
            return
        heard = self._heard(frame.turn)
        # the indexes are of the words of frame.text, which strip() leaves as they are
        unsure = frame.unsure
        hearing = self._conv.hear(text, heard=heard, unsure=unsure, second_pass=frame.second_pass)
        step = await self._step(frame.turn, hearing)
        await self._reply(step, frame.turn)

    def _heard(self, turn: int) -> float:
        """How much of the bot's latest reply had played when the caller began ``turn``
        (a "yes" said over a read-back, or before it, confirms nothing)."""
        began = self._speech_start.pop(turn, None)
        start, end, share = self._played
        if began is None:
            return 1.0
        if self._pending and start is None:
            return 0.0  # the reply had not started playing yet
        if start is not None and began < start:
            return 0.0
        if end is None:
            return share if self._pending == 0 else 0.0
        return 1.0 if began >= end else share

    async def _partial(self, frame: Transcript) -> None:
        if frame.turn in self._acted or not (self._pending or self.ctx.state.bot_speaking):
            return
        match = self._conv.match_interim(frame.text)
        if match is None:
            return
        self._acted.add(frame.turn)
        self.receive_control(Interrupt("interim_intent", self.ctx.now()))
        step = await self._step(frame.turn, self._conv.hear_interim(match))
        await self._reply(step, frame.turn)

    async def _step(self, turn: int, work: Awaitable[Step]) -> Step:
        async with self._lock:
            self._conv.turn = turn  # the turn its events carry
            with self.ctx.clock.busy():  # hooks, commits, an LLM fallback: not idle time
                return await work

    # --- bot output ------------------------------------------------------------
    async def _reply(self, step: Step, turn: int, answers_turn: bool = True) -> None:
        if not step.text:
            if step.ended and self._pending == 0:
                self._finish()
            elif self._pending == 0:
                self._arm(self.ctx.now())
            return
        now = self.ctx.now()
        if answers_turn:
            self.ctx.ledger.mark(turn, "reply_text", now)
        else:
            self.ctx.ledger.get(turn).reported = True  # a greeting or re-prompt: no latency record
        self.ctx.bus.emit(ReplyEvent(text=step.text, turn=turn), t=now)
        self.ctx.state.asr_context = self._conv.asr_context()
        self.ctx.state.asr_hint = self._conv.asr_hint()
        self._pending += 1
        self._played = (None, None, 1.0)
        self._deadline = None
        await self.push(ReplyText(step.text, turn, step.barge_in))

    def _on_event(self, event: EventRecord) -> None:
        if self._closed:
            return
        kind = event["type"]
        if kind == "speech_started":
            self._speech_start[event["turn"]] = event["t"]
            if len(self._speech_start) > 8:  # turns that never got a transcript
                self._speech_start.pop(min(self._speech_start))
            self._caller_speaking = True
            self._deadline = None
            state = self.ctx.state
            if state.bot_speaking and not state.barge_in:
                self._ignored.add(event["turn"])
        elif kind == "speech_stopped":
            self._caller_speaking = False
        elif kind == "interrupted":
            heard, dropped = event.get("heard_ms", 0), event.get("dropped_ms", 0)
            share = heard / (heard + dropped) if heard + dropped > 0 else 0.0
            self._played = (self._played[0], event["t"], share)
            self._pending = 0
            self._played_out(event["t"])
        elif kind == "playback_started":
            self._played = (event["t"], None, 1.0)
        elif kind == "playback_stopped" and self._pending:
            self._played = (self._played[0], event["t"], 1.0)
            self._pending -= 1
            if self._pending == 0:
                self._played_out(event["t"])

    def _played_out(self, t: float) -> None:
        """Everything the bot had to say has been heard (or cut off) at ``t``."""
        if self.conv is not None and self.conv.ended:
            self._finish()
        elif not self._caller_speaking:
            self._arm(t)

    # --- timers ------------------------------------------------------------------
    def _arm(self, t: float) -> None:
        timeout = self.conv.silence_timeout() if self.conv is not None else None
        self._deadline = None if timeout is None else t + timeout
        self._wake.set()

    def _finish(self) -> None:
        assert self.conv is not None
        self._hangup = "transfer" if self.conv.ended == "transfer" else "bot_hangup"
        self._wake.set()

    async def _watch(self) -> None:
        """Fires silence timeouts and the hang-up after the last words (its own task)."""
        clock = self.ctx.clock
        while True:
            self._wake.clear()
            if self._hangup is not None:
                if self._hang_up is not None:
                    self._hang_up(self._hangup)
                return
            deadline = self._deadline
            if deadline is None:
                await self._wake.wait()
                continue
            sleeper = asyncio.ensure_future(clock.sleep_until(deadline))
            waker = asyncio.ensure_future(self._wake.wait())
            try:
                done, _ = await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (sleeper, waker):
                    task.cancel()
                await asyncio.gather(sleeper, waker, return_exceptions=True)
            if sleeper in done and self._deadline == deadline and not self._caller_speaking:
                self._deadline = None
                turn = self.ctx.state.turn
                step = await self._step(turn, self._conv.silence())
                await self._reply(step, turn, answers_turn=False)
