"""Fixtures of the NLU tests: the reference bot's intents."""

from __future__ import annotations

import pytest

from tests.support.paths import RESTAURANT_INTENTS
from voicebot.nlu.template_matcher import IntentSet, load_intents


@pytest.fixture(scope="module")
def restaurant() -> IntentSet:
    """``intents/restaurant.yaml``, loaded without a diagnostic."""
    intents, diags = load_intents([RESTAURANT_INTENTS])
    assert [str(d) for d in diags] == []
    return intents
