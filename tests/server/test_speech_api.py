"""The speech API as the official ``openai`` SDK sees it: a real speech node over loopback.

Speech comes from the node itself or from the bundled voices (``voicebot.samples``).
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import av
import httpx
import jiwer
import numpy as np
import openai
import pytest
import websockets

from tests.support.paths import ECHO_PIPELINE
from tests.support.transcripts import words
from voicebot.audio.codecs import decode_audio
from voicebot.samples import speak
from voicebot.server.child import ChildServer

KEY = "sk-node-test-key"
SENTENCE = "Please book a table for four people on Friday evening."
LONG = (
    "Thank you for calling. Our restaurant is open from noon until eleven at night, "
    "every day except Monday. We take bookings for up to twelve people, and for larger "
    "groups we can reserve the whole terrace. Is there anything else I can help with?"
)


@pytest.fixture(scope="module")
def node() -> Iterator[str]:
    with ChildServer(
        "speech-server",
        "--requests-per-minute",
        "6000",
        "--max-concurrency",
        "2",
        env={"VOICEBOT_API_KEYS": f"other-key,{KEY}"},
        capture=True,
    ) as node:
        yield node.url + "/v1"


@pytest.fixture(scope="module")
def client(node: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=node, api_key=KEY, max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def wav_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("speech") / "caller.wav"
    pcm = speak(SENTENCE)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(pcm.tobytes())
    return path


def convert(wav: Path, fmt: str, codec: str, rate: int = 48000) -> Path:
    """The WAV re-encoded with av (what a client might upload)."""
    out_path = wav.with_suffix("." + fmt)
    audio = decode_audio(wav.read_bytes(), rate).astype(np.float32)
    with av.open(str(out_path), "w") as out:
        stream = out.add_stream(codec, rate=rate)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(audio.reshape(1, -1), format="flt", layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return out_path


# --- transcriptions ------------------------------------------------------------------


def test_transcription_formats(client, wav_file):
    with wav_file.open("rb") as f:
        result = client.audio.transcriptions.create(model="whisper-1", file=f)
    assert jiwer.wer(words(SENTENCE), words(result.text)) <= 0.2
    with wav_file.open("rb") as f:
        text = client.audio.transcriptions.create(model="whisper-1", file=f, response_format="text")
    assert isinstance(text, str) and jiwer.wer(words(SENTENCE), words(text)) <= 0.2
    with wav_file.open("rb") as f:
        srt = client.audio.transcriptions.create(model="whisper-1", file=f, response_format="srt")
    assert re.match(r"1\n00:00:00,\d{3} --> 00:00:0\d,\d{3}\n\S", srt)
    with wav_file.open("rb") as f:
        vtt = client.audio.transcriptions.create(model="whisper-1", file=f, response_format="vtt")
    assert vtt.startswith("WEBVTT\n\n00:00:00.") and "-->" in vtt
    with wav_file.open("rb") as f:
        verbose = client.audio.transcriptions.create(
            model="whisper-1",
            file=f,
            response_format="verbose_json",
            timestamp_granularities=["word", "segment"],
        )
    data = verbose.model_dump()
    assert data["language"] == "en" and 2.5 < data["duration"] < 5.0
    seg = data["segments"][0]
    for key in (
        "id",
        "seek",
        "start",
        "end",
        "text",
        "tokens",
        "temperature",
        "avg_logprob",
        "compression_ratio",
        "no_speech_prob",
    ):
        assert key in seg, key
    assert seg["id"] == 0 and 0 <= seg["start"] < seg["end"] <= data["duration"] + 0.5
    assert seg["tokens"] and 0 <= seg["no_speech_prob"] <= 1
    assert [w["word"] for w in data["words"]][:2] == ["Please", "book"]


@pytest.mark.parametrize(
    ("fmt", "codec"),
    [("mp3", "libmp3lame"), ("ogg", "libopus"), ("flac", "flac"), ("webm", "libopus")],
)
def test_compressed_uploads(client, wav_file, fmt, codec):
    path = convert(wav_file, fmt, codec)
    with path.open("rb") as f:
        result = client.audio.transcriptions.create(model="whisper-1", file=f)
    assert jiwer.wer(words(SENTENCE), words(result.text)) <= 0.2


def test_transcription_errors(client, node, wav_file):
    with pytest.raises(openai.BadRequestError) as info:
        client.audio.transcriptions.create(model="whisper-9", file=wav_file.open("rb"))
    assert info.value.body["param"] == "model"
    with pytest.raises(openai.BadRequestError) as info:
        client.audio.transcriptions.create(
            model="whisper-1", file=("noise.wav", b"RIFF not audio at all")
        )
    assert info.value.body["param"] == "file"
    with pytest.raises(openai.BadRequestError) as info:
        client.audio.transcriptions.create(model="tiny.en", file=wav_file.open("rb"), language="de")
    assert info.value.body["param"] == "language"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=node, api_key="wrong", max_retries=0).models.list()
    r = httpx.post(node + "/audio/transcriptions", data={"model": "whisper-1"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    r = httpx.post(
        node + "/audio/transcriptions",
        data={"model": "whisper-1"},
        headers={"authorization": f"Bearer {KEY}"},
    )
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    big = b"\0" * (26 * 1024 * 1024)
    r = httpx.post(
        node + "/audio/transcriptions",
        headers={"authorization": f"Bearer {KEY}"},
        files={"file": ("big.wav", big)},
        data={"model": "whisper-1"},
        timeout=60,
    )
    assert r.status_code == 413 and set(r.json()["error"]) == {"message", "type", "param", "code"}
    r = httpx.get(node + "/nothing-here", headers={"authorization": f"Bearer {KEY}"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = httpx.get(node + "/audio/speech", headers={"authorization": f"Bearer {KEY}"})
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    assert r.json()["error"]["type"] == "invalid_request_error"


# --- speech ------------------------------------------------------------------------


def test_speech_streams_before_synthesis_ends(client):
    start = time.perf_counter()
    arrivals = []
    pcm = bytearray()
    with client.audio.speech.with_streaming_response.create(
        model="tts-1", voice="alloy", input=LONG, response_format="pcm"
    ) as response:
        assert response.headers["content-type"].startswith("audio/pcm")
        for chunk in response.iter_bytes():
            arrivals.append(time.perf_counter() - start)
            pcm += chunk
    total = arrivals[-1]
    seconds = len(pcm) / 2 / 24000
    assert 10 < seconds < 25  # ~220 characters of speech at 24 kHz
    assert len(arrivals) > 5
    assert arrivals[0] < total / 3, (arrivals[0], total)  # first audio long before the end


@pytest.mark.parametrize("fmt", ["wav", "mp3", "opus", "flac", "aac", "pcm"])
def test_speech_formats_decode(client, fmt):
    with client.audio.speech.with_streaming_response.create(
        model="tts-1", voice="nova", input=SENTENCE, response_format=fmt, speed=1.0
    ) as response:
        data = response.read()
    if fmt == "pcm":
        seconds = len(data) / 2 / 24000
    else:
        seconds = len(decode_audio(data)) / 16000
    assert 2.0 < seconds < 5.0, (fmt, seconds)


def test_speech_round_trip_and_speed(client):
    with client.audio.speech.with_streaming_response.create(
        model="tts-1", voice="alloy", input=SENTENCE, response_format="wav"
    ) as response:
        normal = response.read()
    with client.audio.speech.with_streaming_response.create(
        model="tts-1", voice="alloy", input=SENTENCE, response_format="wav", speed=1.5
    ) as response:
        fast = response.read()
    assert len(decode_audio(fast)) < 0.8 * len(decode_audio(normal))
    heard = client.audio.transcriptions.create(model="whisper-1", file=("speech.wav", normal))
    assert jiwer.wer(words(SENTENCE), words(heard.text)) <= 0.2


def test_espeak_voices(client):
    """espeak-ng voices by name, and the espeak model with an OpenAI voice name."""
    for model, voice in [("tts-1", "de"), ("espeak", "alloy")]:
        with client.audio.speech.with_streaming_response.create(
            model=model, voice=voice, input="Guten Tag.", response_format="wav"
        ) as r:
            seconds = len(decode_audio(r.read())) / 16000
        assert 0.4 < seconds < 3.0, (model, voice, seconds)


def test_speech_server_picks_the_engine_from_the_voice():
    from voicebot.server.speech_server import tts_engine_for

    assert tts_engine_for("en_US-joe-medium") == "piper"
    assert tts_engine_for("de") == "espeak"
    with pytest.raises(ValueError, match="nobody"):
        tts_engine_for("nobody")


def _jobs_active(node: str) -> int:
    return httpx.get(node.removesuffix("/v1") + "/healthz").json()["jobs_active"]


def _cpu_busy(node: str, seconds: float = 1.5, settle: float = 1.5) -> float:
    """CPU seconds the node's process burns in ``seconds`` after ``settle`` (its own metric).

    An engine stops between clauses, so the clause in flight may finish while we settle.
    """

    def cpu() -> float:
        text = httpx.get(node.removesuffix("/v1") + "/metrics").text
        return float(re.search(r"^process_cpu_seconds_total (\S+)$", text, re.M).group(1))

    time.sleep(settle)
    before = cpu()
    time.sleep(seconds)
    return cpu() - before


def _wait_idle(node: str, timeout: float = 1.0) -> int:
    """Jobs still active once none are, or ``timeout`` has passed."""
    deadline = time.monotonic() + timeout
    while (active := _jobs_active(node)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return active


TEXT_x4 = " ".join([LONG] * 4)  # several seconds of synthesis


def test_client_disconnect_stops_synthesis(node):
    """A client leaving mid-stream frees its job slot and stops synthesis at once.

    The rest of the text is many seconds of synthesis: had it gone on, the node would
    keep burning about a core.
    """
    with (
        httpx.Client(headers={"authorization": f"Bearer {KEY}"}, timeout=60) as http,
        http.stream(
            "POST",
            node + "/audio/speech",
            json={"model": "tts-1", "voice": "alloy", "input": TEXT_x4, "response_format": "mp3"},
        ) as r,
    ):
        assert r.status_code == 200
        chunks = r.iter_bytes()  # held: a dropped iterator would close the connection
        next(chunks)
        assert _jobs_active(node) == 1
    assert _wait_idle(node) == 0
    assert _cpu_busy(node) < 0.3


async def test_websocket_disconnect_stops_synthesis(node):
    async with websockets.connect(ws_url(node) + f"?api_key={KEY}") as ws:
        await ws.send(json.dumps({"input": TEXT_x4, "voice": "alloy"}))
        assert isinstance(await asyncio.wait_for(ws.recv(), 30), bytes)
    assert await asyncio.to_thread(_wait_idle, node) == 0
    assert await asyncio.to_thread(_cpu_busy, node) < 0.3


def test_speech_errors(client):
    for kwargs, param in [
        ({"voice": "nobody"}, "voice"),
        ({"model": "tts-9"}, "model"),
        ({"input": "x" * 4097}, "input"),
        ({"speed": 5.0}, "speed"),
        ({"response_format": "ogg"}, "response_format"),
    ]:
        args = {"model": "tts-1", "voice": "alloy", "input": "Hello.", **kwargs}
        with pytest.raises(openai.BadRequestError) as info:
            client.audio.speech.create(**args)
        assert info.value.body["param"] == param


def test_models_list(client):
    ids = {m.id for m in client.models.list()}
    assert {"whisper-1", "tiny.en", "tts-1", "piper"} <= ids


def test_metrics_count_speech_requests(client, node):
    client.models.list()
    text = httpx.get(node.removesuffix("/v1") + "/metrics").text
    assert re.search(
        r'voicebot_speech_api_requests_total\{route="models",status="200"\} [1-9]', text
    )
    assert 'voicebot_speech_api_seconds_count{route="models"}' in text


def test_overload_answers_503(node):
    """Two slots, four queue places: the seventh concurrent long synthesis is refused."""
    statuses: list[int] = []
    lock = threading.Lock()

    def one() -> None:
        r = httpx.post(
            node + "/audio/speech",
            headers={"authorization": f"Bearer {KEY}"},
            json={"model": "tts-1", "voice": "alloy", "input": LONG, "response_format": "pcm"},
            timeout=120,
        )
        with lock:
            statuses.append(r.status_code)
            if r.status_code == 503:
                assert r.json()["error"]["type"] == "server_error"

    threads = [threading.Thread(target=one) for _ in range(9)]
    for t in threads:
        t.start()
        time.sleep(0.05)
    for t in threads:
        t.join()
    assert statuses.count(200) >= 2 and statuses.count(503) >= 1, statuses


def test_rate_limit_answers_429_with_retry_after():
    with ChildServer(
        "speech-server", "--requests-per-minute", "2", "--no-warm-up", capture=True
    ) as node:
        url = node.url + "/v1"
        limited = openai.OpenAI(base_url=url, api_key="none", max_retries=0)
        got = []
        for _ in range(4):
            try:
                limited.audio.speech.create(model="tts-1", voice="alloy", input="Hi.")
                got.append(200)
            except openai.RateLimitError as exc:
                got.append(429)
                assert int(exc.response.headers["retry-after"]) >= 1
        assert got[0] == 200 and 429 in got


# --- streaming TTS over WebSocket ------------------------------------------------------


def ws_url(node: str) -> str:
    return node.replace("http://", "ws://") + "/tts/stream"


async def test_websocket_protocol(node):
    headers = {"Authorization": f"Bearer {KEY}"}
    async with websockets.connect(ws_url(node), additional_headers=headers) as ws:
        for text in ("Hello there.", "A second request on the same connection."):
            await ws.send(
                json.dumps(
                    {
                        "input": text,
                        "voice": "alloy",
                        "voice_settings": {"speed": 1.0},
                        "response_format": "pcm",
                    }
                )
            )
            audio = bytearray()
            while True:
                message = await asyncio.wait_for(ws.recv(), 30)
                if isinstance(message, bytes):
                    audio += message
                    continue
                done = json.loads(message)
                break
            assert done["type"] == "done" and done["characters"] == len(text)
            assert done["audio_seconds"] == pytest.approx(len(audio) / 2 / 24000, abs=0.01)
        await ws.send(json.dumps({"input": "", "voice": "alloy"}))
        error = json.loads(await ws.recv())
        assert error["type"] == "error" and error["error"]["param"] == "input"
        await ws.send("not json")
        assert json.loads(await ws.recv())["type"] == "error"
        await ws.send(b"\0\1")
        assert json.loads(await ws.recv())["error"]["type"] == "invalid_request_error"
        # Requests sent without waiting are answered in turn.
        await ws.send(json.dumps({"input": "One.", "voice": "alloy"}))
        await ws.send(json.dumps({"input": "And two.", "voice": "alloy"}))
        dones = []
        while len(dones) < 2:
            message = await asyncio.wait_for(ws.recv(), 30)
            if isinstance(message, str):
                dones.append(json.loads(message))
        assert [d["characters"] for d in dones] == [4, 8]
    async with websockets.connect(ws_url(node) + "?api_key=wrong") as ws:
        error = json.loads(await ws.recv())
        assert error["error"]["code"] == "invalid_api_key"
        with pytest.raises(websockets.ConnectionClosed) as info:
            await ws.recv()
        assert info.value.rcvd.code == 4401
    async with websockets.connect(ws_url(node) + f"?api_key={KEY}") as ws:
        await ws.send(json.dumps({"text": "Query keys work too.", "voice": "alloy"}))
        assert isinstance(await asyncio.wait_for(ws.recv(), 30), bytes)


def test_serve_mounts_the_speech_api(tmp_path):
    """``voicebot serve`` answers /v1 too (same routes, the pipeline's local engines)."""
    from starlette.testclient import TestClient

    from voicebot.config import load_pipeline
    from voicebot.server.app import create_app

    config = load_pipeline(ECHO_PIPELINE)
    with TestClient(create_app(config, warm=False)) as http:
        models = http.get("/v1/models").json()
        assert models["voices"]["default"] == "en_US-joe-medium"
        r = http.post(
            "/v1/audio/speech",
            json={"model": "tts-1", "voice": "alloy", "input": "Hi.", "response_format": "wav"},
        )
        assert r.status_code == 200 and r.content[:4] == b"RIFF"
        assert len(decode_audio(r.content)) > 0.2 * 16000
