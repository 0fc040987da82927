"""Transfers of stream calls through the provider's REST API, once the goodbye played.

A Twilio, Telnyx or Vonage stream call whose flow enters ``transfer`` is, with
that provider's account set, handed on to the target after its goodbye has
played and before its socket closes (``transfer_call``, from
``stream_call.py``): Twilio's call gets ``<Dial>`` TwiML, Telnyx's the
``transfer`` command, Vonage's an NCCO ``connect`` (``phone_providers.py``);
the provider then ends the media stream. The number dialled is the flow's
target if it is a number or ``sip:`` URI, else ``--transfer-to``'s number for
that name, else its number for any name. Without an account, a number or the
call's id, the call ends as before: the ``transfer`` event and a clean hang-up.
"""

from __future__ import annotations

import logging
import re

from voicebot.providers.errors import ProviderError
from voicebot.server.calls import CallManager
from voicebot.server.phone_providers import phone_provider

log = logging.getLogger(__name__)

DIALABLE = re.compile(r"^(\+?[0-9]{2,15}|sip:\S+)$")


def transfer_number(target: str, transfer_to: dict[str, str]) -> str | None:
    """Where a flow's ``transfer: target`` rings: the target itself if it is dialable,
    else the number configured for it, else the one for any target (key ``""``)."""
    if DIALABLE.match(target):
        return target
    return transfer_to.get(target) or transfer_to.get("") or None


async def transfer_call(manager: CallManager, provider: str, call_id: str, target: str) -> str:
    """Hand the live call ``call_id`` of ``provider`` on to ``target``; the result, counted in
    ``voicebot_provider_transfers_total``: dialed, failed, no_account, no_number or
    no_call_id (the stream did not say which call it carries)."""
    settings = manager.settings
    number = transfer_number(target, settings.transfer_to)
    phone = phone_provider(settings, provider)
    if phone is None:
        result = "no_account"
    elif number is None:
        result = "no_number"
    elif not call_id:
        result = "no_call_id"
    else:
        try:
            await phone.transfer(call_id, number)
            result = "dialed"
        except ProviderError as exc:
            log.warning("transfer of %s call %s to %s failed: %s", provider, call_id, number, exc)
            result = "failed"
    log.info(
        "transfer of %s call %s to %r (%s): %s", provider, call_id or "-", target, number, result
    )
    manager.metrics.provider_transfers.labels(provider, result).inc()
    return result
