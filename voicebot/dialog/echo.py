"""The placeholder dialog: repeats the caller's final transcript."""

from __future__ import annotations

from voicebot.events import ReplyEvent
from voicebot.frames import Frame, ReplyText, Transcript
from voicebot.graph import Stage


class EchoDialog(Stage):
    """Answers every non-empty final transcript with ``template`` (``{text}`` = transcript)."""

    name = "dialog"

    def __init__(self, template: str = "You said: {text}") -> None:
        super().__init__()
        self.template = template

    async def process(self, frame: Frame) -> None:
        if not (isinstance(frame, Transcript) and frame.final):
            return  # partials and VAD events end here; the echo bot needs only finals
        text = frame.text.strip()
        if not text:
            return
        reply = self.template.format(text=text)
        now = self.ctx.now()
        self.ctx.ledger.mark(frame.turn, "reply_text", now)
        self.ctx.bus.emit(ReplyEvent(text=reply, turn=frame.turn), t=now)
        await self.push(ReplyText(reply, frame.turn))
