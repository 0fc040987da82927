"""Which speech engine serves a pipeline's settings — local or on a provider — once per process.

Models and voices load once per process and are shared by every call; so are the
provider clients (one pooled HTTP client each), caches and the cost ledger. A remote
engine is always wrapped with its deadline (its share of the latency budget) and,
unless ``fallback: none``, with the local engine that answers when the provider
does not.

The command line names engines by a short spec (``voicebot transcribe --engine``):
``local`` or a preset name (``openai``, ``holysheep``, ``voicebot``), optionally with
a base URL: ``voicebot=http://10.0.0.5:8000/v1``.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from voicebot.asr.base import AsrEngine
from voicebot.config import (
    ASR_BUDGET_SHARE,
    DEFAULT_LATENCY_BUDGET_MS,
    TTS_BUDGET_SHARE,
    AsrSettings,
    CacheKind,
    RemoteSettings,
    TtsSettings,
)
from voicebot.tts.base import TtsEngine

if TYPE_CHECKING:
    from voicebot.asr.whisper import WhisperEngine
    from voicebot.providers.cache import Cache
    from voicebot.providers.http import ProviderClient
    from voicebot.providers.limits import Priority


@functools.cache
def local_asr(
    model: str, compute_type: str = "int8", cpu_threads: int = 2, beam_size: int = 1
) -> WhisperEngine:
    from voicebot.asr.whisper import WhisperEngine

    return WhisperEngine(
        model, compute_type=compute_type, cpu_threads=cpu_threads, beam_size=beam_size
    )


@functools.cache
def local_tts(engine: str, voice: str, speed: float = 1.0) -> TtsEngine:
    if engine == "espeak":
        from voicebot.tts.espeak import EspeakEngine

        return EspeakEngine(voice=voice, rate_wpm=round(160 * speed))
    from voicebot.tts.piper import PiperEngine

    return PiperEngine(voice=voice, speed=speed)


@dataclass(frozen=True)
class Provider:
    """Remote settings with the preset's defaults filled in."""

    name: str
    base_url: str
    api_key_env: str
    model: str
    voice: str
    price: float
    requests_per_minute: float
    max_concurrency: int
    max_attempts: int
    cache: str
    redis_url: str
    cache_ttl_s: int


def resolve(remote: RemoteSettings, kind: Literal["asr", "tts"]) -> Provider:
    from voicebot.providers.presets import preset

    p = preset(remote.preset)
    price = remote.price
    if price is None:
        price = p.prices.asr_per_second if kind == "asr" else p.prices.tts_per_1k_chars
    return Provider(
        name=remote.preset if not remote.base_url else _host(remote.base_url),
        base_url=(remote.base_url or p.base_url).rstrip("/"),
        api_key_env=remote.api_key_env or p.api_key_env,
        model=remote.model or (p.asr_model if kind == "asr" else p.tts_model),
        voice=remote.voice or p.tts_voice,
        price=price,
        requests_per_minute=remote.requests_per_minute or p.requests_per_minute,
        max_concurrency=remote.max_concurrency,
        max_attempts=remote.max_attempts,
        cache=remote.cache,
        redis_url=remote.redis_url,
        cache_ttl_s=remote.cache_ttl_s,
    )


def _host(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).netloc or url


def provider_client(provider: Provider) -> ProviderClient:
    from voicebot.providers.http import ProviderClient, ProviderSettings
    from voicebot.providers.retry import RetryPolicy

    return ProviderClient.shared(
        ProviderSettings(
            name=provider.name,
            base_url=provider.base_url,
            api_key_env=provider.api_key_env,
            max_concurrency=provider.max_concurrency,
            requests_per_minute=provider.requests_per_minute,
            retry=RetryPolicy(max_attempts=provider.max_attempts),
        )
    )


def provider_cache(provider: Provider) -> Cache | None:
    from voicebot.providers.cache import make_cache

    return make_cache(provider.cache, redis_url=provider.redis_url, ttl_s=provider.cache_ttl_s)


def remote_asr(
    provider: Provider,
    *,
    priority: Priority | None = None,
    deadline_s: float | None = None,
    partials: bool = False,
) -> AsrEngine:
    from voicebot.asr.remote import OpenAiAsrEngine
    from voicebot.providers.costs import PriceTable, default_ledger
    from voicebot.providers.limits import Priority

    return OpenAiAsrEngine(
        provider_client(provider),
        provider.model,
        prices=PriceTable(asr_per_second=provider.price),
        cache=provider_cache(provider),
        ledger=default_ledger(),
        priority=Priority.LIVE if priority is None else priority,
        partials=partials,
        deadline_s=deadline_s,
    )


