"""Transcripts made comparable: lower case, punctuation gone, one space between words."""

from __future__ import annotations

import re


def words(text: str) -> str:
    """``text`` as bare lower-case words (apostrophes kept), e.g. for ``jiwer.wer``."""
    return " ".join(re.sub(r"[^\w' ]", " ", text.lower()).split())
