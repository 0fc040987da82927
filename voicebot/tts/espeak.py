"""eSpeak NG formant TTS through ctypes, for languages without a bundled Piper voice.

libespeak-ng keeps its voice, parameters and callback in globals and is not thread-safe,
so every call goes through one process-wide worker thread, which initialises the library
once (with espeakng-loader's own data, never a system copy). Synthesis is synchronous on
that thread; the callback hands ~100 ms buffers to the event loop as they are produced and
aborts the synthesis once the consumer has gone.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np

from voicebot.tts.base import PcmChunks, TtsEngine
from voicebot.tts.piper import Emit, stream_from_executor

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_BUFFER_MS = 100
_INITIALIZE_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_RATE, _VOLUME, _PITCH = 1, 2, 3
_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class _Espeak:
    """The library, its settings and its callback; touched only on the worker thread."""

    def __init__(self) -> None:
        import espeakng_loader

        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Info.argtypes = [ctypes.POINTER(ctypes.c_char_p)]
        lib.espeak_Info.restype = ctypes.c_char_p
        lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        data = espeakng_loader.get_data_path().encode()
        rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, _BUFFER_MS, data, _INITIALIZE_DONT_EXIT
        )
        if rate <= 0:
            raise RuntimeError(f"espeak_Initialize failed ({rate}) with data {data!r}")
        path = ctypes.c_char_p()
        self.version = lib.espeak_Info(ctypes.byref(path)).decode()
        self.data_path = (path.value or b"").decode()
        self.sample_rate = int(rate)
        self.lib = lib
        self._voice = ""
        self._emit: Emit | None = None
        self._callback = _CALLBACK(self._on_audio)  # referenced for as long as lib lives
        lib.espeak_SetSynthCallback(self._callback)

    def synth(self, text: str, voice: str, params: dict[int, int], emit: Emit) -> None:
        if voice != self._voice:
            self._voice = ""  # unknown after a failed switch: set it again next time
            if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise ValueError(f"espeak-ng has no voice {voice!r}")
            self._voice = voice
        for param, value in params.items():
            self.lib.espeak_SetParameter(param, value, 0)
        data = text.encode()
        self._emit = emit
        try:
            error = self.lib.espeak_Synth(
                data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
            )
            self.lib.espeak_Synchronize()
            if error != 0:
                raise RuntimeError(f"espeak_Synth failed with error {error}")
        finally:
            self._emit = None

    def _on_audio(self, wav: Any, count: int, _events: Any) -> int:
        """Called by espeak_Synth on the worker: 0 carries on, 1 aborts the synthesis."""
        if not wav or count <= 0 or self._emit is None:
            return 0
        chunk = np.ctypeslib.as_array(wav, shape=(count,)).copy()
        return 0 if self._emit(chunk) else 1


_EXECUTOR = ThreadPoolExecutor(1, thread_name_prefix="espeak")
_state: _Espeak | None = None
_T = TypeVar("_T")


def _espeak() -> _Espeak:
    """The initialised library; call only on the espeak worker."""
    global _state
    if _state is None:
        _state = _Espeak()
    return _state


def _on_worker(fn: Callable[[_Espeak], _T]) -> _T:
    """Run ``fn`` with the library on the worker thread and wait for it."""
    return _EXECUTOR.submit(lambda: fn(_espeak())).result()


def espeak_info() -> tuple[str, str, int]:
    """(version, data path in use, sample rate) of the process's libespeak-ng."""
    return _on_worker(lambda e: (e.version, e.data_path, e.sample_rate))


class EspeakEngine(TtsEngine):
    """An eSpeak NG voice (``de``, ``fr``, ``en-us``, ``de+f3``…)."""

    name = "espeak"

    def __init__(
        self, voice: str = "de", rate_wpm: int = 160, pitch: int = 50, volume: float = 1.0
    ) -> None:
        if not 80 <= rate_wpm <= 450 or not 0 <= pitch <= 100 or not 0 <= volume <= 2:
            raise ValueError(
                f"need 80 <= rate_wpm <= 450, 0 <= pitch <= 100, "
                f"0 <= volume <= 2; got {rate_wpm=}, {pitch=}, {volume=}"
            )
        self.voice = voice
        self.rate_wpm = rate_wpm
        self.pitch = pitch
        self.volume = volume
        self.sample_rate = espeak_info()[2]  # initialising takes ~2 ms

    async def warm_up(self) -> None:
        chunks = [chunk async for chunk in self.synthesize("Hallo.")]
        if not chunks:
            raise RuntimeError(f"{self.name} voice {self.voice!r} produced no audio")

    def synthesize(self, text: str) -> PcmChunks:
        return stream_from_executor(_EXECUTOR, lambda emit: self._produce(text, emit))

    def synthesize_sync(self, text: str) -> np.ndarray:
        """All of ``text`` as one int16 array, blocking (tests and batch tools)."""
        chunks: list[np.ndarray] = []

        def collect(chunk: np.ndarray) -> bool:
            chunks.append(chunk)
            return True

        _on_worker(lambda _: self._produce(text, collect))
        return np.concatenate(chunks) if chunks else np.zeros(0, np.int16)

    def _produce(self, text: str, emit: Emit) -> None:
        params = {_RATE: self.rate_wpm, _PITCH: self.pitch, _VOLUME: round(100 * self.volume)}
        _espeak().synth(text, self.voice, params, emit)
