"""Key presses as dialog input: which slot types can be keyed in, and one call's digit entry.

A state's ``dtmf:`` keys are a menu (a key stands for an intent). A ``collect``
state whose slot is a number or a digit string (``count``, ``integer``,
``digits``) also takes the value keyed in: digits gather until ``#``, until
the slot's longest value is reached, or until ``DIGIT_TIMEOUT`` seconds pass
without a key; ``*`` starts the entry over.
"""

from __future__ import annotations

from voicebot.nlu.slots import DigitsSlot, IntegerSlot, SlotType

DIGITS = "0123456789"
END_KEY = "#"  # ends a digit entry
CLEAR_KEY = "*"  # starts it over
DIGIT_TIMEOUT = 3.0  # seconds after the last key: the entry is complete


def entry_length(kind: SlotType) -> int | None:
    """The most keys a value of ``kind`` takes (its entry ends there); None: not keyable."""
    if isinstance(kind, DigitsSlot):
        return kind.max_len
    if isinstance(kind, IntegerSlot):  # counts too: "4#", or "12" for a party of at most 20
        return len(str(kind.max))
    return None


class DigitEntry:
    """The digits keyed in so far for the slot being collected."""

    def __init__(self) -> None:
        self.keys = ""

    @property
    def pending(self) -> bool:
        return bool(self.keys)

    def clear(self) -> None:
        self.keys = ""

    def add(self, key: str, longest: int) -> str | None:
        """Take one key; the complete entry once it ends (``#`` or ``longest`` digits)."""
        if key == CLEAR_KEY:
            self.keys = ""
            return None
        if key != END_KEY:
            self.keys += key
            if len(self.keys) < longest:
                return None
        keys, self.keys = self.keys, ""
        return keys
