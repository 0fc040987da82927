"""REGISTER to a trunk or PBX (``voicebot serve --sip-register sip:user@registrar``).

aiosipua's ``Registration`` does the protocol: digest authentication on a
401/407, the refresh at 90 % of the granted interval, a ``423 Interval Too
Brief`` answered once with the registrar's ``Min-Expires``. This module
resolves the registrar, keeps the binding up (a failed or expired
registration is tried again after ``register_retry`` seconds), logs each state and
sets ``voicebot_sip_registered``; at shutdown the binding is removed.
"""

from __future__ import annotations

import asyncio
import logging

from aiosipua import SipDigestAuth
from aiosipua.headers import parse_uri
from aiosipua.registration import Registration

from voicebot.server.metrics import Metrics
from voicebot.server.sip_transfer import SipClient
from voicebot.transports.sip.settings import SipSettings
from voicebot.transports.sip.udp import uri_address

log = logging.getLogger(__name__)


class Registrar:
    """Our binding at one registrar, kept up while the server runs."""

    def __init__(self, client: SipClient, settings: SipSettings, metrics: Metrics) -> None:
        assert settings.register is not None
        self.client = client
        self.settings = settings
        self.metrics = metrics
        self.aor = settings.register
        self.registration: Registration | None = None
        self._retry: asyncio.TimerHandle | None = None

    @property
    def state(self) -> str:
        """unregistered, registering, registered, failed or expired."""
        return self.registration.state.value if self.registration else "unregistered"

    async def start(self) -> None:
        s = self.settings
        user = s.register_username or parse_uri(self.aor).user or ""
        auth = SipDigestAuth(user, s.register_password) if s.register_password else None
        address = await uri_address(self.aor)
        # the AOR's port belongs to the registrar's address, not to the AOR
        uri = parse_uri(self.aor)
        aor = f"sip:{uri.user}@{uri.host}" if uri.user else f"sip:{uri.host}"
        reg = Registration(
            self.client,
            aor,
            address,
            expires=s.register_expires,
            auth=auth,
            user_agent=s.user_agent,
        )
        reg.on_registered = self._registered
        reg.on_failed = self._failed
        reg.on_expired = self._expired
        self.registration = reg
        log.info("sip: registering %s at %s:%d", aor, *address)
        reg.register()

    async def stop(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
        reg = self.registration
        if reg is not None and reg.state.value == "registered":
            reg.unregister()  # best effort: nobody waits for the 200
            log.info("sip: unregistered %s", reg.aor)
        if reg is not None:
            reg._cancel_timers()
        self.metrics.sip_registered.set(0)

    def _registered(self, reg: Registration) -> None:
        log.info("sip: registered %s for %d s", reg.aor, reg.granted_expires)
        self.metrics.sip_registered.set(1)

    def _failed(self, reg: Registration, status: int, reason: str) -> None:
        log.warning("sip: registering %s failed: %d %s", reg.aor, status, reason)
        self._again()

    def _expired(self, reg: Registration) -> None:
        log.warning("sip: the registration of %s expired", reg.aor)
        self._again()

    def _again(self) -> None:
        self.metrics.sip_registered.set(0)
        loop = asyncio.get_running_loop()
        self._retry = loop.call_later(self.settings.register_retry, self._register)

    def _register(self) -> None:
        self._retry = None
        if self.registration is not None:
            self.registration.register()
