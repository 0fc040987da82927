"""Words a recogniser writes for a number it misheard: "half past *heaven*", "*free* kids".

Only ever read as the number where the phrase around it is clearly that slot's
("half past _", "_ pm", "_ oclock" for a time; "_ people", "_ of us" for a count);
the bot reads every booking back, so a repaired value is confirmed before it counts.
"""

from __future__ import annotations

MISHEARD_NUMBERS: dict[str, dict[str, str]] = {
    "en": {
        "won": "1",
        "to": "2",
        "too": "2",
        "tu": "2",
        "tree": "3",
        "free": "3",
        "for": "4",
        "fore": "4",
        "fife": "5",
        "sex": "6",
        "sick": "6",
        "sicks": "6",
        "heaven": "7",
        "seren": "7",
        "sevin": "7",
        "leaven": "11",
        "seben": "7",
        "ate": "8",
        "date": "8",
        "ait": "8",
        "nein": "9",
        "tin": "10",
        "elven": "11",
        "eleventh": "11",
        "twelf": "12",
    },
    "de": {
        "eis": "1",
        "zwo": "2",
        "drai": "3",
        "fier": "4",
        "fünfe": "5",
        "sex": "6",
        "sechse": "6",
        "siem": "7",
        "sieme": "7",
        "zehne": "10",
        "elfe": "11",
        "zwölfe": "12",
    },
}

# Misheard words that are also everyday words, too common to be a count ("a table for
# people with allergies", "talk to people"): a time phrase may still repair them.
NOT_A_COUNT = frozenset({"to", "too", "tu", "for", "fore", "won", "date", "ate"})
