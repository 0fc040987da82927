"""Remote ASR/TTS engines over real HTTP/WebSocket: retries, caches, costs, budget fallback.

The provider is either the fault-injecting server of ``tests/support/faults.py`` (scripted
429/503/timeouts/truncation) or a real voicebot speech node (``voicebot.server.child``).
The local fallback engines are the real Whisper and Piper engines.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import jiwer
import numpy as np
import pytest

from tests.support.paths import RESTAURANT_FLOW, RESTAURANT_INTENTS
from tests.support.transcripts import words
from voicebot.asr.fallback import FallbackAsrEngine
from voicebot.asr.remote import OpenAiAsrEngine
from voicebot.config import load_pipeline
from voicebot.engines import local_asr, local_tts
from voicebot.providers.cache import MemoryCache
from voicebot.providers.costs import CostLedger, PriceTable
from voicebot.providers.errors import ProviderError
from voicebot.providers.http import ProviderClient, ProviderSettings
from voicebot.providers.retry import RetryPolicy
from voicebot.samples import speak, write_caller
from voicebot.server.child import ChildServer
from voicebot.tts.fallback import FallbackTtsEngine
from voicebot.tts.remote import PCM_RATE, OpenAiTtsEngine, WebSocketTtsEngine

UTTERANCE = "I would like to book a table for two people."
FAST_RETRY = RetryPolicy(max_attempts=4, base_s=0.02, cap_s=0.1)


def wer(reference: str, hypothesis: str) -> float:
    return jiwer.wer(words(reference), words(hypothesis))


def float_audio(text: str) -> np.ndarray:
    return speak(text).astype(np.float32) / 32768


@pytest.fixture(autouse=True)
def costs_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Engines built by the pipeline bill the default ledger: keep it out of the repo."""
    path = tmp_path / "costs.db"
    monkeypatch.setenv("VOICEBOT_COSTS_DB", str(path))
    return path


_clients = 0


def client_for(base_url: str, **overrides: object) -> ProviderClient:
    """A fresh client per test (shared() keys by settings; a unique name keeps tests apart)."""
    global _clients
    _clients += 1
    settings = dict(
        name=f"test{_clients}",
        base_url=base_url,
        read_timeout_s=5.0,
        requests_per_minute=6000.0,
        retry=FAST_RETRY,
    )
    settings.update(overrides)
    return ProviderClient.shared(ProviderSettings(**settings))  # type: ignore[arg-type]


def asr(base_url: str, tmp_path: Path, **kw: object) -> OpenAiAsrEngine:
    return OpenAiAsrEngine(
        client_for(base_url),
        "whisper-1",
        prices=PriceTable(asr_per_second=0.0001),
        cache=MemoryCache(),
        ledger=CostLedger(tmp_path / "costs.db"),
        **kw,
    )  # type: ignore[arg-type]


def tts(cls: type, base_url: str, tmp_path: Path, **kw: object) -> OpenAiTtsEngine:
    return cls(
        client_for(base_url),
        "tts-1",
        "alloy",
        prices=PriceTable(tts_per_1k_chars=0.015),
        cache=MemoryCache(),
        ledger=CostLedger(tmp_path / "costs.db"),
        **kw,
    )


async def collect(chunks) -> np.ndarray:
    parts = [c async for c in chunks]
    return np.concatenate(parts) if parts else np.zeros(0, np.int16)


# --- ASR ----------------------------------------------------------------------------


async def test_asr_retries_through_429_and_503(fault, tmp_path):
    fault.text = "a table for two"
    fault.script("429", "503")
    engine = asr(fault.base_url, tmp_path)
    result = await engine.transcribe(float_audio(UTTERANCE), "en")
    assert result.text == "a table for two"
    paths = [r.path for r in fault.requests if r.path.endswith("/transcriptions")]
    assert len(paths) == 3
    totals = engine.ledger.totals()
    assert totals["requests"] == 1 and totals["cost"] > 0


async def test_asr_cache_avoids_the_second_request_and_counts_it(fault, tmp_path):
    engine = asr(fault.base_url, tmp_path)
    audio = float_audio(UTTERANCE)
    first = await engine.transcribe(audio, "en")
    second = await engine.transcribe(audio, "en")
    assert first.text == second.text
    assert len([r for r in fault.requests if r.path.endswith("/transcriptions")]) == 1
    other = await engine.transcribe(audio, "de")  # other parameters: another key
    assert other.text == first.text
    assert len([r for r in fault.requests if r.path.endswith("/transcriptions")]) == 2
    totals = engine.ledger.totals()
    assert totals["requests"] == 2 and totals["hits"] == 1
    assert totals["cost_avoided"] == pytest.approx(totals["cost"] / 2)


