"""Transfer targets: a ``sip:``/``sips:``/``tel:`` URI a phone call is REFERred to, or a name."""

from __future__ import annotations

import re

URI_SCHEMES = ("sip:", "sips:", "tel:")
_SIP = re.compile(r"sips?:(?:[^@\s<>;]+@)?[A-Za-z0-9.\-\[\]:]+(?:;[^\s<>]*)?")
_TEL = re.compile(r"tel:\+?[0-9*#A-Da-d.\-()]+(?:;[^\s<>]*)?")


def is_uri(target: str) -> bool:
    """The target names a URI scheme (it may still be malformed: ``valid_uri``)."""
    return target.lower().startswith(URI_SCHEMES)


def valid_uri(target: str) -> bool:
    """``sip:user@host[:port][;params]``, ``sip:host``, ``sips:…`` or ``tel:+number``."""
    pattern = _TEL if target.lower().startswith("tel:") else _SIP
    return pattern.fullmatch(target) is not None