def remote_tts(
    provider: Provider,
    protocol: str = "openai",
    *,
    speed: float = 1.0,
    priority: Priority | None = None,
    deadline_s: float | None = None,
) -> TtsEngine:
    from voicebot.providers.costs import PriceTable, default_ledger
    from voicebot.providers.limits import Priority
    from voicebot.tts.remote import OpenAiTtsEngine, WebSocketTtsEngine

    cls = WebSocketTtsEngine if protocol == "websocket" else OpenAiTtsEngine
    return cls(
        provider_client(provider),
        provider.model,
        provider.voice,
        speed=speed,
        prices=PriceTable(tts_per_1k_chars=provider.price),
        cache=provider_cache(provider),
        ledger=default_ledger(),
        priority=Priority.LIVE if priority is None else priority,
        deadline_s=deadline_s,
    )


_ASR_ENGINES: dict[tuple[Any, ...], AsrEngine] = {}
_TTS_ENGINES: dict[tuple[Any, ...], TtsEngine] = {}


def asr_engine(settings: AsrSettings, budget_ms: int = DEFAULT_LATENCY_BUDGET_MS) -> AsrEngine:
    """The process-wide ASR engine for these settings and latency budget."""
    key = ("asr", dataclasses.astuple(settings), budget_ms)
    if key not in _ASR_ENGINES:
        local = local_asr(
            settings.model, settings.compute_type, settings.cpu_threads, settings.beam_size
        )
        if settings.engine == "whisper":
            _ASR_ENGINES[key] = local
        else:
            from voicebot.asr.fallback import FallbackAsrEngine

            remote = settings.remote
            timeout_s = (remote.timeout_ms or ASR_BUDGET_SHARE * budget_ms) / 1000
            _ASR_ENGINES[key] = FallbackAsrEngine(
                remote_asr(resolve(remote, "asr"), deadline_s=timeout_s, partials=remote.partials),
                local if remote.fallback == "local" else None,
                timeout_s=timeout_s,
                hedge_s=None if remote.hedge_ms is None else remote.hedge_ms / 1000,
            )
    return _ASR_ENGINES[key]


def tts_engine(settings: TtsSettings, budget_ms: int = DEFAULT_LATENCY_BUDGET_MS) -> TtsEngine:
    """The process-wide TTS engine for these settings and latency budget."""
    key = ("tts", dataclasses.astuple(settings), budget_ms)
    if key not in _TTS_ENGINES:
        if not settings.is_remote:
            _TTS_ENGINES[key] = local_tts(settings.local_engine, settings.voice, settings.speed)
        else:
            from voicebot.tts.fallback import FallbackTtsEngine

            remote = settings.remote
            local = (
                local_tts(settings.local_engine, settings.voice, settings.speed)
                if remote.fallback == "local"
                else None
            )
            timeout_s = (remote.timeout_ms or TTS_BUDGET_SHARE * budget_ms) / 1000
            engine = remote_tts(resolve(remote, "tts"), settings.engine, speed=settings.speed)
            hedge = None if remote.hedge_ms is None else remote.hedge_ms / 1000
            _TTS_ENGINES[key] = FallbackTtsEngine(engine, local, timeout_s=timeout_s, hedge_s=hedge)
    return _TTS_ENGINES[key]


# --- command-line specs ------------------------------------------------------------


def parse_spec(spec: str) -> tuple[str, str]:
    """``"voicebot=http://host:8000/v1"`` → ``("voicebot", "http://host:8000/v1")``."""
    name, _, url = spec.partition("=")
    return name.strip(), url.strip()


def spec_remote(spec: str, *, cache: CacheKind = "memory") -> RemoteSettings | None:
    """Remote settings for a command-line engine spec; None for ``local``."""
    from voicebot.providers.presets import PRESETS

    name, url = parse_spec(spec)
    if name == "local":
        return None
    if name not in PRESETS:
        raise ValueError(
            f"unknown engine {name!r}: use local or one of {', '.join(PRESETS)}"
            " (optionally =BASE_URL)"
        )
    return RemoteSettings(preset=PRESETS[name].name, base_url=url, cache=cache)