async def test_asr_error_is_not_retried_and_never_shows_the_key(fault, tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_PROVIDER_KEY", "sk-secret-999")
    engine = OpenAiAsrEngine(
        client_for(fault.base_url, api_key_env="TEST_PROVIDER_KEY"),
        "whisper-1",
        prices=PriceTable(),
    )
    fault.script("400")
    with pytest.raises(ProviderError) as info:
        await engine.transcribe(float_audio("hello"), "en")
    assert info.value.status == 400 and "sk-secret-999" not in str(info.value)
    assert fault.requests[-1].headers.get("authorization") == "Bearer sk-secret-999"
    assert len(fault.requests) == 1


async def test_asr_falls_back_to_local_when_the_provider_hangs(fault, tmp_path):
    fault.default = "timeout"
    engine = FallbackAsrEngine(asr(fault.base_url, tmp_path), local_asr("tiny.en"), timeout_s=0.5)
    await engine.local.warm_up()
    start = time.perf_counter()
    result = await engine.transcribe(float_audio(UTTERANCE), "en")
    elapsed = time.perf_counter() - start
    assert result.engine == "whisper" and wer(UTTERANCE, result.text) <= 0.2
    assert 0.5 <= elapsed < 3.0  # the budget share, then one local decode
    assert engine.fallbacks == 1


async def test_asr_falls_back_at_once_on_a_provider_error(fault, tmp_path):
    fault.default = "400"
    engine = FallbackAsrEngine(asr(fault.base_url, tmp_path), local_asr("tiny.en"), timeout_s=10.0)
    await engine.local.warm_up()
    start = time.perf_counter()
    result = await engine.transcribe(float_audio(UTTERANCE), "en")
    assert result.engine == "whisper" and time.perf_counter() - start < 5.0


async def test_asr_hedge_takes_the_first_transcript(fault, tmp_path):
    fault.default, fault.slow_s = "slow", 3.0
    engine = FallbackAsrEngine(
        asr(fault.base_url, tmp_path), local_asr("tiny.en"), timeout_s=8.0, hedge_s=0.1
    )
    await engine.local.warm_up()
    start = time.perf_counter()
    result = await engine.transcribe(float_audio(UTTERANCE), "en")
    assert result.engine == "whisper" and time.perf_counter() - start < 2.5
    fault.default = "ok"
    fault.text = "remote words"
    result = await engine.transcribe(float_audio("something else entirely"), "en")
    assert result.engine == "openai" and result.text == "remote words"


async def test_without_fallback_a_failed_turn_is_lost_not_the_call(fault, tmp_path):
    fault.default = "503"
    engine = FallbackAsrEngine(asr(fault.base_url, tmp_path), None, timeout_s=1.0)
    result = await engine.transcribe(float_audio("hello"), "en")
    assert result.text == "" and result.engine == "openai"
    speech = FallbackTtsEngine(tts(OpenAiTtsEngine, fault.base_url, tmp_path), None, timeout_s=1.0)
    assert len(await collect(speech.synthesize("Hello."))) == 0
    fault.default = "ok"
    assert len(await collect(speech.synthesize("Hello."))) == 0  # resting after the failure
    assert speech.fallbacks == 2


# --- TTS ----------------------------------------------------------------------------


async def test_rest_tts_streams_pcm_and_caches_it(fault, tmp_path):
    fault.chunks, fault.chunk_ms = 4, 100
    engine = tts(OpenAiTtsEngine, fault.base_url, tmp_path)
    chunks = [c async for c in engine.synthesize("Hello there.")]
    assert len(chunks) >= 2  # streamed, not one body
    audio = np.concatenate(chunks)
    assert len(audio) == 4 * PCM_RATE // 10
    again = await collect(engine.synthesize("Hello there."))
    assert np.array_equal(audio, again)
    assert len([r for r in fault.requests if r.path.endswith("/speech")]) == 1
    body = json.loads(fault.requests[0].body)
    assert body["response_format"] == "pcm" and body["voice"] == "alloy"
    totals = engine.ledger.totals()
    assert totals["requests"] == 1 and totals["hits"] == 1


async def test_websocket_tts_reuses_its_connection(fault, tmp_path):
    fault.chunks, fault.chunk_ms = 3, 100
    engine = tts(WebSocketTtsEngine, fault.base_url, tmp_path)
    one = await collect(engine.synthesize("First clause."))
    two = await collect(engine.synthesize("Second clause."))
    assert len(one) == len(two) == 3 * PCM_RATE // 10
    assert fault.ws_connections == 1
    fault.script("close")
    with pytest.raises(ProviderError) as info:
        await collect(engine.synthesize("Third clause."))
    assert info.value.kind == "protocol"
    fault.script("error")
    with pytest.raises(ProviderError):
        await collect(engine.synthesize("Fourth clause."))
    await engine.aclose()


async def test_tts_falls_back_when_first_audio_is_late(fault, tmp_path):
    fault.default, fault.slow_s = "slow", 3.0
    local = local_tts("piper", "en_US-joe-medium")
    await local.warm_up()
    engine = FallbackTtsEngine(tts(OpenAiTtsEngine, fault.base_url, tmp_path), local, timeout_s=0.3)
    start = time.perf_counter()
    chunks = engine.synthesize("Your table is booked.")
    first = await anext(chunks)
    assert time.perf_counter() - start < 1.5 and len(first)
    rest = await collect(chunks)
    audio = np.concatenate([first, rest])
    assert engine.fallbacks == 1 and engine.sample_rate == PCM_RATE
    assert 0.8 < len(audio) / PCM_RATE < 3.0  # Piper's clause, resampled to 24 kHz


async def test_tts_broken_stream_ends_the_clause_and_rests_the_provider(fault, tmp_path):
    fault.chunks, fault.chunk_ms = 6, 100
    local = local_tts("piper", "en_US-joe-medium")
    engine = FallbackTtsEngine(
        tts(OpenAiTtsEngine, fault.base_url, tmp_path), local, timeout_s=1.0, cooldown_s=30.0
    )
    fault.script("truncate")
    cut = await collect(engine.synthesize("A clause cut short."))
    assert 0 < len(cut) < 6 * PCM_RATE // 10
    before = len(fault.requests)
    later = await collect(engine.synthesize("The next clause."))
    assert len(later) > 0 and len(fault.requests) == before  # spoken locally, no request
    assert engine.fallbacks == 1


# --- against a real voicebot speech node -------------------------------------------


@pytest.fixture(scope="module")
def node() -> Iterator[str]:
    with ChildServer("speech-server", capture=True) as node:
        yield node.url + "/v1"


async def test_engines_against_a_speech_node(node, tmp_path):
    engine = asr(node, tmp_path)
    result = await engine.transcribe(float_audio(UTTERANCE), "en")
    assert wer(UTTERANCE, result.text) <= 0.2
    reply = "Your table for two is booked for Friday."
    whisper = local_asr("tiny.en")
    for cls in (OpenAiTtsEngine, WebSocketTtsEngine):
        speech = await collect(tts(cls, node, tmp_path).synthesize(reply))
        assert len(speech) / PCM_RATE > 1.0
        heard = await whisper.transcribe(_to_16k(speech), "en")
        # tiny.en may merge "two is booked" into "two's booked": judge the content words
        heard_words = set(words(heard.text).split())
        assert {"table", "friday"} <= heard_words, (cls.__name__, heard.text)
        assert wer(reply, heard.text) <= 0.4, (cls.__name__, heard.text)


def _to_16k(pcm: np.ndarray) -> np.ndarray:
    from voicebot.audio.resample import StreamResampler

    r = StreamResampler(PCM_RATE, 1, 16000, 1)
    out = np.concatenate([r.process(pcm), r.flush()])
    return out.astype(np.float32) / 32768


# --- whole calls ---------------------------------------------------------------------


def remote_pipeline(
    tmp_path: Path, base_url: str, *, tts_engine: str = "openai", flow: bool = False
) -> Path:
    dialog = (
        "dialog:\n  type: flow\n"
        f"  flow: {RESTAURANT_FLOW}\n"
        f"  intents: [{RESTAURANT_INTENTS}]\n"
        f"  outcomes: {tmp_path / 'outcomes.db'}\n"
        if flow
        else "dialog:\n  type: echo\n"
    )
    path = tmp_path / "remote.yaml"
    path.write_text(
        f"name: remote-test\nlanguage: en\nlatency_budget_ms: 1200\n"
        f"asr:\n  engine: openai\n  remote:\n    preset: voicebot\n    base_url: {base_url}\n"
        f"    timeout_ms: 600\n    max_attempts: 2\n"
        f"tts:\n  engine: {tts_engine}\n  remote:\n    preset: voicebot\n"
        f"    base_url: {base_url}\n    timeout_ms: 400\n    max_attempts: 2\n" + dialog
    )
    return path


async def test_a_call_completes_while_the_provider_is_down(fault, tmp_path):
    from voicebot.runner import run_file

    fault.default = "503"
    config = load_pipeline(remote_pipeline(tmp_path, fault.base_url))
    caller = tmp_path / "caller.wav"
    write_caller(caller, ["Hello, I would like a table.", "For four people on Friday."], pause=4.0)
    result = await run_file(config, caller, tmp_path / "bot.wav", fast=True)
    finals = [e for e in result.of_type("transcript") if e["final"]]
    assert len(finals) == 2 and all(e["engine"] == "whisper" for e in finals)
    assert len(result.of_type("tts_first_audio")) == 2
    assert result.of_type("call_ended")[0]["reason"] == "completed"
    assert fault.requests  # the provider was asked first


async def test_a_call_on_a_speech_node_is_billed_to_the_call(node, tmp_path, costs_db):
    from voicebot.providers.costs import default_ledger
    from voicebot.runner import run_file

    config = load_pipeline(remote_pipeline(tmp_path, node, tts_engine="websocket", flow=True))
    caller = tmp_path / "caller.wav"
    write_caller(caller, ["I would like to book a table."], pause=5.0)
    result = await run_file(config, caller, tmp_path / "bot.wav", fast=True)
    finals = [e for e in result.of_type("transcript") if e["final"]]
    assert finals and finals[0]["engine"] == "openai"
    assert wer("I would like to book a table.", finals[0]["text"]) <= 0.2
    call_id = result.of_type("call_started")[0]["call_id"]
    per_call = default_ledger().per_call(call_id)
    assert per_call["asr"]["requests"] >= 1
    assert default_ledger().path == costs_db
    # the greeting was fetched at warm-up (batch) and came from the cache in the call
    assert per_call["tts"]["hits"] >= 1
