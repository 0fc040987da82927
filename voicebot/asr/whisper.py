"""Whisper speech recognition (faster-whisper / CTranslate2) with trimmed encoder input.

faster-whisper's ``transcribe()`` pads every clip to 30 s, so a 2 s turn pays for
30 s of encoder work. Here the log-Mel features cover only the audio plus a zero tail
(1.5 s by default; zeros are what the padded path puts after the audio, and with a
shorter tail short turns loop more often), and the CTranslate2 model is called directly:
about 4x faster for tiny.en and base on 1-6 s turns, with the same accuracy on our
synthetic speech. Trimmed input still makes Whisper prone to starting the transcript
over once it reaches the end of the audio, so the token budget is tied to the duration
and such restarts are cut off again (``collapse_repeats``).

Final transcripts carry each word's probability (``AsrResult.words``): the softmax of
the decoder's own logits at the token it chose, as the decode saw it (with the dialog
context), the least sure token of a word counting: about 10 ms a turn (tiny.en, p50 of
the per-turn difference over 40 dev turns). faster-whisper's ``Word.probability``
(``word_timestamps=True``) re-runs the decoder to align the words, without the context,
at about 25 ms a turn.

Each model is loaded once per process and shared by every engine and session that
asks for it; its decodes run one at a time on a single worker thread of its own.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ctranslate2
import numpy as np
from faster_whisper import WhisperModel
from faster_whisper.tokenizer import _LANGUAGE_CODES, Tokenizer
from faster_whisper.transcribe import get_suppressed_tokens

from voicebot.asr.base import SAMPLE_RATE, AsrEngine, AsrResult, AsrSession
from voicebot.asr.models import resolve_model
from voicebot.frames import HeardWord

_FRAMES_PER_S = 100  # log-Mel frames (hop 160 at 16 kHz)
_MAX_FRAMES = 3000  # the encoder's 30 s window
_MIN_AUDIO_S = 0.3  # shorter input is padded with silence to this length
_TOKENS_BASE, _TOKENS_PER_S = 8, 6.0  # token budget; speech here needed 3-6 tokens/s
_MAX_NEW_TOKENS = 224  # CTranslate2 (like Whisper) never generates more in one window
_MAX_CONTEXT_TOKENS = 64  # previous-text tokens a context may take (the last ones)
_MAX_PROMPTS = 256  # decoder prompts kept per model (language x context)
_NO_SPEECH_PROB, _LOGPROB_FLOOR = 0.6, -1.0  # Whisper's silence rule
_SPLIT_SEARCH_S = 6.0  # how far back from a window's end to look for a quiet cut
_INITIAL_BUFFER_S = 10.0
_PIN_LANGUAGE_S = 2.0  # a session keeps the language detected on this much audio


def normalize_language(language: str | None) -> str | None:
    """``"en-US"``/``"de_DE"`` → ``"en"``/``"de"``; ``None`` (detect) stays ``None``."""
    if language is None or not language.strip():
        return None
    code = re.split(r"[-_]", language.strip().lower(), maxsplit=1)[0]
    if code not in _LANGUAGE_CODES:
        raise ValueError(f"Whisper does not know language {language!r}")
    return code


def collapse_repeats(text: str) -> str:
    """Undo decoder loops: ``"Hello? Hello? Hello"`` → ``"Hello?"``.

    Shapes seen with trimmed input: the whole transcript starting over (``"A B C. A B"``),
    the last phrase repeating (``"… on Tuesday, on Tuesday,"``) and a sentence coming back
    in part (``"Yes, that's right. That's right."``); the token budget may cut the last
    copy mid-word. Repeats short enough to be real speech (``"bye bye"``) are kept.
    """
    words = text.split()
    while (cut := _loop_start(words)) is not None:
        words = words[:cut]
    return " ".join(_drop_repeated_sentences(words))


def _keys(words: list[str]) -> list[str]:
    return [re.sub(r"[^\w']", "", w.lower()) for w in words]


def _drop_repeated_sentences(words: list[str]) -> list[str]:
    """Drop a sentence whose words all appear, in order, in the sentence kept before it."""
    sentences: list[list[str]] = [[]]
    for w in words:
        sentences[-1].append(w)
        if w[-1] in ".?!":
            sentences.append([])
    kept: list[list[str]] = []
    for sentence in sentences:
        keys = [k for k in _keys(sentence) if k]
        if not sentence or (keys and kept and _contains(_keys(kept[-1]), keys)):
            continue
        kept.append(sentence)
    return [w for sentence in kept for w in sentence]


def _contains(haystack: list[str], needle: list[str]) -> bool:
    n = len(needle)
    return any(haystack[i : i + n] == needle for i in range(len(haystack) - n + 1))


def _loop_start(words: list[str]) -> int | None:
    """Index where a repeated copy begins, or None when ``words`` show no loop."""
    keys = _keys(words)
    n = len(keys)

    def same(i: int, j: int) -> bool:
        # the last word may be cut off, so it only has to start like its earlier copy
        return keys[i] == keys[j] or (j == n - 1 and keys[j] != "" and keys[i].startswith(keys[j]))

    for period in range(1, n - 1):  # restart: at least two words of a second copy
        if all(same(i, i + period) for i in range(n - period)):
            return period
    for period in range(1, n // 2 + 1):  # the tail repeating, back to back
        run = 0
        while run < n - period and same(n - 1 - period - run, n - 1 - run):
            run += 1
        if (run + period) / period >= {1: 4, 2: 3}.get(period, 2):
            return n - run
    return None


def _quiet_cut(audio: np.ndarray, lo: int, hi: int) -> int:
    """Sample index in [lo, hi) at the quietest 60 ms stretch (cheap RMS minimum)."""
    hop = SAMPLE_RATE // 50
    seg = audio[lo:hi]
    frames = len(seg) // hop
    if frames < 3:
        return hi
    energy = np.square(seg[: frames * hop].reshape(frames, hop)).mean(axis=1)
    smooth = np.convolve(energy, np.ones(3) / 3, mode="same")
    return lo + int(np.argmin(smooth)) * hop + hop // 2


def split_windows(audio: np.ndarray, max_s: float) -> list[np.ndarray]:
    """Cut ``audio`` into pieces of at most ``max_s`` seconds, at quiet points when possible."""
    max_len = int(max_s * SAMPLE_RATE)
    search = min(int(_SPLIT_SEARCH_S * SAMPLE_RATE), max_len // 2)
    out: list[np.ndarray] = []
    start = 0
    while len(audio) - start > max_len:
        cut = _quiet_cut(audio, start + max_len - search, start + max_len)
        out.append(audio[start:cut])
        start = cut
    out.append(audio[start:])
    return out


def _as_float32(audio: np.ndarray) -> np.ndarray:
    a = np.asarray(audio).reshape(-1)
    if a.dtype == np.int16:
        return a.astype(np.float32) / 32768.0
    return a.astype(np.float32, copy=False)


_Prompt = tuple[Tokenizer, list[int], list[int]]  # tokenizer, decoder prompt, suppressed


@dataclass(eq=False)
class SharedModel:
    """One loaded Whisper model and the single worker thread that runs it."""

    path: Path
    compute_type: str
    cpu_threads: int
    executor: ThreadPoolExecutor = field(init=False)
    _model: WhisperModel | None = field(default=None, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    finals_pending: int = field(default=0, init=False)  # final decodes submitted, not done
    _count_lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    partials_skipped: int = field(default=0, init=False)
    _tokenizers: dict[tuple[str | None, str | None], _Prompt] = field(
        default_factory=dict, init=False
    )

    def __post_init__(self) -> None:
        self.executor = ThreadPoolExecutor(1, thread_name_prefix=f"whisper-{self.path.name}")

    def load(self) -> WhisperModel:
        """The model, loaded on first use (thread-safe; blocks while loading)."""
        with self._lock:
            if self._model is None:
                self._model = WhisperModel(
                    str(self.path),
                    device="cpu",
                    compute_type=self.compute_type,
                    cpu_threads=self.cpu_threads,
                )
            return self._model

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def tokenizer(
        self, language: str | None, context: str | None = None
    ) -> tuple[Tokenizer, list[int], list[int]]:
        """(tokenizer, decoder prompt, suppressed tokens) for ``language``; worker only.

        ``context`` becomes Whisper's "previous text" (faster-whisper's ``initial_prompt``:
        ``<|startofprev|>`` and its tokens before the start of the transcript)."""
        key = (language, context or None)
        cached = self._tokenizers.get(key)
        if cached is None:
            wm = self.load()
            tok = Tokenizer(wm.hf_tokenizer, wm.model.is_multilingual, "transcribe", language)
            prompt = [*tok.sot_sequence, tok.no_timestamps]
            if context:
                previous = tok.encode(" " + context.strip())[-_MAX_CONTEXT_TOKENS:]
                prompt = [tok.sot_prev, *previous, *prompt]
            cached = (tok, prompt, list(get_suppressed_tokens(tok, [-1])))
            if len(self._tokenizers) >= _MAX_PROMPTS:
                self._tokenizers.clear()
            self._tokenizers[key] = cached
        return cached


_REGISTRY: dict[tuple[str, str, int], SharedModel] = {}
_REGISTRY_LOCK = threading.Lock()


def shared_model(path: Path, compute_type: str, cpu_threads: int) -> SharedModel:
    """The process-wide entry for this model file and settings (created, not loaded)."""
    key = (str(path.resolve()), compute_type, cpu_threads)
    with _REGISTRY_LOCK:
        entry = _REGISTRY.get(key)
        if entry is None:
            entry = _REGISTRY[key] = SharedModel(path.resolve(), compute_type, cpu_threads)
        return entry


@dataclass(slots=True)
class _WindowResult:
    text: str
    language: str
    no_speech_prob: float
    logprob_sum: float
    tokens: int
    words: list[HeardWord] | None  # None: the words could not be told apart


def _token_probabilities(logits: Any, ids: list[int]) -> list[float]:
    """Each chosen token's probability: softmax of the decoder's logits at its step."""
    rows = np.asarray(logits, dtype=np.float32)[: len(ids)]
    if rows.ndim != 2 or len(rows) < len(ids):
        return []
    peak = rows.max(axis=1, keepdims=True)
    log_total = np.log(np.exp(rows - peak).sum(axis=1)) + peak[:, 0]
    chosen = rows[np.arange(len(ids)), ids]
    return [float(p) for p in np.exp(chosen - log_total)]


def heard_words(pieces: list[str], probabilities: list[float], text: str) -> list[HeardWord] | None:
    """The words of ``text`` with probabilities, from the decoded token ``pieces``.

    A word is the tokens from one that starts with a space to the next; its probability is
    its least sure token's, punctuation aside ("Friday," is as sure as "Friday"). ``text``
    may have lost repeated stretches (``collapse_repeats``): its words are found, in order,
    among the decoded ones. None when they cannot be (nothing is then known of them).
    """
    words: list[tuple[str, list[float]]] = []
    for piece, p in zip(pieces, probabilities, strict=True):
        if not words or piece.startswith(" ") or not piece.strip():
            words.append(("", []))
        word, probs = words[-1]
        if any(c.isalnum() for c in piece) or not probs:
            probs = [p] if not any(c.isalnum() for c in word) else [*probs, p]
        words[-1] = (word + piece.strip(), probs)
    decoded = [(w, min(ps)) for w, ps in words if w]
    out: list[HeardWord] = []
    k = 0
    for word in text.split():
        while k < len(decoded) and decoded[k][0] != word:
            k += 1
        if k == len(decoded):
            return None
        out.append(HeardWord(word, round(decoded[k][1], 4)))
        k += 1
    return out


class WhisperEngine(AsrEngine):
    """Whisper on CPU; ``model`` is ``"tiny.en"``, ``"base"`` or a CTranslate2 model directory.

    ``tail_pad_s`` seconds of zero features follow the audio: with less, short turns
    loop more often (measured on synthetic speech; see the module docstring).
    """

    name = "whisper"

    def __init__(
        self,
        model: str = "tiny.en",
        compute_type: str = "int8",
        cpu_threads: int = 2,
        beam_size: int = 1,
        tail_pad_s: float = 1.5,
    ) -> None:
        if beam_size < 1:
            raise ValueError("beam_size must be >= 1")
        if not 0.0 <= tail_pad_s <= 5.0:
            raise ValueError("tail_pad_s must be within [0, 5] seconds")
        self.model_name = model
        self.beam_size = beam_size
        self.tail_pad_s = tail_pad_s
        self._shared = shared_model(resolve_model(model), compute_type, cpu_threads)

    @property
    def shared(self) -> SharedModel:
        return self._shared

    @property
    def model(self) -> WhisperModel:
        """The shared faster-whisper model (loads it, blocking, if nobody has yet)."""
        return self._shared.load()

    @property
    def max_window_s(self) -> float:
        """Longest audio decoded in one piece (the encoder's 30 s less the tail pad)."""
        return (_MAX_FRAMES - 1) / _FRAMES_PER_S - self.tail_pad_s

    def session(self, language: str | None = None, *, context: str | None = None) -> WhisperSession:
        lang = normalize_language(language)
        if self._shared.loaded:
            self._check_language(lang)
        return WhisperSession(self, lang, context)

    async def transcribe(
        self, audio: np.ndarray, language: str | None = None, *, context: str | None = None
    ) -> AsrResult:
        return await self.run(_as_float32(audio), normalize_language(language), context=context)

    async def warm_up(self) -> None:
        await self.run(np.zeros(SAMPLE_RATE // 2, dtype=np.float32), None)

    async def run(
        self,
        audio: np.ndarray,
        language: str | None,
        *,
        partial: bool = False,
        context: str | None = None,
    ) -> AsrResult:
        """Decode float32 ``audio`` on the model's worker (``language`` already normalized).

        Finals go before partials: the worker is shared by every call, and a caller
        waiting for an answer must not wait behind other calls' previews. A partial
        that reaches the worker while any final is pending is skipped (empty text,
        which the ASR stage ignores); the next partial or the final supersedes it.
        """
        loop = asyncio.get_running_loop()
        shared = self._shared
        if partial:
            return await loop.run_in_executor(
                shared.executor, self._partial, audio, language, context
            )
        with shared._count_lock:
            shared.finals_pending += 1
        try:
            return await loop.run_in_executor(
                shared.executor, self.decode, audio, language, context
            )
        finally:
            with shared._count_lock:
                shared.finals_pending -= 1

    def _partial(
        self, audio: np.ndarray, language: str | None, context: str | None = None
    ) -> AsrResult:
        shared = self._shared
        if shared.finals_pending:
            with shared._count_lock:
                shared.partials_skipped += 1
            return AsrResult("", language or "")
        return self.decode(audio, language, context, words=False)

    async def transcribe_segments(
        self,
        audio: np.ndarray,
        language: str | None = None,
        *,
        prompt: str | None = None,
        temperature: float = 0.0,
        word_timestamps: bool = False,
    ) -> tuple[Any, list[Any]]:
        """faster-whisper's own segmented transcription of a whole file: ``(info, segments)``
        with timestamps, for the speech API's srt/vtt/verbose_json. Runs on the model's
        worker, so it never overlaps a call's decode on the same model."""
        lang = normalize_language(language)

        def work() -> tuple[Any, list[Any]]:
            self._check_language(lang)
            wm = self._shared.load()
            segments, info = wm.transcribe(
                _as_float32(audio),
                language=lang if wm.model.is_multilingual else "en",
                initial_prompt=prompt or None,
                temperature=temperature,
                beam_size=self.beam_size,
                word_timestamps=word_timestamps,
                condition_on_previous_text=False,
            )
            return info, list(segments)

        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._shared.executor, work)

    def decode(
        self,
        audio: np.ndarray,
        language: str | None,
        context: str | None = None,
        *,
        words: bool = True,
    ) -> AsrResult:
        """Blocking decode of a whole clip; ``run`` calls it on the model's worker thread.
        ``words``: with each word's probability (finals; partials skip it)."""
        wm = self._shared.load()
        self._check_language(language)
        started = time.perf_counter()
        if not wm.model.is_multilingual:
            language = "en"
        if audio.size == 0:
            return AsrResult("", language or "", no_speech_prob=1.0)
        parts: list[_WindowResult] = []
        for window in split_windows(audio, self.max_window_s):
            part = self._decode_window(
                wm, window, language, context if not parts else None, words=words
            )
            language = part.language  # detected once, on the first window
            parts.append(part)
        tokens = sum(p.tokens for p in parts)
        heard = [p.words for p in parts if p.text]
        return AsrResult(
            text=" ".join(p.text for p in parts if p.text),
            language=language or "",
            no_speech_prob=min(p.no_speech_prob for p in parts),
            avg_logprob=sum(p.logprob_sum for p in parts) / max(tokens, 1),
            decode_ms=(time.perf_counter() - started) * 1000.0,
            words=tuple(w for ws in heard for w in ws or ()) if all(heard) and words else (),
        )

    def _check_language(self, language: str | None) -> None:
        if language not in (None, "en") and not self.model.model.is_multilingual:
            raise ValueError(f"{self.model_name} is English-only; cannot transcribe {language!r}")

    def _decode_window(
        self,
        wm: WhisperModel,
        audio: np.ndarray,
        language: str | None,
        context: str | None = None,
        *,
        words: bool = True,
    ) -> _WindowResult:
        min_len = int(_MIN_AUDIO_S * SAMPLE_RATE)
        if len(audio) < min_len:
            audio = np.pad(audio, (0, min_len - len(audio)))
        feats = wm.feature_extractor(audio)[:, :_MAX_FRAMES]
        if language is None:
            # Detection on trimmed input is unreliable (short German turns came out as
            # Latin or Welsh), so detect on the full 30 s window as Whisper was trained,
            # and decode from that encoder output too since it is paid for.
            tail = _MAX_FRAMES - feats.shape[1]
        else:
            tail = min(int(self.tail_pad_s * _FRAMES_PER_S), _MAX_FRAMES - feats.shape[1])
        feats = np.pad(feats, ((0, 0), (0, tail)))
        encoded = wm.model.encode(
            ctranslate2.StorageView.from_array(np.ascontiguousarray(feats[None], np.float32)),
            to_cpu=False,
        )
        if language is None:
            language = wm.model.detect_language(encoded)[0][0][0][2:-2]
        tok, prompt, suppress = self._shared.tokenizer(
            language if wm.model.is_multilingual else None, context
        )
        seconds = len(audio) / SAMPLE_RATE
        budget = min(int(_TOKENS_BASE + _TOKENS_PER_S * seconds), _MAX_NEW_TOKENS)
        result, text, looped = self._generate(wm, encoded, prompt, suppress, tok, budget, words)
        if not looped and len(result.sequences_ids[0]) >= budget < _MAX_NEW_TOKENS:
            # Out of budget without a loop: fast or dense speech, not a hallucination - but
            # three times the budget is plenty (a loop the collapse missed stops there).
            result, text, _ = self._generate(
                wm, encoded, prompt, suppress, tok, min(3 * budget, _MAX_NEW_TOKENS), words
            )
        ids = result.sequences_ids[0]
        # CTranslate2 reports the length-normalised score; recover the sum, then average
        # over the tokens plus end-of-text as faster-whisper does.
        logprob_sum = result.scores[0] * len(ids)
        avg_logprob = logprob_sum / (len(ids) + 1)
        silent = result.no_speech_prob > _NO_SPEECH_PROB and avg_logprob < _LOGPROB_FLOOR
        if silent or not any(c.isalnum() for c in text):  # "." alone is no transcript
            text = ""
        heard = None
        if words and text and result.logits:
            probabilities = _token_probabilities(result.logits[0], ids)
            if probabilities:
                pieces = [tok.decode([i]) for i in ids]
                heard = heard_words(pieces, probabilities, text)
        return _WindowResult(
            text, language, result.no_speech_prob, logprob_sum, len(ids) + 1, heard
        )

    def _generate(
        self,
        wm: WhisperModel,
        encoded: ctranslate2.StorageView,
        prompt: list[int],
        suppress: list[int],
        tok: Tokenizer,
        budget: int,
        logits: bool = False,
    ) -> tuple[ctranslate2.models.WhisperGenerationResult, str, bool]:
        """Decode at most ``budget`` tokens: (result, loop-free text, whether it looped)."""
        # CTranslate2 generates at most min(max_length / 2, max_length - len(prompt)).
        max_length = min(max(2 * budget, budget + len(prompt)), wm.max_length)
        result = wm.model.generate(
            encoded,
            [prompt],
            beam_size=self.beam_size,
            max_length=max_length,
            return_scores=True,
            return_no_speech_prob=True,
            return_logits_vocab=logits,
            suppress_blank=True,
            suppress_tokens=suppress,
        )[0]
        raw = tok.decode(result.sequences_ids[0]).strip()
        text = collapse_repeats(raw)
        return result, text, text != raw


class WhisperSession(AsrSession):
    """One turn's audio in a growing buffer; partials decode a snapshot of it.

    The snapshot is a view, not a copy: ``feed`` only writes past the current end
    (and a grown buffer is a new array), so samples a pending decode sees never change.
    Without a language, the language detected on the first ``_PIN_LANGUAGE_S`` seconds
    is kept, so later partials skip the (full-window) detection.
    """

    def __init__(
        self, engine: WhisperEngine, language: str | None, context: str | None = None
    ) -> None:
        self._engine = engine
        self.language = language
        self.context = context
        self._buf = np.empty(int(_INITIAL_BUFFER_S * SAMPLE_RATE), dtype=np.float32)
        self._len = 0
        self._closed = False

    def feed(self, audio: np.ndarray) -> None:
        if self._closed:
            raise RuntimeError("session is finished")
        chunk = _as_float32(audio)
        end = self._len + len(chunk)
        if end > len(self._buf):
            grown = np.empty(max(end, 2 * len(self._buf)), dtype=np.float32)
            grown[: self._len] = self._buf[: self._len]
            self._buf = grown
        self._buf[self._len : end] = chunk
        self._len = end

    @property
    def duration(self) -> float:
        return self._len / SAMPLE_RATE

    @property
    def closed(self) -> bool:
        return self._closed

    async def partial(self) -> AsrResult:
        if self._closed:
            raise RuntimeError("session is finished")
        return await self._decode(partial=True)

    async def finish(self) -> AsrResult:
        if self._closed:
            raise RuntimeError("session is finished")
        self._closed = True
        return await self._decode()

    async def _decode(self, partial: bool = False) -> AsrResult:
        samples = self._len
        result = await self._engine.run(
            self._buf[:samples], self.language, partial=partial, context=self.context
        )
        if self.language is None and result.text and samples >= _PIN_LANGUAGE_S * SAMPLE_RATE:
            self.language = result.language
        return result
