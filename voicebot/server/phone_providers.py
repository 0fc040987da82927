"""The telephony providers' REST APIs behind one shape: transfer a stream call, dial one out.

``phone_provider(settings, "twilio" | "telnyx" | "vonage")`` is the provider of
that name with the account from the server settings (None without one). Each
``transfer``s a live call, by the id its media stream's start gave
(``Start.call_id``: Twilio's ``callSid``, Telnyx's ``call_control_id``, the
Vonage uuid the answer NCCO passes as a header), to a number or ``sip:`` URI,
and ``dial``s a number whose answered call streams to this server's
``/{provider}/media`` on ``host``. Their failures are ``ProviderError``s
(``TwilioError``, ``TelnyxError``, ``VonageError``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from voicebot.transports.media_stream.telnyx_rest import TelnyxAccount, TelnyxRest
from voicebot.transports.media_stream.twilio import connect_twiml
from voicebot.transports.media_stream.twilio_rest import TwilioAccount, TwilioRest, dial_twiml
from voicebot.transports.media_stream.vonage_rest import VonageAccount, VonageError, VonageRest

if TYPE_CHECKING:
    from voicebot.server.calls import ServerSettings

PROVIDERS = ("twilio", "telnyx", "vonage")
# what to set when a provider has no account (the 503 of a dial-out says it)
ACCOUNT_ENV = {
    "twilio": "TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN",
    "telnyx": "TELNYX_API_KEY and TELNYX_CONNECTION_ID",
    "vonage": "VONAGE_APPLICATION_ID and VONAGE_PRIVATE_KEY (or VONAGE_PRIVATE_KEY_PATH)",
}


@dataclass(frozen=True)
class PlacedCall:
    """A dial-out the provider took: its id for the call and the status it reported."""

    call_id: str
    status: str


class PhoneProvider(Protocol):
    """What the server asks of a provider's REST API."""

    name: str

    async def transfer(self, call_id: str, number: str) -> None: ...

    async def dial(self, to: str, from_: str, host: str) -> PlacedCall: ...


class TwilioPhone:
    """Twilio: a transfer replaces the call's TwiML with ``<Dial>``; a dial-out's TwiML
    is ``<Connect><Stream>``, its status callback ``/twilio/status``."""

    name = "twilio"

    def __init__(self, account: TwilioAccount) -> None:
        self.rest = TwilioRest(account)

    async def transfer(self, call_id: str, number: str) -> None:
        await self.rest.update_call(call_id, dial_twiml(number))

    async def dial(self, to: str, from_: str, host: str) -> PlacedCall:
        twiml = connect_twiml(f"wss://{host}/twilio/media", {"From": from_, "To": to})
        call = await self.rest.create_call(
            to, from_, twiml=twiml, status_callback=f"https://{host}/twilio/status"
        )
        return PlacedCall(str(call.get("sid", "")), str(call.get("status", "queued")))


class TelnyxPhone:
    """Telnyx: the ``transfer`` command; a dial-out starts its stream to ``/telnyx/media``
    and posts its events to ``/telnyx/events``."""

    name = "telnyx"

    def __init__(self, account: TelnyxAccount) -> None:
        self.rest = TelnyxRest(account)

    async def transfer(self, call_id: str, number: str) -> None:
        await self.rest.transfer(call_id, number)

    async def dial(self, to: str, from_: str, host: str) -> PlacedCall:
        call = await self.rest.create_call(
            to,
            from_,
            stream_url=f"wss://{host}/telnyx/media",
            webhook_url=f"https://{host}/telnyx/events",
        )
        return PlacedCall(str(call.get("call_control_id", "")), "dialing")


class VonagePhone:
    """Vonage: a transfer to an NCCO ``connect``; a dial-out fetches its NCCO from
    ``/vonage/answer`` and posts its events to ``/vonage/events``."""

    name = "vonage"

    def __init__(self, account: VonageAccount) -> None:
        self.rest = VonageRest(account)

    async def transfer(self, call_id: str, number: str) -> None:
        await self.rest.transfer(call_id, number)

    async def dial(self, to: str, from_: str, host: str) -> PlacedCall:
        call = await self.rest.create_call(
            to,
            from_,
            answer_url=f"https://{host}/vonage/answer",
            event_url=f"https://{host}/vonage/events",
        )
        if not call.get("uuid"):
            raise VonageError("Vonage answered the call without its uuid", provider="vonage")
        return PlacedCall(str(call["uuid"]), str(call.get("status", "started")))


def phone_provider(settings: ServerSettings, name: str) -> PhoneProvider | None:
    """The provider ``name`` with the settings' account for it; None without one (or for a
    transport that is no provider, like ``raw``)."""
    if name == "twilio" and settings.twilio_account is not None:
        return TwilioPhone(settings.twilio_account)
    if name == "telnyx" and settings.telnyx_account is not None:
        return TelnyxPhone(settings.telnyx_account)
    if name == "vonage" and settings.vonage_account is not None:
        return VonagePhone(settings.vonage_account)
    return None
