"""Transfers of Twilio stream calls through the REST API: ``<Dial>`` once the goodbye played.

A Twilio stream call whose flow enters ``transfer`` is, with an account set
(``TWILIO_ACCOUNT_SID`` and ``TWILIO_AUTH_TOKEN``), redirected to ``<Dial>`` the
target after its goodbye has played (``transfer_call``, from
``stream_call.py``); Twilio then ends the media stream. The number dialled is
the flow's target if it is a number or ``sip:`` URI, else ``--transfer-to``'s
number for that name, else its number for any name. Without an account or a
number, the call ends as before: the ``transfer`` event and a clean hang-up.
"""

from __future__ import annotations

import logging
import re

from voicebot.server.calls import CallManager
from voicebot.transports.media_stream.twilio_rest import TwilioError, TwilioRest, dial_twiml

log = logging.getLogger(__name__)

DIALABLE = re.compile(r"^(\+?[0-9]{2,15}|sip:\S+)$")


def transfer_number(target: str, transfer_to: dict[str, str]) -> str | None:
    """Where a flow's ``transfer: target`` rings: the target itself if it is dialable,
    else the number configured for it, else the one for any target (key ``""``)."""
    if DIALABLE.match(target):
        return target
    return transfer_to.get(target) or transfer_to.get("") or None


async def transfer_call(manager: CallManager, call_sid: str, target: str) -> str:
    """Redirect the live Twilio call ``call_sid`` to dial ``target``; the result, counted in
    ``voicebot_provider_transfers_total``: dialed, failed, no_account or no_number."""
    settings = manager.settings
    number = transfer_number(target, settings.transfer_to)
    if settings.twilio_account is None:
        result = "no_account"
    elif number is None or not call_sid:
        result = "no_number"
    else:
        try:
            await TwilioRest(settings.twilio_account).update_call(call_sid, dial_twiml(number))
            result = "dialed"
        except TwilioError as exc:
            log.warning("transfer of Twilio call %s to %s failed: %s", call_sid, number, exc)
            result = "failed"
    log.info("transfer of Twilio call %s to %r (%s): %s", call_sid or "-", target, number, result)
    manager.metrics.provider_transfers.labels("twilio", result).inc()
    return result
