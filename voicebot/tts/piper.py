"""Piper neural TTS, streamed per sentence from a worker thread.

A Piper voice is a few dozen MB of ONNX weights, so each model is loaded once per process
and shared by every engine that names it; each loaded voice gets one worker thread, which
serialises synthesis on it (onnxruntime already uses the cores for one run). The worker
iterates Piper's per-sentence generator and hands each chunk to the event loop as soon as
it exists; when the consumer stops iterating, the worker stops before the next sentence.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np

from voicebot.tts.base import PcmChunks, TtsEngine
from voicebot.tts.voices import piper_voice_files

if TYPE_CHECKING:
    from piper import PiperVoice

Emit = Callable[[np.ndarray], bool]
"""Hands one chunk to the consumer; False once the consumer has gone (stop producing)."""

_DONE = object()


async def stream_from_executor(executor: Executor, produce: Callable[[Emit], None]) -> PcmChunks:
    """Run ``produce`` on ``executor`` and yield the chunks it emits, as it emits them.

    Leaving the iteration (``aclose``, cancellation, an exception) makes ``emit`` return
    False, and a job still waiting in the executor's queue never starts.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[object] = asyncio.Queue()
    stopped = threading.Event()

    def post(item: object) -> bool:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the loop has closed: nobody is listening any more
            stopped.set()
            return False
        return True

    def emit(chunk: np.ndarray) -> bool:
        return not stopped.is_set() and post(chunk)

    def run() -> None:
        if stopped.is_set():
            return
        try:
            produce(emit)
        except BaseException as exc:
            post(exc)
        else:
            post(_DONE)

    job = executor.submit(run)
    try:
        while (item := await queue.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield cast(np.ndarray, item)
    finally:
        stopped.set()
        job.cancel()


class _SharedVoice:
    """One model's voice, loaded lazily on its own worker thread."""

    def __init__(self, model: Path, config: Path) -> None:
        self.model = model
        self.config = config
        self.executor = ThreadPoolExecutor(1, thread_name_prefix=f"piper-{model.stem}")
        self._voice: PiperVoice | None = None
        self._lock = threading.Lock()

    def get(self) -> PiperVoice:
        with self._lock:
            if self._voice is None:
                self._voice = _load_voice(self.model, self.config)
            return self._voice


def _load_voice(model: Path, config: Path) -> PiperVoice:
    """``PiperVoice.load`` with onnxruntime's idle spinning off.

    Spinning worker threads burn the cores between runs; on a small box shared with ASR
    that slowed synthesis 2x and delayed the event loop by up to 100 ms.
    """
    import onnxruntime
    from piper import PiperConfig, PiperVoice

    options = onnxruntime.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = onnxruntime.InferenceSession(
        str(model), sess_options=options, providers=["CPUExecutionProvider"]
    )
    settings = json.loads(config.read_text(encoding="utf-8"))
    return PiperVoice(session=session, config=PiperConfig.from_dict(settings))


_VOICES: dict[str, _SharedVoice] = {}
_VOICES_LOCK = threading.Lock()


def _shared_voice(model: Path, config: Path) -> _SharedVoice:
    key = str(model.resolve())
    with _VOICES_LOCK:
        if key not in _VOICES:
            _VOICES[key] = _SharedVoice(model, config)
        return _VOICES[key]


class PiperEngine(TtsEngine):
    """Piper voice: the bundled ``en_US-joe-medium`` or a path to an ``.onnx`` model.

    ``speed`` divides the voice's own length scale; ``volume`` multiplies the samples after
    Piper's per-sentence peak normalisation.
    """

    name = "piper"

    def __init__(
        self,
        voice: str = "en_US-joe-medium",
        speed: float = 1.0,
        volume: float = 1.0,
        *,
        deterministic: bool = False,
    ) -> None:
        if speed <= 0 or volume < 0:
            raise ValueError(f"need speed > 0 and volume >= 0, got {speed=}, {volume=}")
        model, config = piper_voice_files(voice)
        if not model.is_file() or not config.is_file():
            raise FileNotFoundError(
                f"piper voice {voice!r}: need {model} and {config} (or a bundled voice name)"
            )
        settings = json.loads(config.read_text(encoding="utf-8"))
        self.sample_rate = int(settings["audio"]["sample_rate"])
        self.voice = voice
        self.speed = speed
        self.volume = volume
        # Piper samples noise for natural variation; tests and benchmarks want
        # the same audio for the same text.
        self._noise_scale = 0.0 if deterministic else None  # None: the voice's own
        self._length_scale = float(settings.get("inference", {}).get("length_scale", 1.0)) / speed
        self._shared = _shared_voice(model, config)

    async def load(self) -> PiperVoice:
        """The process-wide voice object for this model, loaded on first use."""
        return await asyncio.wrap_future(self._shared.executor.submit(self._shared.get))

    async def warm_up(self) -> None:
        chunks = [chunk async for chunk in self.synthesize("Hello.")]
        if not chunks:
            raise RuntimeError(f"{self.name} voice {self.voice!r} produced no audio")

    def synthesize(self, text: str) -> PcmChunks:
        return stream_from_executor(self._shared.executor, lambda emit: self._produce(text, emit))

    def synthesize_sync(self, text: str) -> np.ndarray:
        """All of ``text`` as one int16 array, blocking (tests and batch tools)."""
        chunks: list[np.ndarray] = []

        def collect(chunk: np.ndarray) -> bool:
            chunks.append(chunk)
            return True

        self._shared.executor.submit(self._produce, text, collect).result()
        return np.concatenate(chunks) if chunks else np.zeros(0, np.int16)

    def _produce(self, text: str, emit: Emit) -> None:
        from piper import SynthesisConfig

        config = SynthesisConfig(
            length_scale=self._length_scale,
            volume=self.volume,
            noise_scale=self._noise_scale,
            noise_w_scale=self._noise_scale,
        )
        for chunk in self._shared.get().synthesize(text, syn_config=config):
            if not emit(chunk.audio_int16_array):
                return
