"""The ``openai`` ASR engine: any OpenAI-compatible ``/audio/transcriptions`` endpoint.

A turn's audio is buffered as it arrives and sent once, as a 16 kHz WAV, when the
turn ends (a partial would be a billed request of its own, so they are off unless
asked for). Results are cached by the sha256 of the audio and the parameters, and
every request, hit or miss, lands in the cost ledger under the current call.
"""

from __future__ import annotations

import io
import json
import time
import wave

import numpy as np

from voicebot.asr.base import SAMPLE_RATE, AsrEngine, AsrResult, AsrSession
from voicebot.providers.cache import Cache, transcript_key
from voicebot.providers.costs import CostLedger, PriceTable
from voicebot.providers.current_call import current_call
from voicebot.providers.errors import ProviderError
from voicebot.providers.http import ProviderClient, json_body
from voicebot.providers.limits import Priority


def wav_bytes(audio: np.ndarray, rate: int = SAMPLE_RATE) -> bytes:
    """16-bit mono WAV of float32 audio in [-1, 1] (what every provider decodes)."""
    pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


class OpenAiAsrEngine(AsrEngine):
    """Transcription on a provider; ``deadline_s`` bounds one request, retries included."""

    name = "openai"

    def __init__(
        self,
        client: ProviderClient,
        model: str,
        *,
        prices: PriceTable,
        cache: Cache | None = None,
        ledger: CostLedger | None = None,
        priority: Priority = Priority.LIVE,
        partials: bool = False,
        deadline_s: float | None = None,
    ) -> None:
        self.client = client
        self.model = model
        self.prices = prices
        self.cache = cache
        self.ledger = ledger
        self.priority = priority
        self.partials = partials
        self.deadline_s = deadline_s

    @property
    def provider(self) -> str:
        return self.client.settings.name

    def session(
        self, language: str | None = None, *, context: str | None = None
    ) -> OpenAiAsrSession:
        return OpenAiAsrSession(self, language, context)

    async def transcribe(
        self,
        audio: np.ndarray,
        language: str | None = None,
        *,
        context: str | None = None,
        prompt: str | None = None,
        deadline: float | None = None,
        priority: Priority | None = None,
    ) -> AsrResult:
        """One request (or a cache hit); ``deadline`` is ``time.monotonic()``-based.
        ``context`` goes to the provider as the transcription ``prompt``."""
        prompt = prompt or context
        start = time.perf_counter()
        body = wav_bytes(audio)
        seconds = len(audio) / SAMPLE_RATE
        params = {"model": self.model, "language": language or "", "prompt": prompt or ""}
        key = transcript_key(body, **params)
        if self.cache is not None and (hit := await self.cache.get(key)) is not None:
            result = _from_cache(hit)
            result.decode_ms = (time.perf_counter() - start) * 1000
            await self._record(seconds, cached=True, latency_ms=result.decode_ms)
            return result
        if deadline is None and self.deadline_s is not None:
            deadline = time.monotonic() + self.deadline_s
        data = {"model": self.model, "response_format": "json", "temperature": "0"}
        if language:
            data["language"] = language
        if prompt:
            data["prompt"] = prompt
        try:
            response = await self.client.request(
                "POST",
                "/audio/transcriptions",
                data=data,
                files={"file": ("audio.wav", body, "audio/wav")},
                priority=self.priority if priority is None else priority,
                deadline=deadline,
            )
        except ProviderError:
            await self._record(
                seconds, cached=False, ok=False, latency_ms=(time.perf_counter() - start) * 1000
            )
            raise
        payload = json_body(response)
        text = payload.get("text") if isinstance(payload, dict) else None
        if not isinstance(text, str):
            raise ProviderError(
                f"transcription without a text field: {str(payload)[:80]!r}",
                provider=self.provider,
                kind="protocol",
            )
        result = AsrResult(
            text.strip(),
            language=str(payload.get("language") or language or ""),
            decode_ms=(time.perf_counter() - start) * 1000,
        )
        await self._record(seconds, cached=False, latency_ms=result.decode_ms)
        if self.cache is not None:
            await self.cache.set(
                key, json.dumps({"text": result.text, "language": result.language}).encode()
            )
        return result

    async def _record(
        self, seconds: float, *, cached: bool, latency_ms: float, ok: bool = True
    ) -> None:
        if self.ledger is None:
            return
        await self.ledger.arecord(
            provider=self.provider,
            kind="asr",
            units=seconds,
            cost=self.prices.asr_cost(seconds) if ok else 0.0,
            cached=cached,
            call_id=current_call.get(),
            latency_ms=latency_ms,
            ok=ok,
        )

    async def warm_up(self) -> None:
        await self.client.warm()


def _from_cache(raw: bytes) -> AsrResult:
    data = json.loads(raw)
    return AsrResult(data["text"], language=data.get("language", ""))


class OpenAiAsrSession(AsrSession):
    def __init__(
        self, engine: OpenAiAsrEngine, language: str | None, context: str | None = None
    ) -> None:
        self.engine = engine
        self.language = language
        self.context = context
        self._chunks: list[np.ndarray] = []
        self._samples = 0

    def feed(self, audio: np.ndarray) -> None:
        self._chunks.append(audio)
        self._samples += len(audio)

    @property
    def duration(self) -> float:
        return self._samples / SAMPLE_RATE

    def _audio(self) -> np.ndarray:
        if len(self._chunks) > 1:
            self._chunks = [np.concatenate(self._chunks)]
        return self._chunks[0] if self._chunks else np.zeros(0, np.float32)

    async def partial(self) -> AsrResult:
        if not self.engine.partials or not self._samples:
            return AsrResult("")
        return await self.engine.transcribe(self._audio(), self.language, context=self.context)

    async def finish(self) -> AsrResult:
        if not self._samples:
            return AsrResult("")
        return await self.engine.transcribe(self._audio(), self.language, context=self.context)
