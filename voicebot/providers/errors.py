"""One exception for everything a provider can do wrong, with what a caller decides on."""

from __future__ import annotations

from voicebot.errors import VoicebotError

KINDS = ("http", "connect", "timeout", "deadline", "protocol", "rate_limited")


class ProviderError(VoicebotError):
    """A provider request that did not give a usable answer.

    ``kind`` says what happened: ``http`` (an error status), ``connect``, ``timeout``
    (no answer in a phase's time), ``deadline`` (the caller's total time ran out),
    ``protocol`` (garbage JSON, a cut stream) or ``rate_limited``. Messages never
    carry request headers, so an API key cannot leak through logs.
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        kind: str = "http",
        status: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown ProviderError kind {kind!r}")
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.kind = kind
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after

    def __str__(self) -> str:
        where = f"{self.provider}: " if self.provider else ""
        status = f" {self.status}" if self.status is not None else ""
        return f"{where}{self.kind}{status}: {self.message}"
