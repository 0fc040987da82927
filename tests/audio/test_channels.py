"""The audio paths a caller's voice takes, simulated with av: WebRTC Opus, a G.711 phone
line, a G.722 one, and noise at a chosen signal-to-noise ratio."""

from __future__ import annotations

import numpy as np
import pytest

from voicebot.audio.channels import (
    add_noise,
    g722_roundtrip,
    mulaw_roundtrip,
    opus_roundtrip,
    pink_noise,
    voiced_power,
)
from voicebot.samples import speak


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return speak("A table for four on Friday at half past seven, please.", "en")


def _band_energy(pcm: np.ndarray, lo: float, hi: float, rate: int = 16000) -> float:
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(len(pcm), 1 / rate)
    return float(spectrum[(freqs >= lo) & (freqs < hi)].sum())


def test_opus_keeps_length_level_and_wideband(speech: np.ndarray) -> None:
    out = opus_roundtrip(speech)
    assert out.dtype == np.int16 and abs(len(out) - len(speech)) <= 16000 // 50 * 2
    ratio = voiced_power(out) / voiced_power(speech)
    assert 0.7 < ratio < 1.4
    assert _band_energy(out, 4000, 7000) > 0.3 * _band_energy(speech, 4000, 7000)


def test_mulaw_is_a_narrowband_phone_line(speech: np.ndarray) -> None:
    out = mulaw_roundtrip(speech)
    assert out.dtype == np.int16 and abs(len(out) - len(speech)) <= 16000 // 50 * 2
    assert 0.6 < voiced_power(out) / voiced_power(speech) < 1.4
    # nothing of the speech above the 4 kHz Nyquist limit of an 8 kHz line survives
    assert _band_energy(out, 4200, 8000) < 0.02 * _band_energy(speech, 4200, 8000)
    # and it is not the input: μ-law quantisation noise is there
    n = min(len(out), len(speech))
    assert not np.array_equal(out[:n], speech[:n])


def test_g722_is_a_wideband_phone_line(speech: np.ndarray) -> None:
    out = g722_roundtrip(speech)
    assert out.dtype == np.int16 and abs(len(out) - len(speech)) <= 16000 // 50 * 2
    assert 0.6 < voiced_power(out) / voiced_power(speech) < 1.4
    # unlike G.711, the band above 4 kHz reaches the recogniser (G.722 codes up to 7 kHz)
    assert _band_energy(out, 4200, 7000) > 0.2 * _band_energy(speech, 4200, 7000)


@pytest.mark.parametrize("snr_db", [0.0, 10.0, 20.0])
def test_noise_is_mixed_at_the_requested_snr(speech: np.ndarray, snr_db: float) -> None:
    noise = pink_noise(16000 * 2, seed=3)
    mixed = add_noise(speech, noise, snr_db)
    added = mixed.astype(np.float64) - speech.astype(np.float64)
    measured = 10 * np.log10(voiced_power(speech) / np.mean(added**2))
    assert measured == pytest.approx(snr_db, abs=0.5)
    assert np.array_equal(pink_noise(1000, seed=3), pink_noise(1000, seed=3))
