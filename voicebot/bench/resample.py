"""Per-frame cost and quality of the audio hot path (part of ``voicebot bench loop``).

``compare`` justifies the resampler choice: the streaming ``StreamResampler``
(libswresample, state kept across frames) against ``scipy.signal.resample_poly``
applied to each 20 ms frame on its own, on the conversions the bot does
(48 kHz stereo caller audio to 16 kHz mono for ASR/VAD, 22.05 kHz Piper output
to 48 kHz for playback). Quality is a 440 Hz sine pushed through 20 ms frames:
SNR against the ideal sine at the output rate, and ``boundary_ratio`` = the
largest |second difference| at frame boundaries over the largest inside
frames (about 1 when seamless, above 1 when frame edges click). The same
function times the denoiser, the VAD and the framer per 20 ms frame.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from math import gcd

import numpy as np
from scipy.signal import resample_poly

from voicebot.audio.denoise import Denoiser
from voicebot.audio.framer import Framer
from voicebot.audio.resample import StreamResampler
from voicebot.audio.vad import Endpointer
from voicebot.bench.stats import percentile
from voicebot.config import VadSettings

CASES: tuple[tuple[int, int, int, int], ...] = (
    (48000, 2, 16000, 1),
    (22050, 1, 48000, 2),
    (22050, 1, 48000, 1),
)
FRAME_S = 0.02
TONE_HZ = 440.0
AMPLITUDE = 10000.0


def compare(frames: int = 2000) -> dict[str, dict[str, float]]:
    """Time and score every component; keys are case names, values flat figures."""
    out: dict[str, dict[str, float]] = {}
    for in_rate, in_ch, out_rate, out_ch in CASES:
        name = f"resample {in_rate}x{in_ch}->{out_rate}x{out_ch}"
        out[name] = _compare_resample(in_rate, in_ch, out_rate, out_ch, frames)
    out["denoise 16000x1 ns=2"] = measure_denoise(frames)
    out["vad 16000x1 20ms"] = _time_per_frame(_vad_step(), frames)
    out["framer 16000x1 20ms"] = _time_per_frame(_framer_step(), frames)
    return out


def measure_denoise(frames: int = 2000, noise_suppression: int = 2) -> dict[str, float]:
    """Cost of ``Denoiser.process`` per 20 ms frame of 16 kHz mono."""
    den = Denoiser(noise_suppression=noise_suppression)
    pcm = _noise(320, seed=1)
    return _time_per_frame(lambda: den.process(pcm), frames)


def _compare_resample(
    in_rate: int, in_ch: int, out_rate: int, out_ch: int, frames: int
) -> dict[str, float]:
    n_in = round(in_rate * FRAME_S)
    stream = StreamResampler(in_rate, in_ch, out_rate, out_ch)
    noise = _noise(n_in * in_ch, seed=0)
    result = _prefixed("stream", _time_per_frame(lambda: stream.process(noise), frames))
    result |= _prefixed(
        "poly", _time_per_frame(lambda: poly_frame(noise, in_rate, in_ch, out_rate, out_ch), frames)
    )
    tone = _tone(in_rate, n_in * 100, in_ch)
    chunks = [tone[i : i + n_in * in_ch] for i in range(0, tone.size, n_in * in_ch)]
    fresh = StreamResampler(in_rate, in_ch, out_rate, out_ch)
    streamed = [fresh.process(c) for c in chunks] + [fresh.flush()]
    per_frame = [poly_frame(c, in_rate, in_ch, out_rate, out_ch) for c in chunks]
    for label, parts in (("stream", streamed), ("poly", per_frame)):
        result[f"{label}_snr_db"] = snr_db(parts, out_rate, out_ch)
        result[f"{label}_boundary_ratio"] = boundary_ratio(parts, out_rate, out_ch)
    result["stream_latency_ms"] = stream.latency * 1000
    return result


def poly_frame(pcm: np.ndarray, in_rate: int, in_ch: int, out_rate: int, out_ch: int) -> np.ndarray:
    """The stateless baseline: one 20 ms frame through ``resample_poly`` on its own."""
    x = pcm.reshape(-1, in_ch).mean(axis=1) if in_ch > 1 else pcm.astype(np.float32)
    g = gcd(in_rate, out_rate)
    y = resample_poly(x, out_rate // g, in_rate // g)
    y = np.clip(np.rint(y), -32768, 32767).astype(np.int16)
    return np.repeat(y, out_ch) if out_ch > 1 else y


def snr_db(parts: list[np.ndarray], rate: int, channels: int) -> float:
    """SNR of the first channel against the ideal tone, skipping 10 ms at each end."""
    y = np.concatenate(parts).reshape(-1, channels)[:, 0].astype(np.float64)
    ideal = AMPLITUDE * np.sin(2 * np.pi * TONE_HZ * np.arange(y.size) / rate)
    skip = rate // 100
    err = (y - ideal)[skip:-skip]
    return float(
        10 * np.log10(np.mean(ideal[skip:-skip] ** 2) / max(float(np.mean(err**2)), 1e-12))
    )


def boundary_ratio(parts: list[np.ndarray], rate: int, channels: int) -> float:
    """max |second difference| at chunk boundaries / max inside chunks (first channel).

    The first and last 10 ms are left out: the tone starts and stops abruptly there.
    """
    mono = [p.reshape(-1, channels)[:, 0].astype(np.float64) for p in parts if p.size]
    d2 = np.abs(np.diff(np.concatenate(mono), 2))  # d2[i] is centred on sample i + 1
    edges = np.cumsum([m.size for m in mono])[:-1]
    at = np.zeros(d2.size, dtype=bool)
    at[edges - 2] = True  # centred on the last sample before each boundary
    at[edges - 1] = True  # ... and on the first one after it
    keep = np.zeros(d2.size, dtype=bool)
    keep[rate // 100 : -rate // 100] = True
    return float(d2[at & keep].max() / d2[~at & keep].max())


def _time_per_frame(step: Callable[[], object], frames: int) -> dict[str, float]:
    for _ in range(min(100, frames)):
        step()
    times = np.empty(frames)
    clock = time.perf_counter_ns
    for i in range(frames):
        t0 = clock()
        step()
        times[i] = clock() - t0
    times /= 1000
    ordered = times.tolist()
    return {"median_us": percentile(ordered, 50), "p99_us": percentile(ordered, 99)}


def _vad_step() -> Callable[[], object]:
    vad = Endpointer(VadSettings())
    pcm = _noise(320, seed=2, scale=300)
    pts = [0.0]

    def step() -> object:
        pts[0] += FRAME_S
        return vad.process(pcm, pts[0])

    return step


def _framer_step() -> Callable[[], object]:
    framer = Framer(320)
    pcm = _noise(331, seed=3)  # odd sizes: most pushes straddle a frame boundary
    return lambda: framer.push(pcm)


def _prefixed(prefix: str, figures: dict[str, float]) -> dict[str, float]:
    return {f"{prefix}_{k}": v for k, v in figures.items()}


def _noise(n: int, seed: int, scale: float = 3000.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(rng.standard_normal(n) * scale, -32768, 32767).astype(np.int16)


def _tone(rate: int, n: int, channels: int) -> np.ndarray:
    x = np.rint(AMPLITUDE * np.sin(2 * np.pi * TONE_HZ * np.arange(n) / rate)).astype(np.int16)
    return np.repeat(x, channels) if channels > 1 else x
