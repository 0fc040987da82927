"""Transfer targets: a ``sip:``/``sips:``/``tel:`` URI a phone call is REFERred to, or a name."""

from __future__ import annotations

import re
from collections.abc import Mapping

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


def refer_target(target: str, transfer_to: Mapping[str, str]) -> str | None:
    """The URI a phone call is REFERred to for the flow's ``target``: the target if it is a
    valid URI, else what ``transfer_to`` gives for it (or for any name, key ``""``) - a
    URI as it is, a phone number as ``tel:`` - else None."""
    if is_uri(target):
        return target if valid_uri(target) else None
    mapped = (transfer_to.get(target) or transfer_to.get("") or "").strip()
    if is_uri(mapped):
        return mapped if valid_uri(mapped) else None
    tel = f"tel:{mapped}"
    return tel if mapped and valid_uri(tel) else None
