"""Blind transfer by REFER (RFC 3515): the request, its answer and the NOTIFY progress.

``SipClient`` is aiosipua's UAC with REFER responses routed back to their
``Referral`` (aiosipua drops responses to requests on dialogs it did not start);
``SipServer`` feeds it the ``Event: refer`` NOTIFYs' sipfrag status lines.
"""

from __future__ import annotations

import asyncio
import logging

from aiosipua import SipUAC
from aiosipua.dialog import Dialog
from aiosipua.message import SipResponse
from aiosipua.transport import SipTransport

log = logging.getLogger(__name__)

TRANSFER_TIMEOUT = 15.0  # s from the REFER to a final NOTIFY (the target rings meanwhile)


class Referral:
    """One REFER's outcome: ``result`` and ``status`` once ``done`` is set."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.result = "timeout"
        self.status = 0
        self.done = asyncio.Event()

    def finish(self, result: str, status: int = 0) -> None:
        if not self.done.is_set():
            self.result, self.status = result, status
            self.done.set()

    def answered(self, status: int) -> None:
        """The REFER's response: 202 waits for the NOTIFYs; an error ends it."""
        if status >= 300:
            self.finish("refused", status)

    def progress(self, status: int) -> None:
        """A NOTIFY's sipfrag: 1xx is progress, 2xx the transfer done, the rest a failure."""
        if 200 <= status < 300:
            self.finish("transferred", status)
        elif status >= 300:
            self.finish("failed", status)

    async def wait(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self.done.wait(), seconds)
        except TimeoutError:
            self.finish("timeout")


class SipClient(SipUAC):
    """aiosipua's UAC that also sends REFERs on the dialogs the server answered."""

    def __init__(self, transport: SipTransport) -> None:
        super().__init__(transport)
        self.referrals: dict[str, Referral] = {}  # by SIP Call-ID

    def refer(self, dialog: Dialog, target: str, remote_addr: tuple[str, int]) -> Referral:
        """Ask the caller to call ``target`` (Refer-To) on our behalf (Referred-By)."""
        referral = self.referrals[dialog.call_id] = Referral(target)
        self._send_in_dialog(
            dialog,
            "REFER",
            remote_addr,
            extra_headers={"Refer-To": f"<{target}>", "Referred-By": f"<{dialog.local_uri}>"},
        )
        log.info("sip: REFER %s to %s", dialog.call_id, target)
        return referral

    def progress(self, sip_call_id: str, status: int, reason: str) -> None:
        """``SipUAS.on_transfer_progress``: a NOTIFY of the transfer."""
        log.info("sip: transfer of %s: %d %s", sip_call_id, status, reason)
        referral = self.referrals.get(sip_call_id)
        if referral is not None:
            referral.progress(status)

    def handle_response(self, response: SipResponse, addr: tuple[str, int]) -> None:
        cseq = response.cseq
        if cseq is not None and cseq.method.upper() == "REFER":
            referral = self.referrals.get(response.call_id or "")
            if referral is not None:
                referral.answered(response.status_code)
            return
        super().handle_response(response, addr)
